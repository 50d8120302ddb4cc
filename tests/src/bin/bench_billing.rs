//! Billing benchmarks: the quota check that sits in front of every create,
//! and metering throughput.
//!
//! 1. `CheckQuota` at the bottom of a five-level organization tree (with a
//!    limit set on an ancestor, so every level is read), as the owner's own
//!    token would come from the organization service, against the public
//!    `Health/Check` on the same server as the transport floor. The check
//!    includes its authorization (`organization.read`, asked of rbac in the
//!    same process over gRPC) and its reads: the node, the subscription(s)
//!    behind the pool, and one read each of the limits and counters of the
//!    node's ancestors.
//! 2. `RecordUsage` with a fresh idempotency key per call (a write: the
//!    record, the counters of every ancestor and the pool, the outbox
//!    event, in one transaction), and replays of one key (a read).
//!
//! The server is a [`Sandbox`] with identity, organization, rbac and
//! billing on SQLite (or Postgres with `--postgres`, using
//! `TENANTRY_TEST_DATABASE_URL`), client and server in one process. Numbers
//! compare rows of one run; nothing asserts a time.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-billing
//! cargo run -p tenantry-tests --bin bench-billing -- --smoke   # CI: just keep it working
//! ```

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_testkit::{Sandbox, Storage, authed};
use tenantry_tests::bench::{Run, channels, print_table, rate, timing, warm_then_measure};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Benchmarks of the billing service's quota check and metering.
#[derive(Debug, Parser)]
#[command(name = "bench-billing")]
struct Args {
    /// Run each measurement for a fraction of a second, to check that the
    /// benchmark still works (CI runs this).
    #[arg(long)]
    smoke: bool,
    /// Seconds each measurement runs, after its warm-up. Default: 5, or 0.25
    /// with `--smoke`.
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Store on the Postgres database of `TENANTRY_TEST_DATABASE_URL`
    /// instead of SQLite.
    #[arg(long)]
    postgres: bool,
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn id(name: &str) -> String {
    name.rsplit('/').next().unwrap_or_default().to_string()
}

fn row(name: &str, run: &Run, floor: Option<&Run>) -> Vec<String> {
    let ratio = floor
        .map(|f| {
            format!(
                "{:.2}",
                run.quantile_us(0.5) as f64 / f.quantile_us(0.5).max(1) as f64
            )
        })
        .unwrap_or_default();
    vec![
        name.to_string(),
        rate(run.per_second()),
        run.quantile_us(0.5).to_string(),
        run.quantile_us(0.99).to_string(),
        ratio,
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (measure, warmup) = timing(args.smoke, args.duration_secs)?;
    if args.postgres && std::env::var("TENANTRY_TEST_DATABASE_URL").is_err() {
        bail!("--postgres needs TENANTRY_TEST_DATABASE_URL");
    }
    let storage = if args.postgres {
        Storage::Postgres
    } else {
        Storage::Sqlite
    };
    // The FREE plan allows two sub-organizations; the benchmark's tree
    // needs four, so its catalog file replaces FREE with a plan without
    // limits (as a deployment's file would), and the limit that decides is
    // the one set on the tree's second level.
    let catalog = tempfile::tempdir()?;
    let catalog_path = catalog.path().join("plans.toml");
    std::fs::write(
        &catalog_path,
        "[plans.free]\ndisplay_name = \"Unlimited\"\ncurrency_code = \"USD\"\n",
    )?;
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
            ServiceKind::Billing,
        ])
        .storage(storage)
        .configure(move |config| config.billing.catalog_file = Some(catalog_path))
        .start()
        .await?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bench-billing: {} build{}, {cpus} CPUs, {}, local bus, client and server in one process; \
         warm-up {:.2} s and measurement {:.2} s each",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if args.smoke { ", smoke run" } else { "" },
        if args.postgres { "Postgres" } else { "SQLite" },
        warmup.as_secs_f64(),
        measure.as_secs_f64(),
    );

    // An owner and a five-level tree, a limit on the second level.
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
    let mut organizations =
        org::organization_service_client::OrganizationServiceClient::new(channel.clone());
    let mut path: Vec<String> = Vec::new();
    for level in 0..5 {
        // The owner's access to the parent reaches rbac as an event: retry
        // (with the same request id, so nothing is created twice).
        let request_id = tenantry_kit::id::new_id().to_string();
        let mut created = None;
        let mut last_error = None;
        for _ in 0..400 {
            let answer = organizations
                .create_organization(authed(
                    org::CreateOrganizationRequest {
                        organization: Some(org::Organization {
                            display_name: format!("Level {level}"),
                            parent: path
                                .last()
                                .map(|p| format!("organizations/{p}"))
                                .unwrap_or_default(),
                            ..Default::default()
                        }),
                        request_id: request_id.clone(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await;
            match answer {
                Ok(answer) => {
                    created = answer.into_inner().organization;
                    break;
                }
                Err(status) => last_error = Some(status),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let created = created.with_context(|| format!("creating the tree: {last_error:?}"))?;
        path.push(id(&created.name));
    }
    let leaf = path.last().cloned().context("a tree")?;
    let mut entitlements =
        pb::entitlement_service_client::EntitlementServiceClient::new(channel.clone());
    // The owner's membership reaches rbac as an event; wait for it.
    let mut ready = false;
    for _ in 0..400 {
        let set = entitlements
            .set_limit(authed(
                pb::SetLimitRequest {
                    organization: format!("organizations/{}", path[1]),
                    metric: pb::Metric::Projects as i32,
                    value: 1_000,
                },
                &token,
            ))
            .await;
        if set.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !ready {
        bail!("the owner never got access to the tree");
    }

    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for clients in [1usize, 4] {
        let connections = channels(&sandbox, clients).await?;
        let health: Vec<_> = connections.iter().cloned().map(HealthClient::new).collect();
        let floor = warm_then_measure(warmup, measure, health, |mut client, _, _| async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            Ok(())
        })
        .await?;
        let quota_clients: Vec<_> = connections
            .iter()
            .cloned()
            .map(pb::entitlement_service_client::EntitlementServiceClient::new)
            .collect();
        let (leaf_name, quota_token) = (format!("organizations/{leaf}"), token.clone());
        let quota = warm_then_measure(warmup, measure, quota_clients, move |mut client, _, _| {
            let request = authed(
                pb::CheckQuotaRequest {
                    organization: leaf_name.clone(),
                    metric: pb::Metric::Projects as i32,
                    delta: 1,
                    reservation_id: String::new(),
                },
                &quota_token,
            );
            async move {
                let answer = client.check_quota(request).await?.into_inner();
                if !answer.allowed || answer.limit != Some(1_000) {
                    bail!("unexpected answer {answer:?}");
                }
                Ok(())
            }
        })
        .await?;
        let usage_clients: Vec<_> = connections
            .iter()
            .cloned()
            .map(pb::usage_service_client::UsageServiceClient::new)
            .collect();
        let (record_name, record_token) = (format!("organizations/{leaf}"), token.clone());
        let record = warm_then_measure(
            warmup,
            measure,
            usage_clients.clone(),
            move |mut client, task, n| {
                let request = authed(
                    pb::RecordUsageRequest {
                        organization: record_name.clone(),
                        metric: pb::Metric::Deployments as i32,
                        quantity: 1,
                        idempotency_key: format!(
                            "c{clients}-t{task}-n{n}-{}",
                            tenantry_kit::id::new_id()
                        ),
                        usage_time: None,
                    },
                    &record_token,
                );
                async move {
                    let response = client.record_usage(request).await?.into_inner();
                    if response.replayed {
                        bail!("a fresh key was replayed");
                    }
                    Ok(())
                }
            },
        )
        .await?;
        let (replay_name, replay_token) = (format!("organizations/{leaf}"), token.clone());
        let replay = warm_then_measure(warmup, measure, usage_clients, move |mut client, _, _| {
            let request = authed(
                pb::RecordUsageRequest {
                    organization: replay_name.clone(),
                    metric: pb::Metric::Deployments as i32,
                    quantity: 1,
                    idempotency_key: "the-same-key".into(),
                    usage_time: None,
                },
                &replay_token,
            );
            async move {
                client.record_usage(request).await?;
                Ok(())
            }
        })
        .await?;
        rows.push(row(&format!("Health (floor) c={clients}"), &floor, None));
        rows.push(row(
            &format!("CheckQuota depth 5 c={clients}"),
            &quota,
            Some(&floor),
        ));
        rows.push(row(
            &format!("RecordUsage new key c={clients}"),
            &record,
            Some(&floor),
        ));
        rows.push(row(
            &format!("RecordUsage replay c={clients}"),
            &replay,
            Some(&floor),
        ));
        summary.push(format!(
            "c={clients}: CheckQuota p50 {} µs p99 {} µs; RecordUsage {} records/s",
            quota.quantile_us(0.5),
            quota.quantile_us(0.99),
            rate(record.per_second())
        ));
    }
    print_table(
        &["measurement", "calls/s", "p50 µs", "p99 µs", "p50 / floor"],
        &rows,
    );
    for line in summary {
        println!("{line}");
    }
    sandbox.shutdown().await?;
    Ok(())
}
