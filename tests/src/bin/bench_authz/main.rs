//! Authorization benchmarks: one program, one run, a table per measurement.
//!
//! 1. **The index in process**, at deployment scale (by default 1M users,
//!    100k organizations in trees up to ten deep, 10M relationships):
//!    the time to build it from its changes (what a replica does at start
//!    after reading the store), its memory per relationship, single-check
//!    latency for allowed and denied answers at the deepest level, and
//!    `lookup` for a user who can reach 10k projects.
//! 2. **Over gRPC on loopback**: `CheckPermission` and
//!    `CheckBulkPermissions` of ten (an allowed check at the tenth level, as
//!    the calling user, bearer token verified by the auth layer) against the
//!    **transport floor** — a bare tonic server with the same contract that
//!    answers from a hash map with no authentication or other layers
//!    (`floor.rs`) — at concurrency 1, 8 and 64, each client on its own
//!    connection, with the ratios Tenantry ÷ floor; the same server's empty
//!    RPC, with and without the bearer header, shows where the difference
//!    goes; then `CheckBulkPermissions` of 100 checks against a single check.
//!
//! The gRPC part runs on a small tree written through the real APIs: a
//! check's cost depends on the depth of the tree and the subject's grants,
//! not on the number of relationships (part 1 shows that). Client and
//! server share this process and its runtime. Numbers are for comparing
//! within one run; nothing here asserts a time.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-authz
//! cargo run -p tenantry-tests --bin bench-authz -- --smoke   # CI: just keep it working
//! ```

mod floor;

use std::time::{Duration, Instant};

use floor::Floor;

// The allocator the `tenantry` binary uses, so in-process numbers compare.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_rbac::engine::{AccessLevel, Change, GrantSubject, Index, PROJECT};
use tenantry_testkit::{Sandbox, authed};
use tenantry_tests::bench::{connect, histogram, ms, print_table, warm_then_measure};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Benchmarks of the authorization engine and API.
#[derive(Debug, Parser)]
#[command(name = "bench-authz")]
struct Args {
    /// A small world and short measurements, to check the benchmark still
    /// works (CI runs this).
    #[arg(long)]
    smoke: bool,
    /// Users in the generated world. Default: 1,000,000 (2,000 with --smoke).
    #[arg(long)]
    users: Option<usize>,
    /// Organizations in the generated world. Default: 100,000 (200 with
    /// --smoke).
    #[arg(long)]
    organizations: Option<usize>,
    /// Seconds each gRPC measurement runs after its warm-up. Default: 5
    /// (0.25 with --smoke).
    #[arg(long)]
    seconds: Option<f64>,
    /// Run only part 1 (`index`) or part 2 (`grpc`). Default: both.
    #[arg(long)]
    only: Option<String>,
    /// Measure part 2 against a server already running at this URL (such as
    /// `tenantry serve --services identity,organization,rbac` started
    /// separately), instead of one started in this process.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
}

/// The resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A generated world and the handles the measurements need.
struct World {
    changes: Vec<Change>,
    /// A project at the tenth level, and a user who may read it through a
    /// role on its root, and one who may not.
    deep_project: String,
    deep_reader: String,
    outsider: String,
    /// A user who can reach `lookup_size` projects.
    lookup_user: String,
    lookup_size: usize,
}

