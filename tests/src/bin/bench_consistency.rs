//! What read-your-writes costs, against a server in its own process (as a
//! deployment runs it): the latency of writes that hand their events to the
//! authorization index (CreateOrganization, CreateProject) and of rbac's own
//! (CreateMembership); on Postgres with `--replica`, the same with a second
//! rbac replica that every write waits for; the cost of a check carrying a
//! token the replica already has; and how long until the other replica
//! answers a write's effect to a caller without a token.
//!
//! `--server-binary` runs another build's server (`tenantry`, or an older
//! `bench-soak`), `--before` for one that predates internal keys: the
//! same measurements then show what the guarantees cost.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-consistency
//! cargo run --release -p tenantry-tests --bin bench-consistency -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/test --replica
//! cargo run -p tenantry-tests --bin bench-consistency -- --smoke   # CI
//! ```

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use hdrhistogram::Histogram;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{ServerProcess, authed};
use tenantry_tests::bench::{
    connect, fresh_schema, histogram, print_table, rate, warm_then_measure,
};
use tonic::transport::Channel;

/// The consistency header, as clients send it back.
const HEADER: &str = "x-tenantry-consistency-token";

#[derive(Debug, Parser)]
#[command(name = "bench-consistency")]
struct Args {
    /// A few writes and short loops, to keep the program working (CI).
    #[arg(long)]
    smoke: bool,
    /// Writes of each kind measured. Default: 200 (10 with --smoke).
    #[arg(long)]
    writes: Option<usize>,
    /// Postgres for the server instead of SQLite (a fresh schema is made).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// With --postgres: a second rbac replica in a process of its own.
    #[arg(long)]
    replica: bool,
    /// The server program to run (default: this program, which is the
    /// `tenantry` program when started as `serve`).
    #[arg(long, value_name = "PATH")]
    server_binary: Option<std::path::PathBuf>,
    /// The server predates the internal key (an older build).
    #[arg(long)]
    before: bool,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return Ok(tenantry::cli::main());
    }
    let args = Args::parse();
    anyhow::ensure!(
        !args.replica || args.postgres.is_some(),
        "--replica needs --postgres"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}

