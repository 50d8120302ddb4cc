//! Decisions follow the truth: a caller's next call sees what their last
//! write did, on every service, with no token handling, no sleep and no
//! retry; and a write that removes access is reflected by the very next
//! check. On SQLite and Postgres, on the in-process bus and (with the bus
//! stopped) on NATS.

use tenantry::services::ServiceKind;
use tenantry_kit::consistency::HEADER;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{Bus, NatsServer, Sandbox, Storage, authed, last_id as id, storages};
use tonic::transport::Channel;

/// Iterations of every read-your-writes loop.
const ITERATIONS: usize = 1000;

type Authz = authz::authorization_service_client::AuthorizationServiceClient<Channel>;
type Orgs = org::organization_service_client::OrganizationServiceClient<Channel>;
type Projects = org::project_service_client::ProjectServiceClient<Channel>;
type Grants = rbac::project_grant_service_client::ProjectGrantServiceClient<Channel>;
type Members = rbac::membership_service_client::MembershipServiceClient<Channel>;
type Invitations = rbac::invitation_service_client::InvitationServiceClient<Channel>;
type Identity = identity_pb::identity_service_client::IdentityServiceClient<Channel>;

struct User {
    id: String,
    email: String,
    token: String,
}

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

impl World {
    async fn start(storage: Storage, bus: Bus) -> World {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
            ])
            .storage(storage)
            .bus(bus)
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        World { sandbox, channel }
    }

    /// Signs a user up; returns them with the organization they got.
    async fn sign_up(&self, email: &str) -> (User, String) {
        let response = Identity::new(self.channel.clone())
            .sign_up(identity_pb::SignUpRequest {
                email: email.into(),
                password: "correct horse battery staple".into(),
                display_name: "Tester".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let user = User {
            id: id(&response.user.unwrap().name),
            email: email.into(),
            token: response.tokens.unwrap().access_token,
        };
        (user, id(&response.organization))
    }

    /// Whether `user` may do `permission` on the object, asked as the user
    /// with no consistency requirement at all.
    async fn allowed(&self, user: &User, object: (&str, &str), permission: &str) -> bool {
        allowed(&self.channel, user, object, permission, None).await
    }

    /// Brings `user` into `organization` as a member, by `admin`'s
    /// invitation.
    async fn join(&self, admin: &User, organization: &str, user: &User) {
        tenantry_tests::people::join(
            &self.sandbox,
            &self.channel,
            &admin.token,
            organization,
            &user.token,
            &["roles/member"],
        )
        .await;
    }

    async fn organization(&self, user: &User, parent: Option<&str>) -> String {
        let response = Orgs::new(self.channel.clone())
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: "Acme".into(),
                        parent: parent
                            .map(|p| format!("organizations/{p}"))
                            .unwrap_or_default(),
                        // Members read every project here: a member's
                        // read is the probe of these tests.
                        settings: Some(org::OrganizationSettings {
                            project_visibility: org::ProjectVisibility::AllMembers as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap();
        assert!(
            response.metadata().get(HEADER).is_some(),
            "a write answers with its consistency token"
        );
        id(&response.into_inner().organization.unwrap().name)
    }

    async fn project(&self, user: &User, organization: &str) -> String {
        let project = Projects::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{organization}"),
                    project: Some(org::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        id(&project.name)
    }
}

/// Whether `user` may do `permission` on the object, asked as the user of
/// the server behind `channel`, with no consistency requirement in the
/// request; with `token` in the consistency metadata when given.
async fn allowed(
    channel: &Channel,
    user: &User,
    object: (&str, &str),
    permission: &str,
    token: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
) -> bool {
    let mut request = authed(
        authz::CheckPermissionRequest {
            consistency: None,
            resource: Some(authz::ObjectReference {
                object_type: object.0.into(),
                object_id: object.1.into(),
            }),
            permission: permission.into(),
            subject: Some(authz::SubjectReference {
                object: Some(authz::ObjectReference {
                    object_type: "user".into(),
                    object_id: user.id.clone(),
                }),
                optional_relation: String::new(),
            }),
            with_tracing: false,
        },
        &user.token,
    );
    if let Some(token) = token {
        request.metadata_mut().insert(HEADER, token.clone());
    }
    Authz::new(channel.clone())
        .check_permission(request)
        .await
        .unwrap()
        .into_inner()
        .permissionship()
        == authz::Permissionship::Allowed
}

#[tokio::test]
async fn every_caller_reads_their_own_writes() {
    for storage in storages() {
        let w = World::start(storage, Bus::Local).await;

        // SignUp → Me and a check on the organization it created.
        for i in 0..ITERATIONS / 10 {
            let (user, organization) = w.sign_up(&format!("u{i}@example.com")).await;
            assert!(
                w.allowed(&user, ("organization", &organization), "project.create")
                    .await,
                "{storage:?}: sign-up {i}: the owner is denied on their organization"
            );
            let me = Identity::new(w.channel.clone())
                .me(authed(identity_pb::MeRequest::default(), &user.token))
                .await
                .unwrap()
                .into_inner();
            assert!(
                me.memberships
                    .iter()
                    .any(|m| m.organization == format!("organizations/{organization}")),
                "{storage:?}: sign-up {i}: Me misses the new membership"
            );
        }

        let (ada, _) = w.sign_up("ada@example.com").await;
        let (bob, _) = w.sign_up("bob@example.com").await;
        for i in 0..ITERATIONS {
            // CreateOrganization → a check and a create under it.
            let acme = w.organization(&ada, None).await;
            assert!(
                w.allowed(&ada, ("organization", &acme), "project.create")
                    .await,
                "{storage:?}: {i}: the creator is denied on a new organization"
            );
            // CreateOrganization(parent) → CreateOrganization(child).
            let child = w.organization(&ada, Some(&acme)).await;
            // CreateProject → ListProjectGrants and a check.
            let project = w.project(&ada, &child).await;
            Grants::new(w.channel.clone())
                .list_project_grants(authed(
                    rbac::ListProjectGrantsRequest {
                        parent: format!("organizations/{child}/projects/{project}"),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap_or_else(|e| panic!("{storage:?}: {i}: ListProjectGrants: {e:?}"));
            assert!(
                w.allowed(&ada, ("project", &project), "project.read").await,
                "{storage:?}: {i}: the creator is denied on a new project"
            );
            // Joining (an invitation accepted) → the new member's own check.
            if i % 10 == 0 {
                w.join(&ada, &acme, &bob).await;
                assert!(
                    w.allowed(&bob, ("project", &project), "project.read").await,
                    "{storage:?}: {i}: a new member is denied"
                );
            }
        }
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Removing access is reflected by the next check, for the writer and for
/// anyone else, with no token; also while the bus is down.
#[tokio::test]
async fn removed_access_is_gone_at_once_even_with_the_bus_stopped() {
    let mut nats = NatsServer::start().await.unwrap();
    let w = World::start(Storage::Sqlite, Bus::Nats(nats.url())).await;
    let (ada, _) = w.sign_up("ada@example.com").await;
    let (bob, _) = w.sign_up("bob@example.com").await;
    let acme = w.organization(&ada, None).await;
    let team_org = w.organization(&ada, Some(&acme)).await;
    let project = w.project(&ada, &team_org).await;
    w.join(&ada, &acme, &bob).await;
    assert!(w.allowed(&bob, ("project", &project), "project.read").await);

    nats.stop();
    // A deleted project: nobody reads it any more.
    Projects::new(w.channel.clone())
        .delete_project(authed(
            org::DeleteProjectRequest {
                name: format!("organizations/{team_org}/projects/{project}"),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    assert!(!w.allowed(&bob, ("project", &project), "project.read").await);
    assert!(!w.allowed(&ada, ("project", &project), "project.read").await);
    // A deleted organization: its subtree goes with it.
    Orgs::new(w.channel.clone())
        .delete_organization(authed(
            org::DeleteOrganizationRequest {
                name: format!("organizations/{team_org}"),
                force: true,
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    assert!(
        !w.allowed(&bob, ("organization", &team_org), "organization.read")
            .await
    );
    assert!(
        w.allowed(&bob, ("organization", &acme), "organization.read")
            .await
    );
    nats.resume().await.unwrap();
    w.sandbox.shutdown().await.unwrap();
}

type Entitlements = billing::entitlement_service_client::EntitlementServiceClient<Channel>;

/// A sandbox with billing whose FREE plan limits nothing, so that the
/// limits under test are the ones the test sets.
async fn billing_world(
    storage: Storage,
    bus: Bus,
    internal_key: &str,
) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("plans.toml");
    std::fs::write(
        &catalog,
        "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n",
    )
    .unwrap();
    let key = internal_key.to_string();
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
            ServiceKind::Billing,
        ])
        .storage(storage)
        .bus(bus)
        .configure(move |config| {
            config.billing.catalog_file = Some(catalog);
            config.internal_key = Some(key);
        })
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    (World { sandbox, channel }, dir)
}

impl World {
    async fn set_limit(
        &self,
        owner: &User,
        organization: &str,
        metric: billing::Metric,
        value: i64,
    ) {
        Entitlements::new(self.channel.clone())
            .set_limit(authed(
                billing::SetLimitRequest {
                    organization: format!("organizations/{organization}"),
                    metric: metric as i32,
                    value,
                },
                &owner.token,
            ))
            .await
            .unwrap();
    }

    /// Creates one of `metric` under `organization` through `channel`;
    /// `Ok(false)` when the limit refused it.
    async fn create_one(
        channel: &Channel,
        owner: &User,
        organization: &str,
        metric: billing::Metric,
        member: Option<&User>,
    ) -> bool {
        let refused = |status: tonic::Status| {
            assert_eq!(
                status.code(),
                tonic::Code::ResourceExhausted,
                "only the limit may refuse: {status:?}"
            );
            false
        };
        let parent = format!("organizations/{organization}");
        match metric {
            billing::Metric::Projects => Projects::new(channel.clone())
                .create_project(authed(
                    org::CreateProjectRequest {
                        parent,
                        project: Some(org::Project {
                            display_name: "P".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .map_or_else(refused, |_| true),
            billing::Metric::SubOrganizations => Orgs::new(channel.clone())
                .create_organization(authed(
                    org::CreateOrganizationRequest {
                        organization: Some(org::Organization {
                            display_name: "Child".into(),
                            parent,
                            ..Default::default()
                        }),
                        request_id: String::new(),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .map_or_else(refused, |_| true),
            // A pending invitation takes its seat.
            billing::Metric::Members => Invitations::new(channel.clone())
                .create_invitation(authed(
                    rbac::CreateInvitationRequest {
                        parent,
                        invitation: Some(rbac::Invitation {
                            email: member.unwrap().email.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .map_or_else(refused, |_| true),
            _ => unreachable!("not a metric under test"),
        }
    }
}

/// How many of `attempts` creates succeed against `limit`, made by
/// `workers` concurrent clients spread over `channels`.
async fn creates_allowed(
    channels: &[Channel],
    owner: &User,
    organization: &str,
    metric: billing::Metric,
    members: &[User],
    attempts: usize,
    workers: usize,
) -> usize {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = (0..workers).map(|w| {
        let channel = &channels[w % channels.len()];
        let next = &next;
        async move {
            let mut allowed = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= attempts {
                    return allowed;
                }
                let member = members.get(i);
                if World::create_one(channel, owner, organization, metric, member).await {
                    allowed += 1;
                }
            }
        }
    });
    futures::future::join_all(work).await.into_iter().sum()
}

/// A limit of N lets exactly N in: one client creating one after another,
/// and eight clients at once.
#[tokio::test]
async fn limits_hold_exactly_for_sequential_and_concurrent_creates() {
    for storage in storages() {
        let (w, _dir) = billing_world(storage, Bus::Local, &"44".repeat(32)).await;
        let (ada, root) = w.sign_up("ada@example.com").await;
        let mut people = Vec::new();
        for i in 0..40 {
            people.push(w.sign_up(&format!("p{i}@example.com")).await.0);
        }
        let channels = [w.channel.clone()];
        for metric in [
            billing::Metric::Projects,
            billing::Metric::SubOrganizations,
            billing::Metric::Members,
        ] {
            for (limit, attempts, workers) in [(3, 200, 1), (10, 40, 8)] {
                let organization = w.organization(&ada, Some(&root)).await;
                w.set_limit(&ada, &organization, metric, limit).await;
                // The owner holds a seat already.
                let room = if metric == billing::Metric::Members {
                    limit - 1
                } else {
                    limit
                };
                let attempts = if metric == billing::Metric::Members {
                    attempts.min(people.len())
                } else {
                    attempts
                };
                let allowed = creates_allowed(
                    &channels,
                    &ada,
                    &organization,
                    metric,
                    &people,
                    attempts,
                    workers,
                )
                .await;
                assert_eq!(
                    allowed as i64, room,
                    "{storage:?}: {metric:?} limit {limit} with {workers} client(s)"
                );
            }
        }
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Creates through two organization and billing processes on one Postgres
/// and one NATS stream still stop at the limit.
#[tokio::test]
async fn limits_hold_across_replicas() {
    let (Some(_), Some(nats)) = (
        storages().contains(&Storage::Postgres).then_some(()),
        tenantry_testkit::nats_url(),
    ) else {
        return;
    };
    let key = "55".repeat(32);
    let (w, dir) = billing_world(Storage::Postgres, Bus::Nats(nats), &key).await;
    let first = format!("http://{}", w.sandbox.server.grpc_addr);
    let (url, namespace) = w.sandbox.nats().unwrap();
    let replica = tenantry_testkit::ServerProcess::start(
        env!("CARGO_BIN_EXE_tenantry-process"),
        "organization,billing",
        &[
            ("DATABASE_URL", w.sandbox.database.url.clone()),
            ("NATS_URL", url.to_string()),
            ("TENANTRY_NATS_NAMESPACE", namespace.to_string()),
            ("TENANTRY_INTERNAL_KEY", key.clone()),
            (
                "TENANTRY_BILLING__CATALOG_FILE",
                dir.path().join("plans.toml").display().to_string(),
            ),
            ("TENANTRY_PEERS__IDENTITY", first.clone()),
            ("TENANTRY_PEERS__RBAC", first),
        ],
    )
    .await
    .unwrap();
    let other = tonic::transport::Endpoint::from_shared(replica.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (ada, root) = w.sign_up("ada@example.com").await;
    let channels = [w.channel.clone(), other];
    for metric in [billing::Metric::Projects, billing::Metric::SubOrganizations] {
        for limit in [3, 10] {
            let organization = w.organization(&ada, Some(&root)).await;
            w.set_limit(&ada, &organization, metric, limit).await;
            let allowed = creates_allowed(&channels, &ada, &organization, metric, &[], 40, 8).await;
            assert_eq!(
                allowed as i64, limit,
                "{metric:?} limit {limit} across two replicas"
            );
        }
    }
    drop(replica);
    w.sandbox.shutdown().await.unwrap();
}

/// Two rbac replicas on one Postgres: a caller's write through one shows on
/// the other at once, with no token; a removal of access too, also to a
/// caller that presents the write's token.
#[tokio::test]
async fn every_replica_answers_from_the_callers_last_write() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let key = "66".repeat(32);
    let configured = key.clone();
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
        ])
        .storage(Storage::Postgres)
        .configure(move |config| config.internal_key = Some(configured))
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let first = format!("http://{}", sandbox.server.grpc_addr);
    let replica = tenantry_testkit::ServerProcess::start(
        env!("CARGO_BIN_EXE_tenantry-process"),
        "rbac",
        &[
            ("DATABASE_URL", sandbox.database.url.clone()),
            ("TENANTRY_INTERNAL_KEY", key),
            ("TENANTRY_PEERS__IDENTITY", first.clone()),
            ("TENANTRY_PEERS__ORGANIZATION", first),
        ],
    )
    .await
    .unwrap();
    let w = World { sandbox, channel };
    let other = tonic::transport::Endpoint::from_shared(replica.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (ada, _) = w.sign_up("ada@example.com").await;
    let (bob, _) = w.sign_up("bob@example.com").await;
    for i in 0..ITERATIONS / 10 {
        let acme = w.organization(&ada, None).await;
        assert!(
            allowed(
                &other,
                &ada,
                ("organization", &acme),
                "project.create",
                None
            )
            .await,
            "{i}: the other replica denies the creator"
        );
        let project = w.project(&ada, &acme).await;
        assert!(
            allowed(&other, &ada, ("project", &project), "project.read", None).await,
            "{i}: the other replica denies the project's creator"
        );
    }

    // Removals: bob loses access through the first replica; the second
    // denies at once, asked by bob without a token and with the token.
    let acme = w.organization(&ada, None).await;
    let project = w.project(&ada, &acme).await;
    let add = || async {
        w.join(&ada, &acme, &bob).await;
        assert!(allowed(&other, &bob, ("project", &project), "project.read", None).await);
    };
    add().await;
    let removed = Members::new(w.channel.clone())
        .delete_membership(authed(
            rbac::DeleteMembershipRequest {
                name: format!("organizations/{acme}/memberships/{}", bob.id),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let token = removed.metadata().get(HEADER).unwrap().clone();
    assert!(!allowed(&other, &bob, ("project", &project), "project.read", None).await);
    assert!(
        !allowed(
            &other,
            &bob,
            ("project", &project),
            "project.read",
            Some(&token)
        )
        .await
    );

    add().await;
    let deleted = Projects::new(w.channel.clone())
        .delete_project(authed(
            org::DeleteProjectRequest {
                name: format!("organizations/{acme}/projects/{project}"),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let token = deleted.metadata().get(HEADER).unwrap().clone();
    assert!(!allowed(&other, &bob, ("project", &project), "project.read", None).await);
    assert!(
        !allowed(
            &other,
            &bob,
            ("project", &project),
            "project.read",
            Some(&token)
        )
        .await
    );

    let deleted = Orgs::new(w.channel.clone())
        .delete_organization(authed(
            org::DeleteOrganizationRequest {
                name: format!("organizations/{acme}"),
                force: true,
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let token = deleted.metadata().get(HEADER).unwrap().clone();
    assert!(
        !allowed(
            &other,
            &bob,
            ("organization", &acme),
            "organization.read",
            None
        )
        .await
    );
    assert!(
        !allowed(
            &other,
            &bob,
            ("organization", &acme),
            "organization.read",
            Some(&token)
        )
        .await
    );
    drop(replica);
    w.sandbox.shutdown().await.unwrap();
}

/// Two audit processes share one durable consumer; one is killed (-9)
/// while events flow. The other takes over within `nats_ack_wait_ms`
/// (2 s), not the old half-minute: every event reaches the audit log.
#[tokio::test]
async fn a_killed_consumer_holds_the_others_up_for_the_ack_wait_only() {
    let (Some(_), Some(nats)) = (
        storages().contains(&Storage::Postgres).then_some(()),
        tenantry_testkit::nats_url(),
    ) else {
        return;
    };
    let key = "77".repeat(32);
    let configured = key.clone();
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
        ])
        .storage(Storage::Postgres)
        .bus(Bus::Nats(nats))
        .configure(move |config| config.internal_key = Some(configured))
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let first = format!("http://{}", sandbox.server.grpc_addr);
    let (url, namespace) = sandbox.nats().unwrap();
    let env = [
        ("DATABASE_URL", sandbox.database.url.clone()),
        ("NATS_URL", url.to_string()),
        ("TENANTRY_NATS_NAMESPACE", namespace.to_string()),
        ("TENANTRY_INTERNAL_KEY", key),
        ("TENANTRY_PEERS__IDENTITY", first.clone()),
        ("TENANTRY_PEERS__RBAC", first.clone()),
        ("TENANTRY_PEERS__ORGANIZATION", first),
    ];
    let binary = env!("CARGO_BIN_EXE_tenantry-process");
    let doomed = tenantry_testkit::ServerProcess::start(binary, "audit", &env)
        .await
        .unwrap();
    let survivor = tenantry_testkit::ServerProcess::start(binary, "audit", &env)
        .await
        .unwrap();
    let w = World { sandbox, channel };
    let (ada, _) = w.sign_up("ada@example.com").await;
    let acme = w.organization(&ada, None).await;
    // Events flowing while one consumer dies mid-stream.
    for _ in 0..20 {
        w.project(&ada, &acme).await;
    }
    doomed.kill();
    for _ in 0..20 {
        w.project(&ada, &acme).await;
    }
    let audit = tonic::transport::Endpoint::from_shared(survivor.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = 0;
    // The audit log is fed by the bus: it may lag, by design. What must
    // not happen is a stall of the consumer's ack wait (30 s before).
    while started.elapsed() < std::time::Duration::from_secs(15) {
        seen = audit_projects(&audit, &ada, &acme).await;
        if seen == 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 40, "the surviving consumer did not take over");
    drop(survivor);
    w.sandbox.shutdown().await.unwrap();
}

/// How many `project.created` events of `organization` the audit log holds.
async fn audit_projects(channel: &Channel, owner: &User, organization: &str) -> usize {
    use tenantry_proto::tenantry::audit::v1 as audit;
    audit::audit_service_client::AuditServiceClient::new(channel.clone())
        .list_audit_events(authed(
            audit::ListAuditEventsRequest {
                parent: format!("organizations/{organization}"),
                page_size: 100,
                filter: Some(audit::AuditEventFilter {
                    action: "project.created".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &owner.token,
        ))
        .await
        .map(|r| r.into_inner().audit_events.len())
        .unwrap_or(0)
}

/// SignUp keeps its promise of an organization: when the organization
/// service cannot be reached, the sign-up fails as UNAVAILABLE and leaves
/// no account behind (the same address can sign up again later).
#[tokio::test]
async fn a_sign_up_without_its_organization_leaves_nothing_behind() {
    let nowhere = format!("http://{}", tenantry_testkit::free_addr().unwrap());
    let sandbox = Sandbox::builder()
        .services(&[ServiceKind::Identity, ServiceKind::Rbac])
        .configure(move |config| config.peers.organization = Some(nowhere))
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let failed = Identity::new(channel.clone())
        .sign_up(identity_pb::SignUpRequest {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
            display_name: "Ada".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Unavailable, "{failed:?}");
    let login = Identity::new(channel)
        .login(identity_pb::LoginRequest {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        login.code(),
        tonic::Code::Unauthenticated,
        "no account: {login:?}"
    );
    assert!(
        sandbox
            .mail_token("ada@example.com", "verify_email")
            .is_none(),
        "no verification mail for an account that does not exist"
    );
    sandbox.shutdown().await.unwrap();
}

/// A disabled user holds nothing from the moment DisableUser returns, even
/// with the access token they still carry; enabling gives it all back.
#[tokio::test]
async fn a_disabled_user_is_denied_at_once() {
    for storage in storages() {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
            ])
            .storage(storage)
            .configure(|config| config.identity.platform_admins = vec!["root@example.com".into()])
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let w = World { sandbox, channel };
        let (root, _) = w.sign_up("root@example.com").await;
        let (bob, bobs) = w.sign_up("bob@example.com").await;
        assert!(
            w.allowed(&bob, ("organization", &bobs), "project.create")
                .await
        );
        Identity::new(w.channel.clone())
            .disable_user(authed(
                identity_pb::DisableUserRequest {
                    name: format!("users/{}", bob.id),
                    ..Default::default()
                },
                &root.token,
            ))
            .await
            .unwrap();
        assert!(
            !w.allowed(&bob, ("organization", &bobs), "organization.read")
                .await,
            "{storage:?}: a disabled user still holds access"
        );
        Identity::new(w.channel.clone())
            .enable_user(authed(
                identity_pb::EnableUserRequest {
                    name: format!("users/{}", bob.id),
                    ..Default::default()
                },
                &root.token,
            ))
            .await
            .unwrap();
        // Disabling ended bob's sessions: his old token stays dead; once
        // enabled, he signs in again and holds his access.
        assert!(
            !w.allowed(&bob, ("organization", &bobs), "project.create")
                .await,
            "{storage:?}: a session ended by disabling came back"
        );
        let login = Identity::new(w.channel.clone())
            .login(identity_pb::LoginRequest {
                email: "bob@example.com".into(),
                password: "correct horse battery staple".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let Some(identity_pb::login_response::Result::Tokens(tokens)) = login.result else {
            panic!("no tokens");
        };
        let bob = User {
            id: bob.id,
            email: bob.email,
            token: tokens.access_token,
        };
        assert!(
            w.allowed(&bob, ("organization", &bobs), "project.create")
                .await
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

/// An organization enters a token only for its members: `Login` naming
/// another tenant's organization is NOT_FOUND, and a member who leaves an
/// organization gets tokens for none at the next refresh.
#[tokio::test]
async fn tokens_name_only_organizations_the_user_belongs_to() {
    let w = World::start(Storage::Sqlite, Bus::Local).await;
    let (_, victims) = w.sign_up("victim@example.com").await;
    let (_, own) = w.sign_up("mallory@example.com").await;
    let login = |organization: &str| {
        let channel = w.channel.clone();
        let organization = organization.to_string();
        async move {
            Identity::new(channel)
                .login(identity_pb::LoginRequest {
                    email: "mallory@example.com".into(),
                    password: "correct horse battery staple".into(),
                    organization: format!("organizations/{organization}"),
                })
                .await
        }
    };
    let refused = login(&victims).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let tokens = login(&own).await.unwrap().into_inner();
    let Some(identity_pb::login_response::Result::Tokens(tokens)) = tokens.result else {
        panic!("no tokens");
    };
    let claims: serde_json::Value = {
        use base64::Engine as _;
        let payload = tokens.access_token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["org"], own.as_str());
    w.sandbox.shutdown().await.unwrap();
}