/// Generates trees of organizations (each with a chain down to depth 10
/// and other nodes attached at random), a team and ten projects per
/// organization, memberships, team members and project grants, until about
/// `target` relationships.
fn generate(users: usize, organizations: usize, target: usize, seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut changes = Vec::with_capacity(target + organizations * 12);
    let org = |i: usize| format!("o{i:07}");
    let user = |i: usize| format!("u{i:07}");
    let per_tree = 25.min(organizations.max(10));
    let mut depth = vec![0usize; organizations];
    let mut root = vec![0usize; organizations];
    let mut relationships = 0usize;
    for i in 0..organizations {
        let first = i - i % per_tree;
        let (parent, d) = if i == first {
            (None, 1)
        } else if i - first < 10 {
            (Some(i - 1), depth[i - 1] + 1)
        } else {
            // Attach below a random earlier node of the tree, above depth 10.
            let mut p = rng.random_range(first..i);
            while depth[p] >= 10 {
                p = rng.random_range(first..i);
            }
            (Some(p), depth[p] + 1)
        };
        depth[i] = d;
        root[i] = first;
        if parent.is_some() {
            relationships += 1;
        }
        changes.push(Change::Node {
            object_type: "organization".into(),
            id: org(i),
            parent: parent.map(org),
            inherit: true,
        });
    }
    for i in 0..organizations {
        changes.push(Change::Node {
            object_type: "team".into(),
            id: format!("t{i:07}"),
            parent: Some(org(i)),
            inherit: true,
        });
        for p in 0..10 {
            changes.push(Change::Node {
                object_type: "project".into(),
                id: format!("p{i:07}-{p}"),
                parent: Some(org(i)),
                inherit: true,
            });
        }
        relationships += 11;
    }
    // The lookup user: admin of one root whose subtree holds enough
    // projects. Trees hold `per_tree` organizations of ten projects; take
    // enough whole roots to reach 10k.
    let lookup_user = user(0);
    let roots_needed = (10_000 / (per_tree * 10)).clamp(1, organizations / per_tree);
    for r in 0..roots_needed {
        changes.push(Change::Membership {
            organization: org(r * per_tree),
            user: lookup_user.clone(),
            roles: vec!["roles/admin".into()],
        });
        relationships += 1;
    }
    let lookup_size = roots_needed * per_tree * 10;
    // The deep check: the tenth organization of the last tree is at depth 10.
    let deep_tree = (organizations / per_tree - 1) * per_tree;
    let deep_project = format!("p{:07}-0", deep_tree + 9);
    let deep_reader = user(1);
    changes.push(Change::Membership {
        organization: org(deep_tree),
        user: deep_reader.clone(),
        roles: vec!["roles/member".into()],
    });
    // The outsider is a member elsewhere, so the index knows them.
    let outsider = user(2);
    changes.push(Change::Membership {
        organization: org(0),
        user: outsider.clone(),
        roles: vec!["roles/admin".into()],
    });
    relationships += 2;
    // Everyone else: memberships, team members and grants at random.
    let roles = [
        "roles/member",
        "roles/member",
        "roles/member",
        "roles/admin",
        "roles/finance",
    ];
    let levels = [
        AccessLevel::Viewer,
        AccessLevel::Contributor,
        AccessLevel::Admin,
    ];
    let mut u = 3;
    while relationships < target {
        let who = user(u % users.max(4)).to_string();
        u += 1;
        if who == outsider || who == deep_reader || who == lookup_user {
            continue;
        }
        let o = rng.random_range(0..organizations);
        // Never in the deep tree, so the outsider and reader stay as built.
        if root[o] == deep_tree {
            continue;
        }
        match rng.random_range(0..10) {
            0..=4 => changes.push(Change::Membership {
                organization: org(o),
                user: who,
                roles: vec![roles[rng.random_range(0..roles.len())].into()],
            }),
            5..=6 => changes.push(Change::TeamMember {
                team: format!("t{o:07}"),
                user: who,
                lead: Some(rng.random_bool(0.1)),
            }),
            _ => changes.push(Change::ProjectGrant {
                project: format!("p{o:07}-{}", rng.random_range(0..10)),
                subject: GrantSubject::User(who),
                level: Some(levels[rng.random_range(0..3)]),
            }),
        }
        relationships += 1;
    }
    World {
        changes,
        deep_project,
        deep_reader,
        outsider,
        lookup_user,
        lookup_size,
    }
}

/// Times `n` single checks, each on its own (two clock reads included).
fn time_checks(
    index: &Index,
    user: &str,
    project: &str,
    n: usize,
    expect: bool,
) -> anyhow::Result<Histogram<u64>> {
    let u = index
        .subject(user)
        .ok_or_else(|| anyhow::anyhow!("unknown user {user}"))?;
    let node = index
        .node(PROJECT, project)
        .ok_or_else(|| anyhow::anyhow!("unknown project"))?;
    let (_, bit) = index.permission_bit("project", "project.read")?;
    let mut latency = histogram()?;
    for _ in 0..n {
        let start = Instant::now();
        let allowed = index.check(std::hint::black_box(u), std::hint::black_box(node), bit);
        let ns = start.elapsed().as_nanos() as u64;
        anyhow::ensure!(allowed == expect, "the check answered {allowed}");
        latency.saturating_record(ns.max(1));
    }
    Ok(latency)
}

