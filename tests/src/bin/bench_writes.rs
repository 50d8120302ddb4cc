//! The latency and throughput of the common writes through the API:
//! CreateOrganization, CreateProject and CreateMembership, against every
//! backend service in one process of its own (identity, organization,
//! rbac, billing, audit), as a one-process deployment runs it: every write
//! asks billing for its quota (exact, reserved before the create), commits
//! with its outbox event and hands its change to the authorization index
//! before it answers (read-your-writes).
//!
//! First one client writing one at a time (p50/p90/p99/max), then
//! `--concurrency` clients (16) each on its own connection (writes/s,
//! p50/p99), each with the server's CPU time per write (from `/proc`):
//! when it is far below the latency, the write waits rather than works.
//! Projects go to one organization per client; memberships place members
//! of one tree in its departments, as an administrator provisions.
//! The plans' limits are raised so that no quota refuses (the check and its
//! reservation still happen).
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-writes
//! cargo run --release -p tenantry-tests --bin bench-writes -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/test
//! cargo run -p tenantry-tests --bin bench-writes -- --smoke   # CI
//! ```
//!
//! Measured on a 2-core machine (other work running), SQLite, 200 writes
//! of each kind at one client and 25 by each of 16 clients, two runs each,
//! alternating (p50 / p99 ms at one client; writes/s at 16). "Answer
//! first" is the server that answered before billing's counters and the
//! audit log had the write's events; "read model first" hands them over
//! (one transaction per batch in each) before it answers, so the caller's
//! next `GetUsage`, `CheckQuota` or `ListAuditEvents` sees the write:
//!
//! ```text
//!                     answer first                read model first
//!                     p50      p99      w/s@16    p50        p99      w/s@16
//! CreateOrganization  5.0–5.2  27–42    131–155   11.2–11.4  36–38    120–136
//! CreateProject       5.0–5.1  112–134  181–217   6.5–6.7    22–23    221–271
//! CreateMembership    3.9–4.0  37–38    294–340   5.2–5.3    14–16    246–258
//! ```
//!
//! The hand-over costs the single client 1–6 ms at the median and saves
//! it 20–110 ms at the 99th percentile: the followers' work no longer runs
//! after the answer, in the way of the next write.
//!
//! Postgres (an earlier, answer-first build): p50 21.7 / 26.2 / 15.1 ms,
//! p99 33 / 63 / 27 ms at one client; 53 / 71 / 101 writes/s at 16.
//!
//! Later, a quieter machine, the build before and after bus consumers took
//! batches and SQLite claims stopped returning rows (two runs each,
//! alternating; p50 / p99 ms at one client, writes/s at 16, server CPU
//! µs per write at one client):
//!
//! ```text
//!                     before                              after
//!                     p50      p99    w/s@16   CPU          p50      p99    w/s@16   CPU
//! CreateOrganization  7.3–8.1  18     274      9,100–9,600  6.8–7.5  14–17  300–311  8,300–9,300
//! CreateProject       4.5–4.7  11–13  432–446  6,150–6,800  3.8      10–11  514–549  5,050–5,150
//! CreateMembership    3.7–4.0  9–10   365–392  4,800–4,900  3.7      10     401–405  4,750–4,850
//! ```
//!
//! The server spends more CPU per write than the write's own latency: the
//! outbox relay, the local bus and the consumers that find each event
//! already applied still run after the answer. A CreateProject (with its
//! three default environments) runs about 70 SQLite statements in all,
//! each a round trip to sqlx's worker thread; two thirds of the server's
//! CPU is the kernel switching those threads (`perf record -g -p PID`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::clients::{Identity, Invitations, Members, Orgs, Projects};
use tenantry_testkit::people::{PASSWORD, User, sign_up};
use tenantry_testkit::{ServerProcess, authed, last_id};
use tenantry_tests::bench::{
    Run, UNLIMITED_PLANS, connect, fresh_schema, histogram, ms, print_table, rate,
};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(name = "bench-writes")]
struct Args {
    /// A few writes of each kind, to keep the program working (CI).
    #[arg(long)]
    smoke: bool,
    /// Writes of each kind by the single client. Default: 400 (10 with
    /// --smoke).
    #[arg(long)]
    writes: Option<usize>,
    /// Clients of the concurrent run.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Writes of each kind by each client of the concurrent run. Default:
    /// 50 (2 with --smoke).
    #[arg(long)]
    per_client: Option<usize>,
    /// Postgres for the server instead of SQLite (a fresh schema is made).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// NATS JetStream for the server's events instead of the local bus.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return Ok(tenantry::cli::main());
    }
    let args = Args::parse();
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// What the writers share.
struct Setup {
    channels: Vec<Channel>,
    owner: User,
    /// The organization each client creates its projects in.
    project_parents: Vec<String>,
    /// (department, member id): each membership created once.
    placements: Vec<(String, String)>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let writes = args.writes.unwrap_or(if args.smoke { 10 } else { 400 });
    let per_client = args.per_client.unwrap_or(if args.smoke { 2 } else { 50 });
    let concurrency = args.concurrency;
    let warmup = if args.smoke { 2 } else { 20 };
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
    ];
    if let Some(url) = &args.postgres {
        env.push(("DATABASE_URL", fresh_schema(url).await?));
    }
    if let Some(url) = &args.nats {
        env.push(("NATS_URL", url.clone()));
        env.push((
            "TENANTRY_NATS_NAMESPACE",
            format!("bench{}", tenantry_kit::id::new_id().simple()),
        ));
    }
    let server =
        ServerProcess::start(&binary, "identity,organization,rbac,billing,audit", &env).await?;
    let channels = connect(&server.url(), concurrency).await?;
    let channel = channels[0].clone();
    let (owner, _) = sign_up(&channel, &unique("owner"), "Owner").await;

    // Not timed: the parents, the tree with its departments and its members.
    let mut project_parents = Vec::new();
    for _ in 0..concurrency {
        project_parents.push(create_organization(&channel, &owner.token, None).await?);
    }
    let tree = create_organization(&channel, &owner.token, None).await?;
    let mut members = Vec::new();
    for i in 0..concurrency {
        members.push(invited(&server, &channel, &owner, &tree, &format!("m{i}")).await?);
    }
    let placements_needed = warmup + writes + concurrency * per_client;
    let mut placements = Vec::with_capacity(placements_needed);
    while placements.len() < placements_needed {
        let department = create_organization(&channel, &owner.token, Some(&tree)).await?;
        for member in &members {
            placements.push((department.clone(), member.id.clone()));
        }
    }
    let setup = Arc::new(Setup {
        channels,
        owner,
        project_parents,
        placements,
    });

    let storage = match (&args.postgres, &args.nats) {
        (None, _) => "SQLite, local bus",
        (Some(_), None) => "Postgres, local bus",
        (Some(_), Some(_)) => "Postgres, NATS",
    };
    println!(
        "{storage}; identity, organization, rbac, billing and audit in one process; \
         {writes} writes of each kind by 1 client, then {per_client} by each of {concurrency}\n"
    );

    let mut single = Vec::new();
    let mut parallel = Vec::new();
    for write in [Write::Organization, Write::Project, Write::Membership] {
        // Warm-up on the single client's slice (memberships: the first
        // placements), then one client, then many.
        concurrently(&setup, write, 1, warmup, 0).await?;
        let cpu = cpu_time(server.id());
        let run = concurrently(&setup, write, 1, writes, warmup).await?;
        single.push((write, cpu_per_write(server.id(), cpu, &run), run));
        let cpu = cpu_time(server.id());
        let first = warmup + writes;
        let run = concurrently(&setup, write, concurrency, per_client, first).await?;
        parallel.push((write, cpu_per_write(server.id(), cpu, &run), run));
    }
    let target = |r: &Run| {
        if r.quantile_us(0.5) <= 2_000 && r.quantile_us(0.99) <= 10_000 {
            "met"
        } else {
            "missed"
        }
    };
    print_table(
        &[
            "1 client",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "writes/s",
            "server CPU µs/write",
            "p50 ≤ 2, p99 ≤ 10 ms",
        ],
        &single
            .iter()
            .map(|(write, cpu, r)| {
                vec![
                    write.name().to_string(),
                    ms(r.quantile_us(0.5)),
                    ms(r.quantile_us(0.9)),
                    ms(r.quantile_us(0.99)),
                    ms(r.latency_us.max()),
                    rate(r.per_second()),
                    cpu.clone(),
                    target(r).to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    println!();
    let clients = format!("{concurrency} clients");
    print_table(
        &[
            clients.as_str(),
            "writes/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "server CPU µs/write",
        ],
        &parallel
            .iter()
            .map(|(write, cpu, r)| {
                vec![
                    write.name().to_string(),
                    rate(r.per_second()),
                    ms(r.quantile_us(0.5)),
                    ms(r.quantile_us(0.99)),
                    ms(r.latency_us.max()),
                    cpu.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    drop(server);
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Write {
    Organization,
    Project,
    Membership,
}

impl Write {
    fn name(self) -> &'static str {
        match self {
            Write::Organization => "CreateOrganization",
            Write::Project => "CreateProject",
            Write::Membership => "CreateMembership",
        }
    }
}

/// `clients` tasks, each on its own connection, each making `each` writes
/// one after the other; task `t`'s `n`th membership takes placement
/// `first + t * each + n`.
async fn concurrently(
    setup: &Arc<Setup>,
    write: Write,
    clients: usize,
    each: usize,
    first: usize,
) -> anyhow::Result<Run> {
    timed(clients, each, {
        let setup = setup.clone();
        move |task, n| {
            let setup = setup.clone();
            async move {
                let channel = &setup.channels[task];
                let token = &setup.owner.token;
                match write {
                    Write::Organization => {
                        create_organization(channel, token, None).await?;
                    }
                    Write::Project => {
                        create_project(channel, token, &setup.project_parents[task]).await?;
                    }
                    Write::Membership => {
                        let (department, user) = &setup.placements[first + task * each + n];
                        add_member(channel, token, department, user).await?;
                    }
                }
                Ok(())
            }
        }
    })
    .await
}

/// Runs `call(task, n)` for `n` in `0..each` in each of `tasks` tasks and
/// records every call's latency.
async fn timed<F, Fut>(tasks: usize, each: usize, call: F) -> anyhow::Result<Run>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let call = call.clone();
        set.spawn(async move {
            let mut latency = histogram()?;
            for n in 0..each {
                let sent = Instant::now();
                call(task, n).await?;
                latency.saturating_record(sent.elapsed().as_micros() as u64);
            }
            anyhow::Ok(latency)
        });
    }
    let mut latency_us = histogram()?;
    while let Some(joined) = set.join_next().await {
        latency_us.add(joined??)?;
    }
    Ok(Run {
        requests: latency_us.len(),
        elapsed: start.elapsed().max(Duration::from_micros(1)),
        latency_us,
    })
}

/// The CPU time (user and system, every thread) process `pid` has used,
/// from `/proc` (Linux; in ticks of 10 ms, Linux's `USER_HZ`).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command in parentheses: the state (field 3), …, utime
    // (field 14) and stime (field 15).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The server's CPU time per write of `run`, since `before`.
fn cpu_per_write(pid: u32, before: Option<Duration>, run: &Run) -> String {
    match (before, cpu_time(pid)) {
        (Some(before), Some(after)) if run.requests > 0 => {
            (((after - before).as_micros() as u64) / run.requests).to_string()
        }
        _ => "-".into(),
    }
}

/// Random characters (the tail of a v7 UUID), so that no two names share
/// a slug.
fn suffix() -> String {
    tenantry_kit::id::new_id().simple().to_string()[20..].to_string()
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}@bench.example",
        tenantry_kit::id::new_id().simple()
    )
}

/// A new user who signed up through `owner`'s invitation to `organization`.
async fn invited(
    server: &ServerProcess,
    channel: &Channel,
    owner: &User,
    organization: &str,
    name: &str,
) -> anyhow::Result<User> {
    let email = unique(name);
    Invitations::new(channel.clone())
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: format!("organizations/{organization}"),
                invitation: Some(rbac::Invitation {
                    email: email.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &owner.token,
        ))
        .await?;
    let invitation_token = server
        .mail_token(&email, "invitation")
        .ok_or_else(|| anyhow::anyhow!("no invitation mail for {email}"))?;
    let response = Identity::new(channel.clone())
        .sign_up(identity::SignUpRequest {
            email,
            password: PASSWORD.into(),
            display_name: name.into(),
            invitation_token,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(User {
        id: last_id(&response.user.unwrap_or_default().name),
        token: response.tokens.unwrap_or_default().access_token,
    })
}

async fn create_organization(
    channel: &Channel,
    token: &str,
    parent: Option<&str>,
) -> anyhow::Result<String> {
    let created = Orgs::new(channel.clone())
        .create_organization(authed(
            org::CreateOrganizationRequest {
                organization: Some(org::Organization {
                    display_name: format!("Bench {}", suffix()),
                    parent: parent
                        .map(|p| format!("organizations/{p}"))
                        .unwrap_or_default(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            token,
        ))
        .await?
        .into_inner();
    Ok(last_id(&created.organization.unwrap_or_default().name))
}

async fn create_project(channel: &Channel, token: &str, parent: &str) -> anyhow::Result<()> {
    Projects::new(channel.clone())
        .create_project(authed(
            org::CreateProjectRequest {
                parent: format!("organizations/{parent}"),
                project: Some(org::Project {
                    display_name: format!("Project {}", suffix()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            token,
        ))
        .await?;
    Ok(())
}

async fn add_member(
    channel: &Channel,
    token: &str,
    organization: &str,
    user: &str,
) -> anyhow::Result<()> {
    Members::new(channel.clone())
        .create_membership(authed(
            rbac::CreateMembershipRequest {
                parent: format!("organizations/{organization}"),
                membership: Some(rbac::Membership {
                    user: format!("users/{user}"),
                    roles: vec!["roles/member".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            token,
        ))
        .await?;
    Ok(())
}
