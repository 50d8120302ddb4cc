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

#[path = "bench_soak/load.rs"]
mod load;
#[path = "bench_soak/round.rs"]
mod round;
#[path = "bench_soak/soak.rs"]
mod soak;

use load::*;
use round::*;
use soak::*;

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

/// Calls that answered UNAVAILABLE and were tried again while loading.
static RETRIED: AtomicU64 = AtomicU64::new(0);