fn in_process(args: &Args) -> anyhow::Result<()> {
    let users = args
        .users
        .unwrap_or(if args.smoke { 2_000 } else { 1_000_000 });
    let organizations = args
        .organizations
        .unwrap_or(if args.smoke { 200 } else { 100_000 });
    let target = if args.smoke { 20_000 } else { 10_000_000 };
    let started = Instant::now();
    let world = generate(users, organizations, target, 7);
    let generated = started.elapsed();
    let before = rss_bytes();
    let started = Instant::now();
    let mut failed = None;
    let index = Index::from_changes(&world.changes, |change, error| {
        failed.get_or_insert(format!("{change:?}: {error}"));
    });
    anyhow::ensure!(failed.is_none(), "a change did not apply: {failed:?}");
    let built = started.elapsed();
    let after = rss_bytes();
    let relationships = index.relationships();
    println!(
        "\n1. The index in process: {users} users, {organizations} organizations, {} objects, {relationships} relationships (generated in {:.1} s)\n",
        index.objects(),
        generated.as_secs_f64()
    );
    print_table(
        &["build", "seconds", "memory (MiB)", "bytes / relationship"],
        &[vec![
            "apply every change".into(),
            format!("{:.2}", built.as_secs_f64()),
            format!("{:.0}", after.saturating_sub(before) as f64 / 1048576.0),
            format!(
                "{:.1}",
                after.saturating_sub(before) as f64 / relationships.max(1) as f64
            ),
        ]],
    );
    drop(world.changes);

    let n = if args.smoke { 10_000 } else { 2_000_000 };
    let allowed = time_checks(&index, &world.deep_reader, &world.deep_project, n, true)?;
    let denied = time_checks(&index, &world.outsider, &world.deep_project, n, false)?;
    let mut rows = Vec::new();
    for (name, h) in [
        ("allowed, depth 10 (role on the root)", &allowed),
        ("denied, depth 10 (no grant)", &denied),
    ] {
        rows.push(vec![
            name.to_string(),
            h.len().to_string(),
            h.value_at_quantile(0.5).to_string(),
            h.value_at_quantile(0.99).to_string(),
            h.value_at_quantile(0.999).to_string(),
        ]);
    }
    println!();
    print_table(
        &[
            "single check (ns, clock reads included)",
            "checks",
            "p50",
            "p99",
            "p99.9",
        ],
        &rows,
    );

    let mut lookup = histogram()?;
    let mut found = 0;
    for _ in 0..if args.smoke { 3 } else { 50 } {
        let start = Instant::now();
        let ids = index.lookup(&world.lookup_user, "project", "project.read")?;
        lookup.saturating_record(start.elapsed().as_micros() as u64);
        found = ids.len();
    }
    anyhow::ensure!(
        found == world.lookup_size,
        "lookup found {found}, expected {}",
        world.lookup_size
    );
    println!();
    print_table(
        &["lookup (ms)", "results", "p50", "p99"],
        &[vec![
            "projects a user may read".into(),
            found.to_string(),
            ms(lookup.value_at_quantile(0.5)),
            ms(lookup.value_at_quantile(0.99)),
        ]],
    );
    Ok(())
}

