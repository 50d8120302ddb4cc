//! Gateway benchmark: what the edge adds to a call. The same RPC —
//! `CheckPermission`, served from memory, so the backend costs little and
//! the difference is the gateway's — is called:
//!
//! 1. directly over gRPC (the floor),
//! 2. as REST/JSON through the gateway (edge token verification, rate
//!    limit, JSON → protobuf, a gRPC hop to the backend, protobuf → JSON),
//! 3. as gRPC-Web through the gateway (HTTP/1.1),
//! 4. as plain gRPC through the gateway's port.
//!
//! Client and server share one process on SQLite; the FREE plan's rate
//! limits are raised (by a catalog file) so the limiter runs but never
//! refuses. Numbers compare rows of one run; nothing asserts a time.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-gateway
//! cargo run -p tenantry-tests --bin bench-gateway -- --smoke   # CI: just keep it working
//! ```

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_testkit::{Sandbox, Storage, authed};
use tenantry_tests::bench::{Run, channels, connect, print_table, rate, timing, warm_then_measure};

/// Benchmarks of the gateway's added latency.
#[derive(Debug, Parser)]
#[command(name = "bench-gateway")]
struct Args {
    /// Run each measurement for a fraction of a second, to check that the
    /// benchmark still works (CI runs this).
    #[arg(long)]
    smoke: bool,
    /// Seconds each measurement runs, after its warm-up. Default: 5, or 0.25
    /// with `--smoke`.
    #[arg(long)]
    duration_secs: Option<f64>,
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn row(name: &str, run: &Run, floor: &Run) -> Vec<String> {
    let p50 = run.quantile_us(0.5);
    vec![
        name.to_string(),
        rate(run.per_second()),
        p50.to_string(),
        run.quantile_us(0.99).to_string(),
        format!("{}", p50 as i64 - floor.quantile_us(0.5) as i64),
        format!("{:.2}", p50 as f64 / floor.quantile_us(0.5).max(1) as f64),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (measure, warmup) = timing(args.smoke, args.duration_secs)?;
    let catalog = tempfile::tempdir()?;
    let catalog_path = catalog.path().join("plans.toml");
    std::fs::write(
        &catalog_path,
        "[plans.free]\ndisplay_name = \"Bench\"\ncurrency_code = \"USD\"\n\
         [plans.free.limits.rate_limits_per_minute]\nread = 1000000000\nwrite = 1000000000\n",
    )?;
    let sandbox = Sandbox::builder()
        .services(&ServiceKind::ALL)
        .storage(Storage::Sqlite)
        .configure(move |config| config.billing.catalog_file = Some(catalog_path))
        .start()
        .await?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bench-gateway: {} build{}, {cpus} CPUs, SQLite, client and server in one process; \
         warm-up {:.2} s and measurement {:.2} s each",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if args.smoke { ", smoke run" } else { "" },
        warmup.as_secs_f64(),
        measure.as_secs_f64(),
    );

    let channel = sandbox.channel().await?;
    let signed_up =
        identity_pb::identity_service_client::IdentityServiceClient::new(channel.clone())
            .sign_up(identity_pb::SignUpRequest {
                email: "bench@example.com".into(),
                password: "correct horse battery staple".into(),
                display_name: "Bench".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
    let token = signed_up.tokens.context("tokens")?.access_token;
    let user = signed_up.user.context("user")?.name.replace("users/", "");
    let org = signed_up.organization.replace("organizations/", "");
    let request = authz::CheckPermissionRequest {
        consistency: None,
        resource: Some(authz::ObjectReference {
            object_type: "organization".into(),
            object_id: org.clone(),
        }),
        permission: "organization.read".into(),
        subject: Some(authz::SubjectReference {
            object: Some(authz::ObjectReference {
                object_type: "user".into(),
                object_id: user.clone(),
            }),
            optional_relation: String::new(),
        }),
        with_tracing: false,
    };
    // The first organization reaches the authorization index as an event.
    let mut checks =
        authz::authorization_service_client::AuthorizationServiceClient::new(channel.clone());
    let mut ready = false;
    for _ in 0..400 {
        let answer = checks
            .check_permission(authed(request.clone(), &token))
            .await;
        if answer.is_ok_and(|a| a.into_inner().permissionship() == authz::Permissionship::Allowed) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::ensure!(ready, "the owner never got organization.read");

    let body = Bytes::from(
        serde_json::json!({
            "resource": {"objectType": "organization", "objectId": org},
            "permission": "organization.read",
            "subject": {"object": {"objectType": "user", "objectId": user}},
        })
        .to_string(),
    );
    let rest = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url: http::Uri = format!("{}/v1/authz:check", sandbox.http_url()).parse()?;
    let bearer = format!("Bearer {token}");
    let rest_call = {
        let (url, bearer, body) = (url.clone(), bearer.clone(), body.clone());
        move |client: Client<_, Full<Bytes>>, _task: usize, _n: u64| {
            let request = http::Request::post(url.clone())
                .header("authorization", bearer.clone())
                .header("content-type", "application/json")
                .body(Full::new(body.clone()));
            async move {
                let response = client.request(request?).await?;
                anyhow::ensure!(response.status() == 200, "status {}", response.status());
                let bytes = response.into_body().collect().await?.to_bytes();
                anyhow::ensure!(
                    bytes.windows(22).any(|w| w == b"PERMISSIONSHIP_ALLOWED"),
                    "not allowed"
                );
                Ok(())
            }
        }
    };
    let grpc_call = {
        let (request, token) = (request.clone(), token.clone());
        move |channel: tonic::transport::Channel, _task: usize, _n: u64| {
            let (request, token) = (request.clone(), token.clone());
            async move {
                let answer =
                    authz::authorization_service_client::AuthorizationServiceClient::new(channel)
                        .check_permission(authed(request, &token))
                        .await?
                        .into_inner();
                anyhow::ensure!(answer.permissionship() == authz::Permissionship::Allowed);
                Ok(())
            }
        }
    };
    let web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let origin: http::Uri = sandbox.http_url().parse()?;
    let web_call = {
        let (request, token, origin) = (request.clone(), token.clone(), origin.clone());
        move |service: _, _task: usize, _n: u64| {
            let (request, token, origin) = (request.clone(), token.clone(), origin.clone());
            async move {
                let answer =
                    authz::authorization_service_client::AuthorizationServiceClient::with_origin(
                        service, origin,
                    )
                    .check_permission(authed(request, &token))
                    .await?
                    .into_inner();
                anyhow::ensure!(answer.permissionship() == authz::Permissionship::Allowed);
                Ok(())
            }
        }
    };

    let mut rows = Vec::new();
    for concurrency in [1, 4] {
        let direct = warm_then_measure(
            warmup,
            measure,
            channels(&sandbox, concurrency).await?,
            grpc_call.clone(),
        )
        .await?;
        let rest_run = warm_then_measure(
            warmup,
            measure,
            vec![rest.clone(); concurrency],
            rest_call.clone(),
        )
        .await?;
        let web_run = warm_then_measure(
            warmup,
            measure,
            vec![web.clone(); concurrency],
            web_call.clone(),
        )
        .await?;
        let through = warm_then_measure(
            warmup,
            measure,
            connect(&sandbox.http_url(), concurrency).await?,
            grpc_call.clone(),
        )
        .await?;
        rows.push(row(
            &format!("gRPC direct (floor) c={concurrency}"),
            &direct,
            &direct,
        ));
        rows.push(row(
            &format!("REST/JSON via gateway c={concurrency}"),
            &rest_run,
            &direct,
        ));
        rows.push(row(
            &format!("gRPC-Web via gateway c={concurrency}"),
            &web_run,
            &direct,
        ));
        rows.push(row(
            &format!("gRPC via gateway port c={concurrency}"),
            &through,
            &direct,
        ));
    }
    print_table(
        &[
            "CheckPermission",
            "calls/s",
            "p50 µs",
            "p99 µs",
            "+p50 µs",
            "p50/floor",
        ],
        &rows,
    );
    sandbox.shutdown().await?;
    Ok(())
}
