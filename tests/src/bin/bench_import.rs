//! The throughput of a bulk import through `BulkService`, as a platform
//! team migrating from another system runs it (`tenantry import`): users,
//! then organizations, then memberships with their roles, streamed in
//! messages of 1,000 records to one process serving identity,
//! organization, rbac, billing and audit. Every record is created as its
//! one-by-one RPC creates it, with its event in the outbox, the index, the
//! plan's counters and the audit chain up to date before each message is
//! answered. Then an export of everything, timed too.
//!
//! It prints records/s per phase, memberships/s over the memberships
//! phase and over the whole import, and checks the result: every
//! organization lists its members, and one organization's audit chain
//! verifies.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-import
//! cargo run --release -p tenantry-tests --bin bench-import -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run -p tenantry-tests --bin bench-import -- --smoke   # CI
//! ```
//!
//! Measured on a 2-core machine, `--organizations 200 --members 95`
//! (1,900 users, 200 organizations, 19,000 memberships), records/s:
//!
//! ```text
//!                                   users   organizations  memberships  export
//! SQLite, one transaction per event   —          —             1,272       —
//!   in the followers (first build)
//! SQLite, batched followers         1,001       321            1,611     100,336
//! SQLite, anonymous parameters      5,428       625            3,990      69,537
//! Postgres (same build)               835        82              572      43,493
//! ```
//!
//! Far from 50,000 memberships/s. Half the CPU was SQLite looking up
//! numbered parameters (`sqlite3_bind_parameter_name`, quadratic in a
//! statement's parameters) until batches bound anonymous ones.
//!
//! Later, two builds side by side in one run (SQLite, memberships/s over
//! the memberships phase; two runs each at 200 organizations, one at
//! 1,000 × 95 = 95,000 memberships):
//!
//! ```text
//!                                               19,000          95,000
//! consumers one event at a time, every          6,435 / 6,702   5,035
//!   membership of a batch's users read back
//! consumers in batches, only existing pairs     7,193 / 7,279   7,235
//!   read, claims without RETURNING
//! ```
//!
//! The old import slowed as users gathered memberships (it read all of
//! them back for each batch); on SQLite every row read is a hop to sqlx's
//! worker thread and back. Timed inside, a message of 1,000 memberships
//! spends about 20 ms waiting for the write lock and reading, 6 ms
//! inserting, 10 ms on the outbox, 2–18 ms committing, 20–40 ms each in
//! billing's and the audit log's hand-over (the audit log's indexes over
//! 1,000 records and 2,000 targets), and 6 ms catching the index up: one
//! writer, one statement at a time, with the server at about one of the
//! two cores. Reaching 50,000/s needs those stages to overlap or merge,
//! not to shave statements.

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use futures::TryStreamExt as _;
use tenantry_proto::tenantry::audit::v1 as audit;
use tenantry_proto::tenantry::bulk::v1 as bulk;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::clients::{Audit, Members};
use tenantry_testkit::people::sign_up;
use tenantry_testkit::{ServerProcess, authed};
use tenantry_tests::bench::{UNLIMITED_PLANS, connect, fresh_schema, print_table, rate};
use tonic::transport::Channel;

use bulk::record::Kind;

#[derive(Debug, Parser)]
#[command(name = "bench-import")]
struct Args {
    /// A small import, to keep the program working (CI).
    #[arg(long)]
    smoke: bool,
    /// Organizations. Default: 1,000 (20 with --smoke).
    #[arg(long)]
    organizations: Option<usize>,
    /// Members of each organization besides its owner, drawn from a pool
    /// of ten times fewer users than memberships (as in a deployment where
    /// people belong to about ten organizations). Default: 95 (10 with
    /// --smoke).
    #[arg(long)]
    members: Option<usize>,
    /// Postgres for the server instead of SQLite (a fresh schema is made).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return Ok(tenantry::cli::main());
    }
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}

const ROOT: &str = "root@bench.example";
/// Owners of the first organizations get a password, to check the result
/// as they see it.
const SIGNED_IN: usize = 5;
const ROLES: [&str; 3] = ["roles/admin", "roles/finance", "roles/member"];

