//! What Postgres row-level security costs the queries behind it: the
//! organization service's two common shapes (a project by organization and
//! id; an organization's first 50 projects) on one pool, closed-loop, as
//!
//! - a request in one tenant's scope (the policies' subqueries run),
//! - the system scope (the policies' first test passes),
//! - the database's operator, a superuser whom the policies let through
//!   (the same queries without row-level security at all).
//!
//! Each call acquires a connection as a request does (which sets its
//! scope). Seeded with `--tenants` roots of 10 projects each, straight in
//! the database. Needs Postgres: `TENANTRY_TEST_DATABASE_URL` (a fresh
//! schema is made, the services' role created as the tests do).
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-tenancy
//! cargo run -p tenantry-tests --bin bench-tenancy -- --smoke   # CI
//! ```

use clap::Parser;
use rand::Rng;
use tenantry_kit::db::Database;
use tenantry_kit::tenancy;
use tenantry_testkit::{Storage, TestDatabase};
use tenantry_tests::bench::{Run, print_table, rate, timing, warm_then_measure};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "bench-tenancy")]
struct Args {
    /// A small dataset and short loops, to keep the program working (CI).
    #[arg(long)]
    smoke: bool,
    /// Root organizations (tenants), 10 projects each. Default: 10,000
    /// (50 with --smoke).
    #[arg(long)]
    tenants: Option<u32>,
    /// Concurrent callers. Default: 4.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds measured per row (after a warm-up).
    #[arg(long)]
    duration_secs: Option<f64>,
}

/// Who a call runs as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Tenant,
    System,
    Operator,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !tenantry_testkit::storages().contains(&Storage::Postgres) {
        println!("bench-tenancy: skipped, it needs Postgres (TENANTRY_TEST_DATABASE_URL)");
        return Ok(());
    }
    let tenants = args.tenants.unwrap_or(if args.smoke { 50 } else { 10_000 });
    let (measure, warmup) = timing(args.smoke, args.duration_secs)?;
    let database = TestDatabase::new(Storage::Postgres).await?;
    let services = database.connect().await?;
    services
        .migrate(
            tenantry_organization::NAME,
            tenantry_organization::MIGRATIONS,
        )
        .await?;
    let operator = database.connect_as_operator().await?;
    seed(&operator, tenants).await?;
    println!(
        "bench-tenancy: {tenants} tenants × 10 projects, concurrency {}, {:.1} s per row",
        args.concurrency,
        measure.as_secs_f64()
    );

    let mut rows = Vec::new();
    let mut operator_rate = None;
    for (scope, label) in [
        (Scope::Operator, "operator (no row-level security)"),
        (Scope::System, "system scope"),
        (Scope::Tenant, "one tenant's scope"),
    ] {
        let pool = match scope {
            Scope::Operator => operator.clone(),
            Scope::System | Scope::Tenant => services.clone(),
        };
        let run = measure_scope(pool, scope, tenants, args.concurrency, warmup, measure).await?;
        let per_second = run.per_second();
        let baseline = *operator_rate.get_or_insert(per_second);
        rows.push(vec![
            label.to_string(),
            rate(per_second),
            run.quantile_us(0.5).to_string(),
            run.quantile_us(0.99).to_string(),
            format!("{:.2}", per_second / baseline),
        ]);
    }
    print_table(
        &[
            "two queries per call",
            "calls/s",
            "p50 µs",
            "p99 µs",
            "÷ operator",
        ],
        &rows,
    );
    services.close().await;
    operator.close().await;
    Ok(())
}

/// `tenants` roots in workspaces of their own, 10 projects each.
async fn seed(operator: &Database, tenants: u32) -> anyhow::Result<()> {
    for statement in [
        "INSERT INTO org_workspaces SELECT 'w' || g, 'W', 'single', 'users/x', 0, 0, 1
         FROM generate_series(1, $1) g",
        "INSERT INTO org_organizations (id, slug, display_name, kind, parent_id, root_id,
             workspace_id, path, depth, inherit_access, departments_enabled, require_mfa,
             allowed_email_domains, metadata, state, owner_id, created_by, created_at_us,
             updated_at_us, version)
         SELECT 'r' || g, 's' || g, 'Org', 'organization', NULL, 'r' || g, 'w' || g,
             '/r' || g || '/', 1, 1, 1, 0, '[]', '{}', 'active', 'u', 'users/u', 0, 0, 1
         FROM generate_series(1, $1) g",
        "INSERT INTO org_projects (id, organization_id, slug, display_name, description,
             created_by, created_at_us, updated_at_us, version)
         SELECT 'p' || g || '_' || k, 'r' || g, 'p' || k, 'P', '', 'users/u', 0, 0, 1
         FROM generate_series(1, $1) g, generate_series(1, 10) k",
    ] {
        sqlx::query(statement)
            .bind(i64::from(tenants))
            .execute(operator.writer())
            .await?;
    }
    sqlx::query("ANALYZE").execute(operator.writer()).await?;
    Ok(())
}

async fn measure_scope(
    pool: Database,
    scope: Scope,
    tenants: u32,
    concurrency: usize,
    warmup: std::time::Duration,
    measure: std::time::Duration,
) -> anyhow::Result<Run> {
    warm_then_measure(
        warmup,
        measure,
        vec![pool; concurrency],
        move |pool, _, _| async move {
            let tenant = rand::rng().random_range(1..=tenants);
            let call = two_queries(pool, tenant);
            let found = match scope {
                Scope::Tenant => {
                    tenancy::request(async {
                        tenancy::enter(&format!("r{tenant}"));
                        call.await
                    })
                    .await
                }
                Scope::System => tenancy::system(call).await,
                Scope::Operator => call.await,
            }?;
            anyhow::ensure!(
                found == 11,
                "expected a project and a page of 10, found {found}"
            );
            Ok(())
        },
    )
    .await
}

/// A project by organization and id, then the organization's first page of
/// projects: how many rows both found.
async fn two_queries(pool: Database, tenant: u32) -> anyhow::Result<usize> {
    let organization = format!("r{tenant}");
    let one: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM org_projects WHERE organization_id = $1 AND id = $2")
            .bind(&organization)
            .bind(format!("p{tenant}_3"))
            .fetch_all(pool.pool())
            .await?;
    let page: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM org_projects WHERE organization_id = $1 ORDER BY id LIMIT 50",
    )
    .bind(&organization)
    .fetch_all(pool.pool())
    .await?;
    Ok(one.len() + page.len())
}
