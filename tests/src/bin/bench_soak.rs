//! Soak: does a server under sustained `CheckPermission` load keep its
//! memory and its throughput?
//!
//! The server runs the way a deployment runs it: its own process (this
//! program started again as `bench-soak serve …`, which is exactly
//! `tenantry serve`), `--services identity,organization,rbac,audit` on the
//! embedded default unless `--database-url`/`--nats-url` say otherwise. The
//! world is loaded through the public API: users who sign up (each gets an
//! organization), memberships with owner/admin/member/finance roles in
//! every organization, and a service account. Then, round after round, a
//! closed loop of gRPC clients calls `CheckPermission` and
//! `CheckBulkPermissions` (10 checks per call) at saturation, as the
//! service account with a fresh token for each organization every round.
//! Every answer is compared with a reference built from what was loaded.
//!
//! Per round it prints throughput, p99 and the server's resident memory,
//! then the growth from round 2 to the end (the first round warms caches
//! and the allocator up). Nothing scrapes `/metrics` unless `--scrape-secs`
//! says so: whatever a scrape would drain must stay bounded without one.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-soak -- --minutes 10
//! cargo run -p tenantry-tests --bin bench-soak -- --smoke     # CI: seconds
//! # what is still allocated when the server stops, by call site (dhat):
//! cargo run --release -p tenantry-tests --features dhat-heap --bin bench-soak -- \
//!     --minutes 2 --profile target/soak-heap.json
//! python3 tests/tools/dhat_top.py target/soak-heap.json
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
// With the profiler, every allocation of the server process is recorded.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

use clap::Parser;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{ServerProcess, authed, http_get};
use tenantry_tests::bench::{closed_loop, connect, rate};
use tonic::transport::Channel;

/// The environment variable under which the server process writes its
/// heap profile (only with the `dhat-heap` feature).
const PROFILE_ENV: &str = "SOAK_HEAP_PROFILE";

/// Soak test of the authorization path.
#[derive(Debug, Parser)]
#[command(name = "bench-soak")]
struct Args {
    /// A tiny world and three two-second rounds, to keep the program
    /// working (CI runs this).
    #[arg(long)]
    smoke: bool,
    /// Rounds of load, one per minute by default. Default: 10 (3 with
    /// --smoke).
    #[arg(long)]
    minutes: Option<u32>,
    /// Seconds per round. Default: 60 (2 with --smoke).
    #[arg(long)]
    round_secs: Option<f64>,
    /// Users, each with the organization sign-up gives them. Default: 1,000
    /// (20 with --smoke).
    #[arg(long)]
    users: Option<usize>,
    /// Members per organization, its owner included. Default: 100 (5 with
    /// --smoke).
    #[arg(long)]
    members: Option<usize>,
    /// Calls in flight: half single checks, half bulk. Default: 64 (8 with
    /// --smoke).
    #[arg(long)]
    concurrency: Option<usize>,
    /// The services the server runs.
    #[arg(long, default_value = "identity,organization,rbac,audit")]
    services: String,
    /// Postgres for the server instead of the embedded SQLite.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// NATS JetStream for the server instead of the in-process bus.
    #[arg(long, value_name = "URL")]
    nats_url: Option<String>,
    /// Scrape the server's `/metrics` this often (as Prometheus would).
    /// Default: never.
    #[arg(long, value_name = "SECONDS")]
    scrape_secs: Option<f64>,
    /// Write the server's heap profile (dhat JSON) here when it stops;
    /// needs `--features dhat-heap`.
    #[arg(long, value_name = "FILE")]
    profile: Option<std::path::PathBuf>,
}

/// What the loaded world holds, and the reference the answers are held to.
struct World {
    /// User ids, in sign-up order; user `i` owns organization `i`.
    users: Vec<String>,
    organizations: Vec<String>,
    /// The role of (organization index, user index), when a member.
    roles: HashMap<(u32, u32), Role>,
    service_account: (String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Owner,
    Admin,
    Member,
    Finance,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Owner => "roles/owner",
            Role::Admin => "roles/admin",
            Role::Member => "roles/member",
            Role::Finance => "roles/finance",
        }
    }
}