fn record(kind: Kind) -> bulk::Record {
    bulk::Record {
        kind: Some(kind),
        password_hash: String::new(),
    }
}

fn new_id() -> String {
    tenantry_kit::id::new_id().to_string()
}

/// An Argon2id hash of the test users' password.
fn password_hash() -> String {
    use argon2::PasswordHasher as _;
    argon2::Argon2::default()
        .hash_password(tenantry_testkit::people::PASSWORD.as_bytes())
        .expect("hashing works")
        .to_string()
}

/// The dataset: users, organizations owned by some of them, and members.
struct Dataset {
    users: Vec<bulk::Record>,
    organizations: Vec<bulk::Record>,
    memberships: Vec<bulk::Record>,
    organization_ids: Vec<String>,
}

fn dataset(organizations: usize, members: usize) -> Dataset {
    let user_count = (organizations * members / 10).max(members + 1);
    let user_ids: Vec<String> = (0..user_count).map(|_| new_id()).collect();
    let password_hash = password_hash();
    let users = user_ids
        .iter()
        .enumerate()
        .map(|(i, id)| bulk::Record {
            kind: Some(Kind::User(identity::User {
                name: format!("users/{id}"),
                email: format!("user{i}@bench.example"),
                display_name: format!("User {i}"),
                email_verified: true,
                ..Default::default()
            })),
            password_hash: if i < SIGNED_IN {
                password_hash.clone()
            } else {
                String::new()
            },
        })
        .collect();
    let mut organization_ids = Vec::with_capacity(organizations);
    let mut organization_records = Vec::with_capacity(organizations);
    let mut memberships = Vec::with_capacity(organizations * members);
    for o in 0..organizations {
        let id = new_id();
        let owner = o % user_count;
        organization_records.push(record(Kind::Organization(org::Organization {
            name: format!("organizations/{id}"),
            display_name: format!("Organization {o}"),
            slug: format!("bench-org-{o}"),
            owner: format!("users/{}", user_ids[owner]),
            ..Default::default()
        })));
        // `members` users after the owner, wrapping around the pool.
        for m in 1..=members {
            let user = &user_ids[(owner + m * 7) % user_count];
            memberships.push(record(Kind::Membership(rbac::Membership {
                name: format!("organizations/{id}/memberships/{user}"),
                roles: vec![ROLES[m % ROLES.len()].to_string()],
                ..Default::default()
            })));
        }
        organization_ids.push(id);
    }
    Dataset {
        users,
        organizations: organization_records,
        memberships,
        organization_ids,
    }
}

