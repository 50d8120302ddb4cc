//! Identity benchmarks: one program, one run, one table per measurement.
//!
//! 1. Login over gRPC with the production argon2id parameters, closed loop at
//!    concurrency 1 and 2.
//! 2. Access-token verification (`KeySet::verify`) on one thread.
//! 3. The cost of the authentication layer: `Me` with a bearer token against
//!    the public `grpc.health.v1.Health/Check`, on the same server, at
//!    concurrency 1 and 4, with an authenticated call that does no handler
//!    work in between to separate the layer from `Me`'s own work.
//!
//! The server is a [`Sandbox`]: every service, SQLite, the local bus, started
//! in this process on free ports, so client and server share the machine
//! (and the tokio runtime). Numbers are for comparing runs on one machine,
//! not absolute claims; nothing here asserts a time.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-identity
//! cargo run -p tenantry-tests --bin bench-identity -- --smoke   # CI: just keep it working
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use tenantry::services::ServiceKind;
use tenantry_identity::password::PasswordOptions;
use tenantry_kit::auth::{Expectations, JwkKey, KeySet};
use tenantry_proto::tenantry::identity::v1 as pb;
use tenantry_testkit::standin::DirectoryStandIn;
use tenantry_testkit::{Sandbox, authed};
use tenantry_tests::bench::{channels, histogram, ms, print_table, rate, warm_then_measure};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

type IdentityClient = pb::identity_service_client::IdentityServiceClient<Channel>;
type ApiKeyClient = pb::api_key_service_client::ApiKeyServiceClient<Channel>;

const PASSWORD: &str = "correct horse battery staple";

/// The organization the benchmark's API key belongs to (known to the stand-in).
const ORGANIZATION: &str = "0190c2a4-0000-7000-8000-0000000000be";

/// The issuer and audience of the sandbox's access tokens.
const ISSUER: &str = "tenantry";
const AUDIENCE: &str = "tenantry";

/// Benchmarks of the identity service: login, token verification, and the
/// authentication layer's overhead.
#[derive(Debug, Parser)]
#[command(name = "bench-identity")]
struct Args {
    /// Run each measurement for a fraction of a second with few requests,
    /// to check that the benchmark still works (CI runs this).
    #[arg(long)]
    smoke: bool,
    /// Seconds each measurement runs, after its warm-up. Default: 8, or 0.25
    /// with `--smoke`.
    #[arg(long)]
    duration_secs: Option<f64>,
}

/// How long things run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Warm-up before each measurement; its results are discarded.
    warmup: Duration,
    /// Each measurement.
    measure: Duration,
    /// Users signed up for the login measurement.
    users: usize,
    /// Verifications per timed batch.
    batch: u64,
}

impl Plan {
    fn new(args: &Args) -> anyhow::Result<Plan> {
        let default = if args.smoke { 0.25 } else { 8.0 };
        let secs = args.duration_secs.unwrap_or(default);
        if !(secs.is_finite() && secs > 0.0) {
            bail!("--duration-secs must be a positive number of seconds, got {secs}");
        }
        let measure = Duration::from_secs_f64(secs);
        Ok(Plan {
            warmup: if args.smoke {
                Duration::from_millis(50)
            } else {
                (measure / 4).min(Duration::from_secs(2))
            },
            measure,
            users: if args.smoke { 4 } else { 8 },
            batch: if args.smoke { 10 } else { 1000 },
        })
    }
}

/// The result of one closed-loop measurement.
fn email(user: usize) -> String {
    format!("bench-{user}@example.com")
}