struct User {
    id: String,
    token: String,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let writes = args.writes.unwrap_or(if args.smoke { 10 } else { 200 });
    let binary = match &args.server_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()?,
    };
    let binary = binary.display().to_string();
    let mut env: Vec<(&str, String)> = Vec::new();
    if !args.before {
        env.push(("TENANTRY_INTERNAL_KEY", "88".repeat(32)));
    }
    if let Some(url) = &args.postgres {
        env.push(("DATABASE_URL", fresh_schema(url).await?));
    }
    let server = ServerProcess::start(&binary, "identity,organization,rbac", &env).await?;
    let first = server.url();
    let replica = if args.replica {
        let mut env = env.clone();
        env.push(("TENANTRY_PEERS__IDENTITY", first.clone()));
        env.push(("TENANTRY_PEERS__ORGANIZATION", first.clone()));
        Some(ServerProcess::start(&binary, "rbac", &env).await?)
    } else {
        None
    };
    let storage = if args.postgres.is_some() {
        "Postgres"
    } else {
        "SQLite"
    };
    println!(
        "{storage}, {} rbac replica(s), {writes} writes of each kind, {}\n",
        if replica.is_some() { 2 } else { 1 },
        if args.before {
            "an older server"
        } else {
            "this build"
        }
    );
    let channel = connect(&first, 1).await?.remove(0);
    let ada = sign_up(&channel, "ada").await?;

    let mut organizations = histogram()?;
    let mut projects = histogram()?;
    let mut memberships = histogram()?;
    let mut tree = None;
    let mut project_ids = Vec::new();
    for _ in 0..writes {
        let started = Instant::now();
        let created = create_organization(&channel, &ada).await?;
        organizations.saturating_record(started.elapsed().as_micros() as u64);
        tree.get_or_insert(created);
    }
    let tree = tree.unwrap_or_default();
    // People join the tree by invitation (not timed); CreateMembership then
    // places each in a department, as an administrator provisions.
    let department = create_organization_under(&channel, &ada, Some(&tree)).await?;
    let members: Vec<User> = {
        let mut members = Vec::new();
        for i in 0..writes {
            members.push(invited(&server, &channel, &ada, &tree, &format!("m{i}")).await?);
        }
        members
    };
    for _ in 0..writes {
        let started = Instant::now();
        project_ids.push(create_project(&channel, &ada, &tree).await?);
        projects.saturating_record(started.elapsed().as_micros() as u64);
    }
    for member in &members {
        let started = Instant::now();
        add_member(&channel, &ada, &department, member).await?;
        memberships.saturating_record(started.elapsed().as_micros() as u64);
    }
    let row = |name: &str, h: &Histogram<u64>| {
        vec![
            name.to_string(),
            h.value_at_quantile(0.5).to_string(),
            h.value_at_quantile(0.99).to_string(),
        ]
    };
    print_table(
        &["write (through the API)", "p50 µs", "p99 µs"],
        &[
            row("CreateOrganization", &organizations),
            row("CreateProject", &projects),
            row("CreateMembership (department)", &memberships),
        ],
    );

    // A check with a token this replica already has, against one without.
    let token = write_token(&channel, &ada, &tree).await?;
    let seconds = if args.smoke { 0.3 } else { 3.0 };
    let measure = Duration::from_secs_f64(seconds);
    let warmup = Duration::from_secs_f64(seconds / 3.0);
    let clients: Vec<_> = connect(&first, 1)
        .await?
        .into_iter()
        .map(authz::authorization_service_client::AuthorizationServiceClient::new)
        .collect();
    let (user, bearer, object) = (ada.id.clone(), ada.token.clone(), tree.clone());
    let plain = warm_then_measure(warmup, measure, clients.clone(), move |mut c, _, _| {
        let request = authed(check(&user, &object), &bearer);
        async move {
            c.check_permission(request).await?;
            Ok(())
        }
    })
    .await?;
    let (user, bearer, object, sent) = (ada.id.clone(), ada.token.clone(), tree.clone(), token);
    let with_token = warm_then_measure(warmup, measure, clients, move |mut c, _, _| {
        let mut request = authed(check(&user, &object), &bearer);
        if let Some(token) = &sent {
            request.metadata_mut().insert(HEADER, token.clone());
        }
        async move {
            c.check_permission(request).await?;
            Ok(())
        }
    })
    .await?;
    println!();
    print_table(
        &["CheckPermission, c=1", "calls/s", "p50 µs", "p99 µs"],
        &[
            vec![
                "no token".into(),
                rate(plain.per_second()),
                plain.quantile_us(0.5).to_string(),
                plain.quantile_us(0.99).to_string(),
            ],
            vec![
                "a token already applied".into(),
                rate(with_token.per_second()),
                with_token.quantile_us(0.5).to_string(),
                with_token.quantile_us(0.99).to_string(),
            ],
            vec![
                "  difference (µs)".into(),
                String::new(),
                (with_token.quantile_us(0.5) as i64 - plain.quantile_us(0.5) as i64).to_string(),
                (with_token.quantile_us(0.99) as i64 - plain.quantile_us(0.99) as i64).to_string(),
            ],
        ],
    );

    // How long until the other replica (or, with one, this one) answers a
    // new project's creator without a token: from the write's start.
    let target = match &replica {
        Some(replica) => connect(&replica.url(), 1).await?.remove(0),
        None => channel.clone(),
    };
    let mut visible = histogram()?;
    let mut first_try = 0;
    for _ in 0..writes {
        let started = Instant::now();
        let project = create_project(&channel, &ada, &tree).await?;
        let mut tries = 0;
        while !allowed(&target, &ada, &project).await? {
            tries += 1;
            anyhow::ensure!(tries < 100_000, "the project never became visible");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        if tries == 0 {
            first_try += 1;
        }
        visible.saturating_record(started.elapsed().as_micros() as u64);
    }
    println!();
    print_table(
        &[
            "CreateProject, then the creator's check with no token",
            "allowed at once",
            "p50 µs",
            "p99 µs",
        ],
        &[vec![
            if replica.is_some() {
                "on the other replica".into()
            } else {
                "on the same server".into()
            },
            format!("{first_try}/{writes}"),
            visible.value_at_quantile(0.5).to_string(),
            visible.value_at_quantile(0.99).to_string(),
        ]],
    );
    drop(replica);
    drop(server);
    Ok(())
}