/// The permissions checked, on organizations.
const PERMISSIONS: &[&str] = &[
    "organization.read",
    "organization.members.read",
    "project.create",
    "billing.read",
];

/// The built-in role matrix for [`PERMISSIONS`]: the reference.
fn expected(role: Option<Role>, permission: &str) -> bool {
    match (role, permission) {
        (None, _) => false,
        (Some(Role::Owner), _) => true,
        (Some(Role::Admin), p) => p != "billing.read",
        (Some(Role::Member), p) => p == "organization.read",
        (Some(Role::Finance), p) => p == "organization.read" || p == "billing.read",
    }
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    // The server half: the `tenantry` program itself, started by the load
    // half below. Re-running this binary instead of a separately built
    // `tenantry` keeps `cargo run --bin bench-soak` one step and the server
    // on the code under test.
    if std::env::args().nth(1).as_deref() == Some("serve") {
        #[cfg(feature = "dhat-heap")]
        let profiler = std::env::var_os(PROFILE_ENV).map(|file| {
            report_live_heap(std::path::PathBuf::from(&file).with_extension("live"));
            dhat::Profiler::builder().file_name(file).build()
        });
        let code = tenantry::cli::main();
        #[cfg(feature = "dhat-heap")]
        {
            // The reporter must not ask a stopped profiler.
            *PROFILING.lock().unwrap_or_else(|e| e.into_inner()) = false;
            drop(profiler);
        }
        return Ok(code);
    }
    let args = Args::parse();
    anyhow::ensure!(
        args.profile.is_none() || cfg!(feature = "dhat-heap"),
        "--profile needs the binary built with `--features dhat-heap`"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(soak(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Writes the server's live heap (bytes allocated and not freed, as the
/// profiler counts them: no allocator slack) to `file` every second, for
/// the load half to read at the end of each round.
#[cfg(feature = "dhat-heap")]
fn report_live_heap(file: std::path::PathBuf) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let profiling = PROFILING.lock().unwrap_or_else(|e| e.into_inner());
            if !*profiling {
                return;
            }
            let live = dhat::HeapStats::get().curr_bytes;
            let _ = std::fs::write(&file, live.to_string());
        }
    });
}

/// Whether the server's profiler still runs (cleared before it stops).
#[cfg(feature = "dhat-heap")]
static PROFILING: std::sync::Mutex<bool> = std::sync::Mutex::new(true);

/// The server's live heap as its profiler last reported it, when profiling.
fn live_heap(profile: Option<&std::path::Path>) -> Option<u64> {
    let text = std::fs::read_to_string(profile?.with_extension("live")).ok()?;
    text.trim().parse().ok()
}

/// The CPU time a process has used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    // utime and stime are fields 14 and 15 of stat(5); 12 and 13 here.
    Ok(field(11)? + field(12)?)
}

/// Waits until the server is idle (under 5 % of a core over a second):
/// the load leaves work behind (audit ingesting every event, the relays),
/// and rounds measured while it runs would compare unlike things.
async fn settle(pid: u32, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let ticks_per_second = 100; // USER_HZ on Linux
    let mut before = cpu_ticks(pid)?;
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_ticks(pid)?;
        if (now - before) * 100 < 5 * ticks_per_second {
            break;
        }
        before = now;
    }
    Ok(started.elapsed())
}