async fn login(client: &mut IdentityClient, email: String) -> anyhow::Result<pb::AuthTokens> {
    let response = client
        .login(pb::LoginRequest {
            email,
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    match response.result {
        Some(pb::login_response::Result::Tokens(tokens)) => Ok(tokens),
        other => bail!("expected tokens from login, got {other:?}"),
    }
}

/// The result of the verification measurement.
struct VerifyRun {
    verifications: u64,
    elapsed: Duration,
    /// Mean nanoseconds per verification of each timed batch.
    batch_mean_ns: Histogram<u64>,
}

/// Verifies `token` over and over on the calling thread: a warm-up, then
/// timed batches until `plan.measure` has passed.
///
/// Why batches: one verification takes tens of microseconds, and timing each
/// call alone would add two clock reads per call (tens of nanoseconds each,
/// plus the clock's own granularity and the histogram update) to what is
/// measured. Timing a batch of `plan.batch` calls and dividing spreads that
/// cost over the batch, so the percentiles are of per-batch means: they show
/// how steady the rate is (frequency scaling, interference from the idle
/// server), not the spread of single calls.
fn verify_loop(keys: &KeySet, token: &str, plan: Plan) -> anyhow::Result<VerifyRun> {
    let expect = Expectations::new(ISSUER, AUDIENCE);
    let now = chrono::Utc::now().timestamp();
    keys.verify(token, &expect, now)
        .context("the benchmark token does not verify")?;
    let run = |until: Instant, record: &mut Option<&mut Histogram<u64>>| -> anyhow::Result<u64> {
        let mut verifications = 0;
        loop {
            let start = Instant::now();
            for _ in 0..plan.batch {
                let claims = keys.verify(std::hint::black_box(token), &expect, now);
                if std::hint::black_box(claims).is_err() {
                    bail!("verification failed during the benchmark");
                }
            }
            let done = Instant::now();
            verifications += plan.batch;
            if let Some(histogram) = record.as_deref_mut() {
                let ns = (done - start).as_nanos() as u64 / plan.batch;
                histogram.saturating_record(ns.max(1));
            }
            if done >= until {
                return Ok(verifications);
            }
        }
    };
    run(Instant::now() + plan.warmup, &mut None)?;
    let mut batch_mean_ns = histogram()?;
    let start = Instant::now();
    let verifications = run(start + plan.measure, &mut Some(&mut batch_mean_ns))?;
    Ok(VerifyRun {
        verifications,
        elapsed: start.elapsed(),
        batch_mean_ns,
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan::new(&args)?;
    let started = Instant::now();

    // Production password hashing: the sandbox makes it cheap for tests.
    let production = PasswordOptions::default();
    let password = production.clone();
    // Identity alone, with the organization and rbac contracts answered by
    // an in-memory stand-in (API keys need an authorization answer).
    let directory = DirectoryStandIn::default();
    let directory_url = directory.start().await?;
    let sandbox = Sandbox::builder()
        .services(&[ServiceKind::Identity, ServiceKind::Gateway])
        .configure(move |config| {
            config.peers.rbac = Some(directory_url.clone());
            config.peers.organization = Some(directory_url);
            config.identity.password = password;
            // Every call comes from 127.0.0.1; only successful logins are
            // measured, but no throttle may ever slow one down.
            config.identity.throttle.free_attempts_per_address = 1_000_000;
            config.identity.throttle.free_attempts_per_account = 1_000_000;
        })
        .start()
        .await?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!(
        "bench-identity: {} build{}, {cpus} CPUs, SQLite, local bus, client and server in one \
         process; warm-up {:.2} s and measurement {:.2} s each",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if args.smoke { ", smoke run" } else { "" },
        plan.warmup.as_secs_f64(),
        plan.measure.as_secs_f64(),
    );

    // Users, signed up with the production parameters, so each stored hash
    // costs the real amount to verify.
    let mut identity = IdentityClient::new(sandbox.channel().await?);
    let mut first_user = String::new();
    for user in 0..plan.users {
        let signed_up = identity
            .sign_up(pb::SignUpRequest {
                email: email(user),
                password: PASSWORD.into(),
                display_name: format!("Bench User {user}"),
                ..Default::default()
            })
            .await
            .with_context(|| format!("signing up {}", email(user)))?
            .into_inner();
        if user == 0 {
            let name = signed_up.user.map(|u| u.name).unwrap_or_default();
            first_user = name.trim_start_matches("users/").to_string();
        }
    }

    // 1. Login latency.
    println!();
    println!(
        "1. Login over gRPC, closed loop: argon2id m={} KiB, t={}, p={}, \
         max_concurrent_hashes={}; {} users, each task logs in as its own",
        production.memory_kib,
        production.iterations,
        production.parallelism,
        production.max_concurrent_hashes,
        plan.users,
    );
    let mut rows = Vec::new();
    for concurrency in [1, 2] {
        let clients: Vec<IdentityClient> = channels(&sandbox, concurrency)
            .await?
            .into_iter()
            .map(IdentityClient::new)
            .collect();
        let users = plan.users;
        let run = warm_then_measure(
            plan.warmup,
            plan.measure,
            clients,
            move |mut client, task, n| async move {
                // Task t uses users t, t + C, t + 2C, ...: never one another's.
                let user = (task + n as usize * concurrency) % users;
                login(&mut client, email(user)).await.map(|_| ())
            },
        )
        .await?;
        rows.push(vec![
            concurrency.to_string(),
            run.requests.to_string(),
            rate(run.per_second()),
            ms(run.quantile_us(0.5)),
            ms(run.quantile_us(0.9)),
            ms(run.quantile_us(0.99)),
            ms(run.latency_us.max()),
        ]);
    }
    print_table(
        &[
            "concurrency",
            "requests",
            "logins/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
        ],
        &rows,
    );

    // A real access token and the published keys.
    let tokens = login(&mut identity, email(0)).await?;
    let jwks = identity.get_jwks(pb::GetJwksRequest {}).await?.into_inner();
    let jwks: Vec<JwkKey> = jwks.keys.into_iter().map(JwkKey::from).collect();
    let keys = KeySet::from_jwks(&jwks)?;

    // 2. Token verification on one thread (a plain OS thread, off the
    // runtime; the server is idle meanwhile).
    println!();
    println!(
        "2. Access-token verification (KeySet::verify, EdDSA, {}-byte token), one thread; \
         ns/verification from batches of {}",
        tokens.access_token.len(),
        plan.batch,
    );
    let token = tokens.access_token.clone();
    let verify = tokio::task::spawn_blocking(move || verify_loop(&keys, &token, plan)).await??;
    print_table(
        &[
            "threads",
            "verifications",
            "verifications/s",
            "p50 ns",
            "p99 ns",
            "max ns",
        ],
        &[vec![
            "1".into(),
            verify.verifications.to_string(),
            rate(verify.verifications as f64 / verify.elapsed.as_secs_f64()),
            verify.batch_mean_ns.value_at_quantile(0.5).to_string(),
            verify.batch_mean_ns.value_at_quantile(0.99).to_string(),
            verify.batch_mean_ns.max().to_string(),
        ]],
    );

    // 3. Authenticated RPCs against a public one, on the same server. `Me`
    // does real work after the auth layer (a user read, a session check in a
    // write transaction, a memberships call to the rbac contract), so a third
    // RPC isolates the layer: `UpdateUser` without a `user` passes the layer
    // with the same token, and its handler rejects it before any read.
    println!();
    println!(
        "3. Authentication overhead, closed loop, same server and token; delta = p50 minus \
         Health's p50 at the same concurrency"
    );
    println!("   Health/Check: public, the authorization header is never read");
    println!(
        "   UpdateUser (empty): auth layer verifies the token, handler answers INVALID_ARGUMENT \
         before any read"
    );
    println!(
        "   Me: auth layer, then user read, session check, memberships call to the rbac contract (a stand-in)"
    );
    let token: Arc<str> = tokens.access_token.into();
    let mut rows = Vec::new();
    for concurrency in [1, 4] {
        let channels = channels(&sandbox, concurrency).await?;
        let health: Vec<HealthClient<Channel>> =
            channels.iter().cloned().map(HealthClient::new).collect();
        let health = warm_then_measure(
            plan.warmup,
            plan.measure,
            health,
            |mut client, _, _| async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                Ok(())
            },
        )
        .await?;
        let identity: Vec<IdentityClient> = channels.into_iter().map(IdentityClient::new).collect();
        let layer_token = token.clone();
        let layer_only = warm_then_measure(
            plan.warmup,
            plan.measure,
            identity.clone(),
            move |mut client, _, _| {
                let token = layer_token.clone();
                async move {
                    let request = authed(pb::UpdateUserRequest::default(), &token);
                    match client.update_user(request).await {
                        Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(()),
                        Err(status) => Err(status.into()),
                        Ok(_) => bail!("an empty UpdateUser succeeded"),
                    }
                }
            },
        )
        .await?;
        let me_token = token.clone();
        let me = warm_then_measure(
            plan.warmup,
            plan.measure,
            identity,
            move |mut client, _, _| {
                let token = me_token.clone();
                async move {
                    client.me(authed(pb::MeRequest {}, &token)).await?;
                    Ok(())
                }
            },
        )
        .await?;
        let health_p50 = health.quantile_us(0.5) as i64;
        for (rpc, run) in [
            ("Health/Check", &health),
            ("UpdateUser (empty)", &layer_only),
            ("Me", &me),
        ] {
            rows.push(vec![
                rpc.to_string(),
                concurrency.to_string(),
                run.requests.to_string(),
                rate(run.per_second()),
                run.quantile_us(0.5).to_string(),
                run.quantile_us(0.99).to_string(),
                format!("{:+}", run.quantile_us(0.5) as i64 - health_p50),
            ]);
        }
    }
    print_table(
        &[
            "rpc",
            "concurrency",
            "requests",
            "req/s",
            "p50 µs",
            "p99 µs",
            "delta p50 µs",
        ],
        &rows,
    );

    // 4. Failed sign-ins: an unknown email and a wrong password must cost
    // the same (no user enumeration by timing), measured side by side.
    println!();
    println!(
        "4. Failed logins, closed loop, concurrency 1: unknown email vs wrong password (both \
         answer INVALID_CREDENTIALS after one argon2id verification)"
    );
    let mut rows = Vec::new();
    for (case, known) in [("unknown email", false), ("wrong password", true)] {
        let clients: Vec<IdentityClient> = channels(&sandbox, 1)
            .await?
            .into_iter()
            .map(IdentityClient::new)
            .collect();
        let run = warm_then_measure(
            plan.warmup,
            plan.measure,
            clients,
            move |mut client, _, n| async move {
                let email = if known {
                    email(0)
                } else {
                    format!("nobody-{n}@example.com")
                };
                let attempt = client
                    .login(pb::LoginRequest {
                        email,
                        password: "not the password at all".into(),
                        ..Default::default()
                    })
                    .await;
                match attempt {
                    Err(status) if status.code() == tonic::Code::Unauthenticated => Ok(()),
                    Err(status) => Err(status.into()),
                    Ok(_) => bail!("a wrong password signed in"),
                }
            },
        )
        .await?;
        rows.push(vec![
            case.to_string(),
            run.requests.to_string(),
            ms(run.quantile_us(0.5)),
            ms(run.quantile_us(0.9)),
            ms(run.quantile_us(0.99)),
        ]);
    }
    print_table(&["case", "requests", "p50 ms", "p90 ms", "p99 ms"], &rows);

    // 5. API-key exchange with a warm cache: after the first exchange a hot
    // key costs no database read and no authorization call.
    {
        let mut state = directory.state();
        state
            .members
            .insert((first_user.clone(), ORGANIZATION.to_string()));
        for permission in ["organization.api_keys.create", "project.read"] {
            state.grants.insert((
                first_user.clone(),
                ORGANIZATION.to_string(),
                permission.to_string(),
            ));
        }
    }
    let mut api_keys = ApiKeyClient::new(sandbox.channel().await?);
    let secret = api_keys
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                parent: format!("organizations/{ORGANIZATION}"),
                api_key: Some(pb::ApiKey {
                    display_name: "bench".into(),
                    permissions: vec!["project.read".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &token,
        ))
        .await?
        .into_inner()
        .secret;
    let secret: Arc<str> = secret.into();
    println!();
    println!("5. AuthenticateApiKey with a warm cache vs Health/Check, closed loop");
    let mut rows = Vec::new();
    for concurrency in [1, 4] {
        let channels = channels(&sandbox, concurrency).await?;
        let health: Vec<HealthClient<Channel>> =
            channels.iter().cloned().map(HealthClient::new).collect();
        let health = warm_then_measure(
            plan.warmup,
            plan.measure,
            health,
            |mut client, _, _| async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                Ok(())
            },
        )
        .await?;
        let clients: Vec<ApiKeyClient> = channels.into_iter().map(ApiKeyClient::new).collect();
        let key = secret.clone();
        let exchange = warm_then_measure(
            plan.warmup,
            plan.measure,
            clients,
            move |mut client, _, _| {
                let key = key.clone();
                async move {
                    client
                        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
                            secret: key.to_string(),
                        })
                        .await?;
                    Ok(())
                }
            },
        )
        .await?;
        for (rpc, run) in [("Health/Check", &health), ("AuthenticateApiKey", &exchange)] {
            rows.push(vec![
                rpc.to_string(),
                concurrency.to_string(),
                run.requests.to_string(),
                rate(run.per_second()),
                run.quantile_us(0.5).to_string(),
                run.quantile_us(0.99).to_string(),
            ]);
        }
    }
    print_table(
        &[
            "rpc",
            "concurrency",
            "requests",
            "req/s",
            "p50 µs",
            "p99 µs",
        ],
        &rows,
    );

    sandbox.shutdown().await?;
    println!();
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