/// Streams `records` in messages of 1,000; the time it took.
async fn import(
    channel: &Channel,
    token: &str,
    records: Vec<bulk::Record>,
) -> anyhow::Result<(Duration, bulk::ImportResponse)> {
    let messages: Vec<bulk::ImportRequest> = records
        .chunks(1000)
        .map(|chunk| bulk::ImportRequest {
            records: chunk.to_vec(),
        })
        .collect();
    let start = Instant::now();
    let answer = bulk::bulk_service_client::BulkServiceClient::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .import(authed(futures::stream::iter(messages), token))
        .await?
        .into_inner();
    Ok((start.elapsed(), answer))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let organizations = args
        .organizations
        .unwrap_or(if args.smoke { 20 } else { 1000 });
    let members = args.members.unwrap_or(if args.smoke { 10 } else { 95 });
    let binary = std::env::current_exe()?.display().to_string();
    let dir = tempfile::tempdir()?;
    let catalog = dir.path().join("plans.toml");
    std::fs::write(&catalog, UNLIMITED_PLANS)?;
    let mut env: Vec<(&str, String)> = vec![
        ("TENANTRY_INTERNAL_KEY", "88".repeat(32)),
        (
            "TENANTRY_BILLING__CATALOG_FILE",
            catalog.display().to_string(),
        ),
        (
            "TENANTRY_IDENTITY__PLATFORM_ADMINS",
            format!("[\"{ROOT}\"]"),
        ),
    ];
    if let Some(url) = &args.postgres {
        env.push(("DATABASE_URL", fresh_schema(url).await?));
    }
    let server =
        ServerProcess::start(&binary, "identity,organization,rbac,billing,audit", &env).await?;
    let channel = connect(&server.url(), 1).await?.remove(0);
    let (root, _) = sign_up(&channel, ROOT, "Root").await;

    let data = dataset(organizations, members);
    let counts = [
        data.users.len(),
        data.organizations.len(),
        data.memberships.len(),
    ];
    let storage = if args.postgres.is_some() {
        "Postgres"
    } else {
        "SQLite"
    };
    println!(
        "{storage}; identity, organization, rbac, billing and audit in one process; \
         {} users, {} organizations, {} memberships, in messages of 1,000 records\n",
        counts[0], counts[1], counts[2]
    );
    let organization_ids = data.organization_ids.clone();
    let mut phases = Vec::new();
    for (name, records) in [
        ("users", data.users),
        ("organizations", data.organizations),
        ("memberships", data.memberships),
    ] {
        let n = records.len();
        let (took, answer) = import(&channel, &root.token, records).await?;
        anyhow::ensure!(
            answer.created == n as i64,
            "{name}: {} of {n} created",
            answer.created
        );
        phases.push((name, n, took));
    }
    let total: Duration = phases.iter().map(|(_, _, took)| *took).sum();
    let memberships_took = phases[2].2;

    // The result: the first organizations list their owner and members
    // to the owner (who signs in with the imported password), and their
    // audit chains verify.
    for (o, id) in organization_ids.iter().enumerate().take(SIGNED_IN) {
        let owner =
            tenantry_testkit::people::log_in(&channel, &format!("user{o}@bench.example")).await;
        let listed = Members::new(channel.clone())
            .list_memberships(authed(
                rbac::ListMembershipsRequest {
                    parent: format!("organizations/{id}"),
                    page_size: 1000,
                    ..Default::default()
                },
                &owner.token,
            ))
            .await?
            .into_inner()
            .memberships
            .len();
        anyhow::ensure!(
            listed == members + 1,
            "organization {o} lists its owner and {members} members, not {listed}"
        );
        let verified = Audit::new(channel.clone())
            .verify_chain(authed(
                audit::VerifyChainRequest {
                    organization: format!("organizations/{id}"),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await?
            .into_inner();
        anyhow::ensure!(verified.ok, "the audit chain verifies: {verified:?}");
    }

    let start = Instant::now();
    let exported: usize = bulk::bulk_service_client::BulkServiceClient::new(channel.clone())
        .export(authed(bulk::ExportRequest {}, &root.token))
        .await?
        .into_inner()
        .map_ok(|page| page.records.len())
        .try_fold(0, |sum, n| async move { Ok(sum + n) })
        .await?;
    let export_took = start.elapsed();

    let mut rows: Vec<Vec<String>> = phases
        .iter()
        .map(|(name, n, took)| {
            vec![
                name.to_string(),
                n.to_string(),
                format!("{:.2}", took.as_secs_f64()),
                rate(*n as f64 / took.as_secs_f64()),
            ]
        })
        .collect();
    rows.push(vec![
        "export (all)".into(),
        exported.to_string(),
        format!("{:.2}", export_took.as_secs_f64()),
        rate(exported as f64 / export_took.as_secs_f64()),
    ]);
    print_table(&["phase", "records", "seconds", "records/s"], &rows);
    let over_phase = counts[2] as f64 / memberships_took.as_secs_f64();
    let over_all = counts[2] as f64 / total.as_secs_f64();
    println!(
        "\nmemberships/s: {} over the memberships phase, {} over the whole import \
         (target ≥ 50,000: {})",
        rate(over_phase),
        rate(over_all),
        if over_phase >= 50_000.0 {
            "met"
        } else {
            "missed"
        }
    );
    drop(server);
    Ok(())
}