/// Signs a user up and builds, through the real APIs, a chain of ten
/// organizations with a project at the bottom; returns (user id, token,
/// project id).
async fn grpc_world(channel: &Channel) -> anyhow::Result<(String, String, String)> {
    let channel = channel.clone();
    let signed_up =
        identity_pb::identity_service_client::IdentityServiceClient::new(channel.clone())
            .sign_up(identity_pb::SignUpRequest {
                // Unique: a long-running server keeps its users.
                email: format!("bench-{}@example.com", uuid_simple()),
                password: "correct horse battery staple".into(),
                display_name: "Bench".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
    let user = signed_up
        .user
        .unwrap_or_default()
        .name
        .trim_start_matches("users/")
        .to_string();
    let token = signed_up.tokens.unwrap_or_default().access_token;
    let mut orgs =
        org::organization_service_client::OrganizationServiceClient::new(channel.clone());
    let mut parent = String::new();
    for level in 1..=10 {
        let created = orgs
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: format!("Level {level}"),
                        parent: parent.clone(),
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
            .unwrap_or_default();
        parent = created.name;
        // The next level is created under this one once the index knows it.
        wait_allowed(
            &channel,
            &user,
            &token,
            "organization",
            parent.trim_start_matches("organizations/"),
            "organization.read",
        )
        .await?;
    }
    let project = org::project_service_client::ProjectServiceClient::new(channel.clone())
        .create_project(authed(
            org::CreateProjectRequest {
                parent: parent.clone(),
                project: Some(org::Project {
                    display_name: "Deep".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &token,
        ))
        .await?
        .into_inner()
        .project
        .unwrap_or_default();
    let project = project
        .name
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    wait_allowed(&channel, &user, &token, "project", &project, "project.read").await?;
    Ok((user, token, project))
}

fn check_request(user: &str, project: &str) -> authz::CheckPermissionRequest {
    authz::CheckPermissionRequest {
        consistency: None,
        resource: Some(authz::ObjectReference {
            object_type: "project".into(),
            object_id: project.into(),
        }),
        permission: "project.read".into(),
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

async fn wait_allowed(
    channel: &Channel,
    user: &str,
    token: &str,
    object_type: &str,
    id: &str,
    permission: &str,
) -> anyhow::Result<()> {
    let mut client =
        authz::authorization_service_client::AuthorizationServiceClient::new(channel.clone());
    for _ in 0..400 {
        let mut request = check_request(user, id);
        request.resource = Some(authz::ObjectReference {
            object_type: object_type.into(),
            object_id: id.into(),
        });
        request.permission = permission.into();
        let answer = client
            .check_permission(authed(request, token))
            .await?
            .into_inner();
        if answer.permissionship() == authz::Permissionship::Allowed {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("{object_type}:{id} never became readable")
}

async fn over_grpc(args: &Args) -> anyhow::Result<()> {
    let seconds = args.seconds.unwrap_or(if args.smoke { 0.25 } else { 5.0 });
    let measure = Duration::from_secs_f64(seconds);
    let warmup = Duration::from_secs_f64((seconds / 4.0).min(1.0));
    let sandbox = match &args.server {
        Some(_) => None,
        None => Some(
            Sandbox::builder()
                .services(&[
                    ServiceKind::Identity,
                    ServiceKind::Organization,
                    ServiceKind::Rbac,
                ])
                .start()
                .await?,
        ),
    };
    let url = match (&args.server, &sandbox) {
        (Some(url), _) => url.clone(),
        (None, Some(sandbox)) => format!("http://{}", sandbox.server.grpc_addr),
        (None, None) => unreachable!("a sandbox is started when no server is given"),
    };
    let (user, token, project) = grpc_world(&connect(&url, 1).await?[0]).await?;
    let place = if args.server.is_some() {
        "the server in its own process"
    } else {
        "client and server in this process"
    };
    println!(
        "\n2. Over gRPC on loopback ({place}; {seconds} s per row; a {}-byte bearer token)\n",
        token.len()
    );
    // The floor answers what Tenantry answers, with the token it answered.
    let sample = authz::authorization_service_client::AuthorizationServiceClient::new(
        connect(&url, 1).await?.remove(0),
    )
    .check_permission(authed(check_request(&user, &project), &token))
    .await?
    .into_inner();
    let floor = Floor::new(&check_request(&user, &project), sample.checked_at)
        .serve()
        .await?;
    let question = Question {
        user: &user,
        project: &project,
        warmup,
        measure,
    };
    let mut rows = Vec::new();
    for concurrency in [1usize, 8, 64] {
        for items in [1, 10] {
            let floor_run = question.ask(&floor, None, concurrency, items).await?;
            let run = question.ask(&url, Some(&token), concurrency, items).await?;
            let rpc = match items {
                1 => "CheckPermission".to_string(),
                n => format!("CheckBulkPermissions of {n}"),
            };
            for (name, run) in [("floor", &floor_run), ("Tenantry", &run)] {
                rows.push(run.row(format!("{rpc}, c={concurrency}, {name}"), items));
            }
            rows.push(vec![
                "  Tenantry ÷ floor".into(),
                format!("{:.2}", run.per_second() / floor_run.per_second()),
                format!(
                    "{:.2}",
                    run.quantile_us(0.5) as f64 / floor_run.quantile_us(0.5).max(1) as f64
                ),
                format!(
                    "{:.2}",
                    run.quantile_us(0.99) as f64 / floor_run.quantile_us(0.99).max(1) as f64
                ),
            ]);
        }
        // Where the difference goes: the same server's empty RPC, bare and
        // carrying the same bearer header as the checks (health is public,
        // so the header is only carried, not verified).
        for bearer in [None, Some(token.as_str())] {
            let clients: Vec<HealthClient<Channel>> = connect(&url, concurrency)
                .await?
                .into_iter()
                .map(HealthClient::new)
                .collect();
            let bearer = bearer.map(str::to_string);
            let name = match bearer {
                None => "Health/Check on Tenantry's port",
                Some(_) => "  the same with the bearer header",
            };
            let run = warm_then_measure(warmup, measure, clients, move |mut client, _, _| {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                let request = with_bearer(request, bearer.as_deref());
                async move {
                    client.check(request).await?;
                    Ok(())
                }
            })
            .await?;
            rows.push(run.row(format!("{name}, c={concurrency}"), 1));
        }
    }
    print_table(&["unary RPC", "checks/s", "p50 µs", "p99 µs"], &rows);

    let single: Vec<_> = connect(&url, 1)
        .await?
        .into_iter()
        .map(authz::authorization_service_client::AuthorizationServiceClient::new)
        .collect();
    let (u, t, p) = (user.clone(), token.clone(), project.clone());
    let one = warm_then_measure(warmup, measure, single.clone(), move |mut client, _, _| {
        let request = authed(check_request(&u, &p), &t);
        async move {
            client.check_permission(request).await?;
            Ok(())
        }
    })
    .await?;
    let (u, t, p) = (user.clone(), token.clone(), project.clone());
    let bulk = warm_then_measure(warmup, measure, single, move |mut client, _, _| {
        let items = (0..100)
            .map(|_| {
                let single = check_request(&u, &p);
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
            &t,
        );
        async move {
            let pairs = client
                .check_bulk_permissions(request)
                .await?
                .into_inner()
                .pairs;
            anyhow::ensure!(pairs.len() == 100, "short answer");
            Ok(())
        }
    })
    .await?;
    println!();
    print_table(
        &["c=1", "calls/s", "p50 µs", "p99 µs"],
        &[
            one.row("CheckPermission", 1),
            bulk.row("CheckBulkPermissions, 100 checks", 1),
            vec![
                "  bulk p99 / single p99".into(),
                String::new(),
                String::new(),
                format!(
                    "{:.2}",
                    bulk.quantile_us(0.99) as f64 / one.quantile_us(0.99).max(1) as f64
                ),
            ],
        ],
    );
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await?;
    }
    Ok(())
}

/// `request`, with `token` as its bearer when given.
fn with_bearer<T>(request: T, token: Option<&str>) -> tonic::Request<T> {
    match token {
        Some(token) => authed(request, token),
        None => tonic::Request::new(request),
    }
}

/// One check asked over and over, of Tenantry or of the floor.
struct Question<'a> {
    user: &'a str,
    project: &'a str,
    warmup: Duration,
    measure: Duration,
}

impl Question<'_> {
    /// Asks the check at `url` from `concurrency` clients, each on its own
    /// connection, `items` checks per call (one: CheckPermission; more:
    /// CheckBulkPermissions), with `token` as the bearer when given. Every
    /// answer must allow.
    async fn ask(
        &self,
        url: &str,
        token: Option<&str>,
        concurrency: usize,
        items: usize,
    ) -> anyhow::Result<tenantry_tests::bench::Run> {
        let clients: Vec<_> = connect(url, concurrency)
            .await?
            .into_iter()
            .map(authz::authorization_service_client::AuthorizationServiceClient::new)
            .collect();
        let single = check_request(self.user, self.project);
        let bulk = authz::CheckBulkPermissionsRequest {
            consistency: None,
            items: vec![
                authz::CheckBulkPermissionsRequestItem {
                    resource: single.resource.clone(),
                    permission: single.permission.clone(),
                    subject: single.subject.clone(),
                };
                items
            ],
        };
        let token = token.map(str::to_string);
        warm_then_measure(
            self.warmup,
            self.measure,
            clients,
            move |mut client, _, _| {
                let (single, bulk) = (
                    with_bearer(single.clone(), token.as_deref()),
                    with_bearer(bulk.clone(), token.as_deref()),
                );
                async move {
                    let allowed = if items == 1 {
                        client
                            .check_permission(single)
                            .await?
                            .into_inner()
                            .permissionship()
                            == authz::Permissionship::Allowed
                    } else {
                        let pairs = client
                            .check_bulk_permissions(bulk)
                            .await?
                            .into_inner()
                            .pairs;
                        pairs.len() == items
                            && pairs.iter().all(|pair| {
                                matches!(
                                    &pair.response,
                                    Some(authz::check_bulk_permissions_pair::Response::Item(item))
                                        if item.permissionship() == authz::Permissionship::Allowed
                                )
                            })
                    };
                    anyhow::ensure!(allowed, "a check was not allowed");
                    Ok(())
                }
            },
        )
        .await
    }
}

fn uuid_simple() -> String {
    tenantry_kit::id::new_id().simple().to_string()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let only = args.only.as_deref();
    anyhow::ensure!(
        matches!(only, None | Some("index") | Some("grpc")),
        "--only takes `index` or `grpc`"
    );
    if only != Some("grpc") {
        in_process(&args)?;
    }
    if only != Some("index") {
        over_grpc(&args).await?;
    }
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
