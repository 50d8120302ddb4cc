//! What calling a peer in-process saves: the all-in-one process twice, side
//! by side, one calling its own services in-process (the default) and one
//! sending those calls over its own gRPC port (`peers.in_process = false`,
//! as before). Each write is measured in alternating rounds on both, so the
//! machine's noise falls on both alike; the table gives each one's
//! latency and the ratio.
//!
//! CreateOrganization asks rbac to check nothing but hands its event to the
//! authorization index; CreateProject asks rbac for the caller's
//! permission and billing for the plan's limit, and hands its event to the
//! index: one to three calls to peers per write.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-peers
//! cargo run -p tenantry-tests --bin bench-peers -- --smoke   # CI
//! ```

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use hdrhistogram::Histogram;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_testkit::clients::{Orgs, Projects};
use tenantry_testkit::people::{User, sign_up};
use tenantry_testkit::{ServerProcess, authed, last_id};
use tenantry_tests::bench::{connect, histogram, print_table};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(name = "bench-peers")]
struct Args {
    /// A few rounds, to keep the program working (CI).
    #[arg(long)]
    smoke: bool,
    /// Rounds; each creates an organization and two projects on each
    /// server. Default: 150 (5 with --smoke).
    #[arg(long)]
    rounds: Option<usize>,
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

/// One server under test and what was measured on it.
struct Subject {
    name: &'static str,
    _server: ServerProcess,
    channel: Channel,
    owner: User,
    organizations: Histogram<u64>,
    projects: Histogram<u64>,
}

impl Subject {
    async fn start(name: &'static str, in_process: bool) -> anyhow::Result<Subject> {
        let binary = std::env::current_exe()?.display().to_string();
        let env = [("TENANTRY_PEERS__IN_PROCESS", in_process.to_string())];
        let server =
            ServerProcess::start(&binary, "identity,organization,rbac,billing,audit", &env).await?;
        let channel = connect(&server.url(), 1).await?.remove(0);
        let (owner, _) = sign_up(&channel, &format!("{name}@bench.example"), name).await;
        Ok(Subject {
            name,
            _server: server,
            channel,
            owner,
            organizations: histogram()?,
            projects: histogram()?,
        })
    }

    /// One round: an organization, then two projects in it (the free plan
    /// allows three, one of them the default project).
    async fn round(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let created = Orgs::new(self.channel.clone())
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: "Bench".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &self.owner.token,
            ))
            .await?
            .into_inner();
        record(&mut self.organizations, started);
        let parent = created.organization.unwrap_or_default().name;
        for n in 0..2 {
            let started = Instant::now();
            Projects::new(self.channel.clone())
                .create_project(authed(
                    org::CreateProjectRequest {
                        parent: parent.clone(),
                        project: Some(org::Project {
                            display_name: format!("p{n}"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &self.owner.token,
                ))
                .await?;
            record(&mut self.projects, started);
        }
        anyhow::ensure!(!last_id(&parent).is_empty(), "an organization has an id");
        Ok(())
    }
}

fn record(histogram: &mut Histogram<u64>, started: Instant) {
    histogram.saturating_record(started.elapsed().as_micros() as u64);
}

async fn run(args: Args) -> anyhow::Result<()> {
    let rounds = args.rounds.unwrap_or(if args.smoke { 5 } else { 150 });
    let mut subjects = [
        Subject::start("in-process", true).await?,
        Subject::start("loopback", false).await?,
    ];
    // Warm both (connections, caches), then alternate.
    for subject in &mut subjects {
        subject.round().await?;
        subject.organizations.reset();
        subject.projects.reset();
    }
    for _ in 0..rounds {
        for subject in &mut subjects {
            subject.round().await?;
        }
    }
    println!(
        "all services in one process (SQLite), {rounds} rounds of one CreateOrganization and two CreateProject each, one client\n"
    );
    let quantile = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
    let mut rows = Vec::new();
    for (write, pick) in [
        (
            "CreateOrganization",
            (|s: &Subject| &s.organizations) as fn(&Subject) -> &Histogram<u64>,
        ),
        ("CreateProject", |s: &Subject| &s.projects),
    ] {
        let [local, remote] = [pick(&subjects[0]), pick(&subjects[1])];
        for subject in &subjects {
            let h = pick(subject);
            rows.push(vec![
                write.to_string(),
                subject.name.to_string(),
                quantile(h, 0.5).to_string(),
                quantile(h, 0.99).to_string(),
                format!("{:.0}", h.mean()),
            ]);
        }
        rows.push(vec![
            write.to_string(),
            "in-process ÷ loopback".to_string(),
            format!("{:.2}", ratio(quantile(local, 0.5), quantile(remote, 0.5))),
            format!(
                "{:.2}",
                ratio(quantile(local, 0.99), quantile(remote, 0.99))
            ),
            format!("{:.2}", local.mean() / remote.mean().max(1.0)),
        ]);
    }
    print_table(
        &["write", "peers called", "p50 µs", "p99 µs", "mean µs"],
        &rows,
    );
    Ok(())
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}