async fn soak(args: Args) -> anyhow::Result<()> {
    let rounds = args
        .minutes
        .unwrap_or(if args.smoke { 3 } else { 10 })
        .max(1);
    let round =
        Duration::from_secs_f64(
            args.round_secs
                .unwrap_or(if args.smoke { 2.0 } else { 60.0 }),
        );
    let users = args.users.unwrap_or(if args.smoke { 20 } else { 1_000 });
    let members = args
        .members
        .unwrap_or(if args.smoke { 5 } else { 100 })
        .clamp(1, users);
    let concurrency = args
        .concurrency
        .unwrap_or(if args.smoke { 8 } else { 64 })
        .max(2);

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("tenantry.toml");
    std::fs::write(
        &config,
        "[identity]\nplatform_admins = [\"soak-admin@example.com\"]\n",
    )?;
    let mut envs = vec![("TENANTRY_CONFIG", config.display().to_string())];
    if let Some(url) = &args.database_url {
        envs.push(("DATABASE_URL", url.clone()));
    }
    if let Some(url) = &args.nats_url {
        envs.push(("NATS_URL", url.clone()));
    }
    if let Some(file) = &args.profile {
        envs.push((
            PROFILE_ENV,
            std::path::absolute(file)?.display().to_string(),
        ));
    }
    let exe = std::env::current_exe()?;
    let server = ServerProcess::start(&exe.display().to_string(), &args.services, &envs).await?;
    let url = server.url();
    println!(
        "soak: `{} serve --services {}` (pid {}), {} rounds of {:.0} s, concurrency {concurrency}",
        exe.file_name().unwrap_or_default().to_string_lossy(),
        args.services,
        server.id(),
        rounds,
        round.as_secs_f64(),
    );

    let started = Instant::now();
    let channel = connect(&url, 1).await?.remove(0);
    let world = load(&server, &channel, users, members).await?;
    println!(
        "loaded {} users and organizations, {} memberships by invitation through the API in {:.1} s ({} calls retried after UNAVAILABLE); server RSS {:.0} MiB",
        world.users.len(),
        world.roles.len(),
        started.elapsed().as_secs_f64(),
        RETRIED.load(Ordering::Relaxed),
        mib(rss_bytes(server.id())?),
    );

    let settled = settle(server.id(), Duration::from_secs(900)).await?;
    println!(
        "the server was idle again {:.0} s later (audit ingesting the load's events); RSS {:.0} MiB\n",
        settled.as_secs_f64(),
        mib(rss_bytes(server.id())?),
    );

    let scraper = args.scrape_secs.map(|secs| {
        let addr = server.http_addr;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs_f64(secs.max(0.1))).await;
                let _ = http_get(addr, "/metrics").await;
            }
        })
    });

    let world = Arc::new(world);
    let channels = connect(&url, concurrency.div_ceil(8)).await?;
    // A row per round as it ends: a long soak shows its trend as it goes.
    let row = |cells: [String; 9]| {
        println!(
            "  {:>5}  {:>14}  {:>12}  {:>9}  {:>13}  {:>11}  {:>7}  {:>8}  {:>5}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8]
        )
    };
    row([
        "round",
        "single calls/s",
        "bulk calls/s",
        "checks/s",
        "single p99 µs",
        "bulk p99 µs",
        "RSS MiB",
        "heap MiB",
        "wrong",
    ]
    .map(String::from));
    let mut results: Vec<Round> = Vec::new();
    for n in 1..=rounds {
        let tokens = Arc::new(issue_tokens(&channel, &world).await?);
        let result = load_round(&channels, concurrency, round, &world, &tokens, n).await?;
        let rss = rss_bytes(server.id())?;
        row([
            n.to_string(),
            rate(result.single.per_second()),
            rate(result.bulk.per_second()),
            rate(result.checks_per_second()),
            result.single.quantile_us(0.99).to_string(),
            result.bulk.quantile_us(0.99).to_string(),
            format!("{:.0}", mib(rss)),
            live_heap(args.profile.as_deref()).map_or("-".into(), |b| format!("{:.1}", mib(b))),
            result.wrong.to_string(),
        ]);
        anyhow::ensure!(
            result.wrong == 0,
            "round {n}: the server gave wrong answers"
        );
        results.push(Round { rss, ..result });
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    summarize(&results);

    if args.profile.is_some() {
        let status = server.terminate()?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        println!(
            "heap profile written to {}",
            args.profile.unwrap_or_default().display()
        );
    }
    Ok(())
}

/// What one round measured.
struct Round {
    single: tenantry_tests::bench::Run,
    bulk: tenantry_tests::bench::Run,
    wrong: u64,
    rss: u64,
}

impl Round {
    fn checks_per_second(&self) -> f64 {
        self.single.per_second() + 10.0 * self.bulk.per_second()
    }
}

