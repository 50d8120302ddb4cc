//! Audit benchmarks: ingest throughput, and filtered listing over a large
//! log.
//!
//! 1. **Ingest**: `--ingest` events (default 20,000; across 100
//!    organizations) are published on the bus by a second publisher on the
//!    same database, as other services' relays would; the audit service
//!    consumes them, chains each into its organization's log and commits.
//!    Printed: events per second from the first publish to the last row.
//! 2. **Listing**: `--events` rows (default 1,000,000; 10,000,000 on
//!    Postgres is `--postgres --events 10000000`) are generated straight into
//!    the audit table with SQL (a realistic spread: 1,000 organizations, 50
//!    actors, 40 action names, targets), then `ListAuditEvents` pages of 50
//!    with filters (none, action, action prefix, actor, target, time range)
//!    run as closed loops, as the owner of the largest organization (a
//!    tenth of the rows), and print calls/s and p50/p99. The log's hash
//!    chains are not valid for generated rows; listing does not read them.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-audit
//! cargo run -p tenantry-tests --bin bench-audit -- --smoke   # CI: just keep it working
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use prost::Message as _;
use tenantry::services::ServiceKind;
use tenantry_kit::bus::{BusMessage, EventBus, LocalBus};
use tenantry_proto::tenantry::audit::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_testkit::{Sandbox, Storage, authed};
use tenantry_tests::bench::{channels, print_table, rate, warm_then_measure};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of the audit service.
#[derive(Debug, Parser)]
#[command(name = "bench-audit")]
struct Args {
    /// Small sizes and short runs, to check the benchmark still works.
    #[arg(long)]
    smoke: bool,
    /// Events ingested through the bus.
    #[arg(long)]
    ingest: Option<u64>,
    /// Rows generated for the listing measurements.
    #[arg(long)]
    events: Option<u64>,
    /// Seconds each listing measurement runs.
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Store on the Postgres database of `TENANTRY_TEST_DATABASE_URL`.
    #[arg(long)]
    postgres: bool,
}

const ORGANIZATIONS: u64 = 100;

fn org_id(n: u64) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

fn event(n: u64) -> events::Event {
    let organization = org_id(n % ORGANIZATIONS);
    events::Event {
        id: uuid::Uuid::now_v7().to_string(),
        r#type: "project.created".into(),
        source: "organization".into(),
        aggregate_type: "project".into(),
        aggregate_id: format!("p{n}"),
        sequence: 1,
        organization_id: organization.clone(),
        root_organization_id: organization.clone(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_800_000_000 + n as i64,
            nanos: 0,
        }),
        actor: Some(events::Actor {
            kind: events::actor::Kind::User as i32,
            id: format!("user-{}", n % 50),
            display_name: format!("User {}", n % 50),
        }),
        request: Some(events::RequestContext {
            request_id: format!("req-{n}"),
            ..Default::default()
        }),
        payload: Some(
            prost_types::Any::from_msg(&events::ProjectCreated {
                project_id: format!("p{n}"),
                organization_id: organization,
                slug: format!("p{n}"),
                display_name: format!("Project {n}"),
                ..Default::default()
            })
            .expect("encodes"),
        ),
        changes: Vec::new(),
        targets: vec![events::Target {
            r#type: "project".into(),
            id: format!("p{n}"),
            name: format!("Project {n}"),
        }],
    }
}