async fn sign_up(channel: &Channel, name: &str) -> anyhow::Result<User> {
    let response = identity::identity_service_client::IdentityServiceClient::new(channel.clone())
        .sign_up(identity::SignUpRequest {
            email: format!("{name}-{}@example.com", tenantry_kit::id::new_id().simple()),
            password: "correct horse battery staple".into(),
            display_name: name.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(User {
        id: id(&response.user.unwrap_or_default().name),
        token: response.tokens.unwrap_or_default().access_token,
    })
}

/// A new user who signed up through `owner`'s invitation to `organization`.
async fn invited(
    server: &ServerProcess,
    channel: &Channel,
    owner: &User,
    organization: &str,
    name: &str,
) -> anyhow::Result<User> {
    let email = format!("{name}-{}@example.com", tenantry_kit::id::new_id().simple());
    rbac::invitation_service_client::InvitationServiceClient::new(channel.clone())
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
    let response = identity::identity_service_client::IdentityServiceClient::new(channel.clone())
        .sign_up(identity::SignUpRequest {
            email,
            password: "correct horse battery staple".into(),
            display_name: name.into(),
            invitation_token,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(User {
        id: id(&response.user.unwrap_or_default().name),
        token: response.tokens.unwrap_or_default().access_token,
    })
}

fn id(name: &str) -> String {
    name.rsplit('/').next().unwrap_or_default().to_string()
}

async fn create_organization(channel: &Channel, owner: &User) -> anyhow::Result<String> {
    create_organization_under(channel, owner, None).await
}

async fn create_organization_under(
    channel: &Channel,
    owner: &User,
    parent: Option<&str>,
) -> anyhow::Result<String> {
    let created = org::organization_service_client::OrganizationServiceClient::new(channel.clone())
        .create_organization(authed(
            org::CreateOrganizationRequest {
                organization: Some(org::Organization {
                    display_name: "Bench".into(),
                    parent: parent
                        .map(|p| format!("organizations/{p}"))
                        .unwrap_or_default(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            },
            &owner.token,
        ))
        .await?
        .into_inner();
    Ok(id(&created.organization.unwrap_or_default().name))
}

async fn create_project(channel: &Channel, owner: &User, parent: &str) -> anyhow::Result<String> {
    // An older server learns of a new organization by its event: wait for
    // that before the first create under it (this build needs no wait).
    let mut tries = 0;
    loop {
        let created = org::project_service_client::ProjectServiceClient::new(channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{parent}"),
                    project: Some(org::Project {
                        display_name: "P".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await;
        match created {
            Ok(response) => {
                return Ok(id(&response.into_inner().project.unwrap_or_default().name));
            }
            Err(status) if status.code() == tonic::Code::NotFound && tries < 1000 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

async fn add_member(
    channel: &Channel,
    owner: &User,
    organization: &str,
    member: &User,
) -> anyhow::Result<()> {
    rbac::membership_service_client::MembershipServiceClient::new(channel.clone())
        .create_membership(authed(
            rbac::CreateMembershipRequest {
                parent: format!("organizations/{organization}"),
                membership: Some(rbac::Membership {
                    user: format!("users/{}", member.id),
                    roles: vec!["roles/member".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &owner.token,
        ))
        .await?;
    Ok(())
}

/// The token of a write (a project created), as the client gets it.
async fn write_token(
    channel: &Channel,
    owner: &User,
    organization: &str,
) -> anyhow::Result<Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>> {
    let response = org::project_service_client::ProjectServiceClient::new(channel.clone())
        .create_project(authed(
            org::CreateProjectRequest {
                parent: format!("organizations/{organization}"),
                project: Some(org::Project {
                    display_name: "Token".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &owner.token,
        ))
        .await?;
    Ok(response.metadata().get(HEADER).cloned())
}

fn check(user: &str, organization: &str) -> authz::CheckPermissionRequest {
    authz::CheckPermissionRequest {
        consistency: None,
        resource: Some(authz::ObjectReference {
            object_type: "organization".into(),
            object_id: organization.into(),
        }),
        permission: "project.create".into(),
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

async fn allowed(channel: &Channel, user: &User, project: &str) -> anyhow::Result<bool> {
    let mut request = check(&user.id, project);
    request.resource = Some(authz::ObjectReference {
        object_type: "project".into(),
        object_id: project.into(),
    });
    request.permission = "project.read".into();
    let answer =
        authz::authorization_service_client::AuthorizationServiceClient::new(channel.clone())
            .check_permission(authed(request, &user.token))
            .await?
            .into_inner();
    Ok(answer.permissionship() == authz::Permissionship::Allowed)
}