/// RSS from round 2 to the last, and throughput from the first to the last.
fn summarize(results: &[Round]) {
    let (Some(first), Some(last)) = (results.first(), results.last()) else {
        return;
    };
    let baseline = results.get(1).unwrap_or(first);
    println!(
        "\nRSS round 2 → last: {:.0} → {:.0} MiB ({:+.1}%); checks/s round 1 → last: {} → {} ({:+.1}%)",
        mib(baseline.rss),
        mib(last.rss),
        percent(baseline.rss as f64, last.rss as f64),
        rate(first.checks_per_second()),
        rate(last.checks_per_second()),
        percent(first.checks_per_second(), last.checks_per_second()),
    );
}

fn percent(from: f64, to: f64) -> f64 {
    (to / from.max(f64::MIN_POSITIVE) - 1.0) * 100.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The resident memory of a process, from `/proc`.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for process {pid}"))?;
    Ok(kib * 1024)
}

/// Signs the users up, waits until each organization is in the index,
/// brings the members in by invitation, and creates the service account.
async fn load(
    server: &ServerProcess,
    channel: &Channel,
    users: usize,
    members: usize,
) -> anyhow::Result<World> {
    let identity_client =
        identity::identity_service_client::IdentityServiceClient::new(channel.clone());
    let signed_up: Vec<(String, String, String)> = futures::stream::iter(0..users)
        .map(|i| {
            let mut client = identity_client.clone();
            async move {
                let response = client
                    .sign_up(identity::SignUpRequest {
                        email: format!("soak-{i}@example.com"),
                        password: "correct horse battery staple".into(),
                        display_name: format!("Soak {i}"),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let user = response.user.unwrap_or_default().name;
                let organization = response.organization;
                let token = response.tokens.unwrap_or_default().access_token;
                anyhow::Ok((
                    strip(&user, "users/"),
                    strip(&organization, "organizations/"),
                    token,
                ))
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    // Each organization gets `members - 1` more members: the next users
    // in sign-up order, with a mix of roles.
    let mut rng = StdRng::seed_from_u64(23);
    let mut roles = HashMap::new();
    let mut plan = Vec::new();
    for o in 0..users {
        roles.insert((o as u32, o as u32), Role::Owner);
        for k in 1..members {
            let u = (o + k) % users;
            let role = match rng.random_range(0..20) {
                0..=11 => Role::Member,
                12..=16 => Role::Admin,
                _ => Role::Finance,
            };
            roles.insert((o as u32, u as u32), role);
            plan.push((o, u, role));
        }
    }
    let owners: Vec<_> = signed_up
        .iter()
        .map(|(u, o, t)| (u.clone(), o.clone(), t.clone()))
        .collect();
    futures::stream::iter(owners.iter())
        .map(|(user, organization, token)| wait_known(channel, user, organization, token))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    // People join by invitation: each address verified, every invitation
    // made, then each accepted by its invitee (the mails read in one pass).
    let verifications = server.mails("verify_email");
    futures::stream::iter(verifications)
        .map(|(_, token)| {
            let client = identity_client.clone();
            async move {
                retry_unavailable(|| {
                    let mut client = client.clone();
                    let token = token.clone();
                    async move {
                        client
                            .verify_email(identity::VerifyEmailRequest { token })
                            .await
                    }
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let invitations =
        rbac::invitation_service_client::InvitationServiceClient::new(channel.clone());
    futures::stream::iter(plan)
        .map(|(o, u, role)| {
            let client = invitations.clone();
            let (_, organization, token) = &signed_up[o];
            let message = rbac::CreateInvitationRequest {
                parent: format!("organizations/{organization}"),
                invitation: Some(rbac::Invitation {
                    email: format!("soak-{u}@example.com"),
                    roles: vec![role.name().into()],
                    ..Default::default()
                }),
                // A retry replays instead of inviting twice.
                request_id: tenantry_kit::id::new_id().to_string(),
                ..Default::default()
            };
            async move {
                retry_unavailable(|| {
                    let mut client = client.clone();
                    let request = authed(message.clone(), token);
                    async move { client.create_invitation(request).await }
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let invitees: HashMap<String, &str> = signed_up
        .iter()
        .enumerate()
        .map(|(i, (_, _, token))| (format!("soak-{i}@example.com"), token.as_str()))
        .collect();
    futures::stream::iter(server.mails("invitation"))
        .map(|(to, token)| {
            let client = invitations.clone();
            let bearer = invitees.get(&to).copied().unwrap_or_default();
            async move {
                retry_unavailable(|| {
                    let mut client = client.clone();
                    let request = authed(
                        rbac::AcceptInvitationRequest {
                            token: token.clone(),
                        },
                        bearer,
                    );
                    async move { client.accept_invitation(request).await }
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

    let admin = identity_client
        .clone()
        .sign_up(identity::SignUpRequest {
            email: "soak-admin@example.com".into(),
            password: "correct horse battery staple".into(),
            display_name: "Soak admin".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .tokens
        .unwrap_or_default()
        .access_token;
    let mut accounts =
        identity::service_account_service_client::ServiceAccountServiceClient::new(channel.clone());
    let account = accounts
        .create_service_account(authed(
            identity::CreateServiceAccountRequest {
                service_account: Some(identity::ServiceAccount {
                    display_name: "soak-checker".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner()
        .service_account
        .unwrap_or_default();
    let credential = accounts
        .create_service_account_credential(authed(
            identity::CreateServiceAccountCredentialRequest {
                parent: account.name,
                credential: Some(identity::ServiceAccountCredential::default()),
                request_id: String::new(),
            },
            &admin,
        ))
        .await?
        .into_inner();
    let client_id = credential.credential.unwrap_or_default().client_id;
    Ok(World {
        users: signed_up.iter().map(|(u, _, _)| u.clone()).collect(),
        organizations: signed_up.into_iter().map(|(_, o, _)| o).collect(),
        roles,
        service_account: (client_id, credential.client_secret),
    })
}

/// Calls that answered UNAVAILABLE and were tried again while loading.
static RETRIED: AtomicU64 = AtomicU64::new(0);

/// Calls `call` until it answers something other than UNAVAILABLE (at most
/// five times, backing off), as a gRPC client is expected to: UNAVAILABLE
/// says the call changed nothing and may be retried.
async fn retry_unavailable<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..4 {
        match call().await {
            Err(status) if status.code() == tonic::Code::Unavailable => {
                RETRIED.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            result => return result.map(tonic::Response::into_inner),
        }
    }
    call().await.map(tonic::Response::into_inner)
}

fn strip(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

/// Waits until the owner may manage the members of their new organization:
/// an organization reaches the authorization index through its event.
async fn wait_known(
    channel: &Channel,
    user: &str,
    organization: &str,
    token: &str,
) -> anyhow::Result<()> {
    let mut client =
        authz::authorization_service_client::AuthorizationServiceClient::new(channel.clone());
    for _ in 0..400 {
        let answer = client
            .check_permission(authed(
                check(user, organization, "organization.members.manage"),
                token,
            ))
            .await?
            .into_inner();
        if answer.permissionship() == authz::Permissionship::Allowed {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("organization {organization} never reached the index")
}

fn check(user: &str, organization: &str, permission: &str) -> authz::CheckPermissionRequest {
    authz::CheckPermissionRequest {
        consistency: None,
        resource: Some(authz::ObjectReference {
            object_type: "organization".into(),
            object_id: organization.into(),
        }),
        permission: permission.into(),
        subject: Some(authz::SubjectReference {
            object: Some(authz::ObjectReference {
                object_type: "user".into(),
                object_id: user.into(),
            }),
            optional_relation: String::new(),
        }),
        with_tracing: false,
    }
}

/// A fresh service-account token for every organization: what a caller
/// that renews its tokens does.
async fn issue_tokens(channel: &Channel, world: &World) -> anyhow::Result<Vec<String>> {
    let client =
        identity::service_account_service_client::ServiceAccountServiceClient::new(channel.clone());
    let (client_id, secret) = &world.service_account;
    futures::stream::iter(world.organizations.iter())
        .map(|organization| {
            let mut client = client.clone();
            let request = identity::IssueServiceAccountTokenRequest {
                client_id: client_id.clone(),
                client_secret: secret.clone(),
                organization: format!("organizations/{organization}"),
            };
            async move {
                anyhow::Ok(
                    client
                        .issue_service_account_token(request)
                        .await?
                        .into_inner()
                        .access_token,
                )
            }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// A question the load asks: (organization index, user index, permission).
fn question(rng: &mut StdRng, world: &World) -> (u32, u32, &'static str) {
    let o = rng.random_range(0..world.organizations.len());
    // Half the questions are about members, so answers mix.
    let u = if rng.random_bool(0.5) {
        let members = world.roles.len() / world.organizations.len();
        (o + rng.random_range(0..members.max(1))) % world.users.len()
    } else {
        rng.random_range(0..world.users.len())
    };
    let permission = PERMISSIONS[rng.random_range(0..PERMISSIONS.len())];
    (o as u32, u as u32, permission)
}

/// One round: half the clients call `CheckPermission`, half
/// `CheckBulkPermissions` with 10 checks, for `duration`.
async fn load_round(
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
    world: &Arc<World>,
    tokens: &Arc<Vec<String>>,
    round: u32,
) -> anyhow::Result<Round> {
    let wrong = Arc::new(AtomicU64::new(0));
    let clients = |offset: usize| -> Vec<_> {
        (0..concurrency / 2)
            .map(|i| {
                authz::authorization_service_client::AuthorizationServiceClient::new(
                    channels[(i * 2 + offset) % channels.len()].clone(),
                )
            })
            .collect()
    };
    let single = {
        let (world, tokens, wrong) = (world.clone(), tokens.clone(), wrong.clone());
        closed_loop(clients(0), duration, move |mut client, task, n| {
            let mut rng = StdRng::seed_from_u64(seed(round, task, n, 0));
            let (o, u, permission) = question(&mut rng, &world);
            let request = authed(
                check(
                    &world.users[u as usize],
                    &world.organizations[o as usize],
                    permission,
                ),
                &tokens[o as usize],
            );
            let want = expected(world.roles.get(&(o, u)).copied(), permission);
            let wrong = wrong.clone();
            async move {
                let answer = client.check_permission(request).await?.into_inner();
                if (answer.permissionship() == authz::Permissionship::Allowed) != want {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        })
    };
    let bulk = {
        let (world, tokens, wrong) = (world.clone(), tokens.clone(), wrong.clone());
        closed_loop(clients(1), duration, move |mut client, task, n| {
            let mut rng = StdRng::seed_from_u64(seed(round, task, n, 1));
            // One organization per call: the token is for it.
            let (o, _, _) = question(&mut rng, &world);
            let mut wants = Vec::with_capacity(10);
            let items = (0..10)
                .map(|_| {
                    let (_, u, permission) = question(&mut rng, &world);
                    wants.push(expected(world.roles.get(&(o, u)).copied(), permission));
                    let single = check(
                        &world.users[u as usize],
                        &world.organizations[o as usize],
                        permission,
                    );
                    authz::CheckBulkPermissionsRequestItem {
                        resource: single.resource,
                        permission: single.permission,
                        subject: single.subject,
                    }
                })
                .collect();
            let request = authed(
                authz::CheckBulkPermissionsRequest {
                    consistency: None,
                    items,
                },
                &tokens[o as usize],
            );
            let wrong = wrong.clone();
            async move {
                let pairs = client
                    .check_bulk_permissions(request)
                    .await?
                    .into_inner()
                    .pairs;
                anyhow::ensure!(pairs.len() == wants.len(), "short bulk answer");
                for (pair, want) in pairs.iter().zip(wants) {
                    let allowed = matches!(
                        &pair.response,
                        Some(authz::check_bulk_permissions_pair::Response::Item(item))
                            if item.permissionship() == authz::Permissionship::Allowed
                    );
                    if allowed != want {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
        })
    };
    let (single, bulk) = tokio::try_join!(single, bulk)?;
    Ok(Round {
        single,
        bulk,
        wrong: wrong.load(Ordering::Relaxed),
        rss: 0,
    })
}

fn seed(round: u32, task: usize, n: u64, kind: u64) -> u64 {
    (u64::from(round) << 48) ^ ((task as u64) << 32) ^ (n << 1) ^ kind
}