/// The SQL that generates `count` rows: 1,000 organizations, sequences
/// without gaps per organization, 50 actors, 40 actions, a target each.
fn generate_sql(postgres: bool, count: u64, measured: &str) -> Vec<String> {
    let series = if postgres {
        format!("SELECT g AS n FROM generate_series(1::bigint, {count}) AS g")
    } else {
        format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) SELECT n FROM s"
        )
    };
    let text = |expr: &str| {
        if postgres {
            format!("({expr})::text")
        } else {
            format!("CAST({expr} AS TEXT)")
        }
    };
    let pad = if postgres {
        "lpad((n % 1000)::text, 12, '0')".to_string()
    } else {
        "substr('000000000000' || (n % 1000), -12, 12)".to_string()
    };
    // A tenth of the rows belong to one real organization, whose owner
    // lists it (a large tenant); the rest to 999 others. Sequences start
    // at 100,000 so they never meet the measured organization's real chain.
    let org = format!(
        "CASE WHEN n % 10 = 7 THEN '{measured}' ELSE '10000000-0000-7000-8000-' || {pad} END"
    );
    let sequence = "(CASE WHEN n % 10 = 7 THEN n / 10 ELSE n / 1000 END + 100000)";
    vec![
        format!(
            "INSERT INTO audit_events (id, scope, root_id, sequence, occurred_at_us, ingested_at_us, actor_kind, actor_id, actor_name, action, source, targets, outcome, client_address, user_agent, request_id, trace_id, changes, metadata, metadata_truncated, previous_hash, hash)
             SELECT 'gen-' || {n}, {org}, {org}, {sequence}, 1700000000000000 + n * 1000, 1700000000000000 + n * 1000, 1,
                    'actor-' || {actor}, 'Actor', 'resource' || {action} || '.changed', 'organization',
                    '[{{\"type\":\"project\",\"id\":\"t' || {target} || '\",\"name\":\"x\"}}]', 1, '', '', 'req-' || {n}, '', '[]', '{{}}', 0, '', ''
             FROM ({series}) AS s",
            n = text("n"),
            actor = text("n % 50"),
            action = text("n % 40"),
            target = text("n % 100000"),
            sequence = sequence,
        ),
        format!(
            "INSERT INTO audit_targets (event_id, scope, sequence, target_type, target_id)
             SELECT 'gen-' || {n}, {org}, {sequence}, 'project', 't' || {target} FROM ({series}) AS s",
            n = text("n"),
            target = text("n % 100000"),
            sequence = sequence,
        ),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ingest_count = args.ingest.unwrap_or(if args.smoke { 200 } else { 20_000 });
    let generated = args
        .events
        .unwrap_or(if args.smoke { 2_000 } else { 1_000_000 });
    let secs = args
        .duration_secs
        .unwrap_or(if args.smoke { 0.25 } else { 4.0 });
    if !(secs.is_finite() && secs > 0.0) {
        bail!("--duration-secs must be positive");
    }
    let measure = Duration::from_secs_f64(secs);
    let warmup = if args.smoke {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(1)
    };
    if args.postgres && std::env::var("TENANTRY_TEST_DATABASE_URL").is_err() {
        bail!("--postgres needs TENANTRY_TEST_DATABASE_URL");
    }
    let storage = if args.postgres {
        Storage::Postgres
    } else {
        Storage::Sqlite
    };
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
            ServiceKind::Audit,
        ])
        .storage(storage)
        .start()
        .await?;
    println!(
        "bench-audit: {} build{}, {} CPUs, {}, local bus, client and server in one process",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if args.smoke { ", smoke run" } else { "" },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if args.postgres { "Postgres" } else { "SQLite" },
    );
    let db = sandbox.database.connect_as_operator().await?;

    // 1. Ingest through the bus.
    let publisher = LocalBus::new(db.clone());
    let started = Instant::now();
    for n in 0..ingest_count {
        let event = event(n);
        publisher
            .publish(&BusMessage {
                subject: tenantry_kit::outbox::subject_for("organization", "project.created"),
                event_id: event.id.clone(),
                payload: event.encode_to_vec().into(),
            })
            .await?;
    }
    let published = started.elapsed();
    loop {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = 'project.created'")
                .fetch_one(db.pool())
                .await?;
        if count as u64 >= ingest_count {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("ingest did not finish: {count} of {ingest_count}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ingested = started.elapsed();
    println!(
        "ingest: {ingest_count} events over {ORGANIZATIONS} organizations in {:.2} s (published in {:.2} s): {} events/s",
        ingested.as_secs_f64(),
        published.as_secs_f64(),
        rate(ingest_count as f64 / ingested.as_secs_f64())
    );

    // 2. Listing over a large generated log.
    let started = Instant::now();
    let channel = sandbox.channel().await?;
    let token = tenantry_proto::tenantry::identity::v1::identity_service_client::IdentityServiceClient::new(channel.clone())
        .sign_up(tenantry_proto::tenantry::identity::v1::SignUpRequest {
            email: "bench@example.com".into(),
            password: "correct horse battery staple".into(),
            display_name: "Bench".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .tokens
        .context("tokens")?
        .access_token;
    let organization = tenantry_proto::tenantry::organization::v1::organization_service_client::OrganizationServiceClient::new(channel)
        .create_organization(authed(
            tenantry_proto::tenantry::organization::v1::CreateOrganizationRequest {
                organization: Some(tenantry_proto::tenantry::organization::v1::Organization {
                    display_name: "Measured".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            },
            &token,
        ))
        .await?
        .into_inner()
        .organization
        .context("organization")?;
    let measured = organization
        .name
        .trim_start_matches("organizations/")
        .to_string();
    for sql in generate_sql(args.postgres, generated, &measured) {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(db.writer())
            .await
            .context("generating rows")?;
    }
    if args.postgres {
        sqlx::query("ANALYZE audit_events")
            .execute(db.writer())
            .await?;
        sqlx::query("ANALYZE audit_targets")
            .execute(db.writer())
            .await?;
    }
    println!(
        "generated {generated} rows over 1,000 organizations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The owner reads with `audit.read`, as an organization's auditor
    // would (a platform administrator's reads are each audited: a write).
    let parent = format!("organizations/{measured}");
    let mut client = pb::audit_service_client::AuditServiceClient::new(sandbox.channel().await?);
    let mut ready = false;
    for _ in 0..400 {
        if client
            .list_audit_events(authed(
                pb::ListAuditEventsRequest {
                    parent: parent.clone(),
                    page_size: 1,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !ready {
        bail!("the owner never got access to the organization");
    }
    let half = 1_700_000_000_000_000i64 + (generated as i64 / 2) * 1000;
    let filters: Vec<(&str, Option<pb::AuditEventFilter>)> = vec![
        ("no filter", None),
        (
            "action",
            Some(pb::AuditEventFilter {
                action: "resource7.changed".into(),
                ..Default::default()
            }),
        ),
        (
            "action prefix",
            Some(pb::AuditEventFilter {
                action_prefix: "resource1".into(),
                ..Default::default()
            }),
        ),
        (
            "actor",
            Some(pb::AuditEventFilter {
                actor_id: "actor-7".into(),
                ..Default::default()
            }),
        ),
        (
            "target",
            Some(pb::AuditEventFilter {
                target_id: "t7".into(),
                ..Default::default()
            }),
        ),
        (
            "time range (a minute, mid-log)",
            Some(pb::AuditEventFilter {
                start_time: Some(tenantry_kit::db::timestamp(half - 60_000_000)),
                end_time: Some(tenantry_kit::db::timestamp(half)),
                ..Default::default()
            }),
        ),
    ];
    let connections = channels(&sandbox, 2).await?;
    let mut rows = Vec::new();
    for (name, filter) in filters {
        let clients: Vec<_> = connections
            .iter()
            .cloned()
            .map(pb::audit_service_client::AuditServiceClient::new)
            .collect();
        let (parent, token) = (parent.clone(), token.clone());
        let run = warm_then_measure(warmup, measure, clients, move |mut client, _, _| {
            let request = authed(
                pb::ListAuditEventsRequest {
                    parent: parent.clone(),
                    page_size: 50,
                    page_token: String::new(),
                    filter: filter.clone(),
                },
                &token,
            );
            async move {
                client.list_audit_events(request).await?;
                Ok(())
            }
        })
        .await?;
        rows.push(vec![
            format!("ListAuditEvents, {name}"),
            rate(run.per_second()),
            run.quantile_us(0.5).to_string(),
            run.quantile_us(0.99).to_string(),
        ]);
    }
    println!("ListAuditEvents, pages of 50 in one organization of the generated log (c=2):");
    print_table(&["measurement", "calls/s", "p50 µs", "p99 µs"], &rows);
    sandbox.shutdown().await?;
    Ok(())
}
