//! The tenant boundary against a hostile or demoted insider: credentials
//! follow access at once. An API key holds what it carries, inside its
//! scope, only while its owner holds it there; a revoked key stops on the
//! very next call, also through the gateway with its exchanged token
//! cached. On SQLite and (when configured) Postgres, with no sleeps and no
//! retries.

use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{Sandbox, Storage, authed, last_id as id, storages};
use tenantry_tests::rest::Rest;
use tonic::Code;
use tonic::transport::Channel;

type Identity = identity_pb::identity_service_client::IdentityServiceClient<Channel>;
type Keys = identity_pb::api_key_service_client::ApiKeyServiceClient<Channel>;
type Orgs = org::organization_service_client::OrganizationServiceClient<Channel>;
type Projects = org::project_service_client::ProjectServiceClient<Channel>;
type Teams = org::team_service_client::TeamServiceClient<Channel>;
type Members = rbac::membership_service_client::MembershipServiceClient<Channel>;
type TeamMembers = rbac::team_member_service_client::TeamMemberServiceClient<Channel>;
type Grants = rbac::project_grant_service_client::ProjectGrantServiceClient<Channel>;
type Authz = authz::authorization_service_client::AuthorizationServiceClient<Channel>;

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

struct User {
    id: String,
    token: String,
}

/// A key: its id, its secret, and an access token it was exchanged for.
struct Key {
    id: String,
    secret: String,
    token: String,
}

impl World {
    async fn start(storage: Storage) -> World {
        World::with(
            storage,
            &[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Gateway,
            ],
        )
        .await
    }

    async fn with(storage: Storage, services: &[ServiceKind]) -> World {
        let sandbox = Sandbox::builder()
            .services(services)
            .storage(storage)
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        World { sandbox, channel }
    }

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
            token: response.tokens.unwrap().access_token,
        };
        (user, id(&response.organization))
    }

    async fn project(&self, token: &str, organization: &str) -> Result<String, tonic::Status> {
        Projects::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{organization}"),
                    project: Some(org::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|r| id(&r.into_inner().project.unwrap().name))
    }

    /// The ids of the projects a token sees in an organization (NOT_FOUND
    /// when it sees none and cannot read the organization).
    async fn projects(&self, token: &str, organization: &str) -> Result<Vec<String>, Code> {
        let mut ids: Vec<String> = Projects::new(self.channel.clone())
            .list_projects(authed(
                org::ListProjectsRequest {
                    parent: format!("organizations/{organization}"),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map_err(|status| status.code())?
            .into_inner()
            .projects
            .iter()
            .map(|p| id(&p.name))
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn set_roles(&self, owner: &User, organization: &str, user: &User, role: &str) {
        Members::new(self.channel.clone())
            .update_membership(authed(
                rbac::UpdateMembershipRequest {
                    membership: Some(rbac::Membership {
                        name: format!("organizations/{organization}/memberships/{}", user.id),
                        roles: vec![format!("roles/{role}")],
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["roles".into()],
                    }),
                },
                &owner.token,
            ))
            .await
            .unwrap();
    }

    async fn add_member(&self, owner: &User, organization: &str, user: &User, role: &str) {
        tenantry_tests::people::join(
            &self.sandbox,
            &self.channel,
            &owner.token,
            organization,
            &user.token,
            &[&format!("roles/{role}")],
        )
        .await;
    }

    /// Creates a key as `creator` with a scope (`team` or `project` name,
    /// or neither) and exchanges it for a token.
    async fn key(
        &self,
        creator: &User,
        organization: &str,
        scope: (&str, &str),
        permissions: &[&str],
    ) -> Result<Key, tonic::Status> {
        let mut keys = Keys::new(self.channel.clone());
        let created = keys
            .create_api_key(authed(
                identity_pb::CreateApiKeyRequest {
                    parent: format!("organizations/{organization}"),
                    api_key: Some(identity_pb::ApiKey {
                        display_name: "ci".into(),
                        team: scope.0.into(),
                        project: scope.1.into(),
                        permissions: permissions.iter().map(|p| p.to_string()).collect(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &creator.token,
            ))
            .await?
            .into_inner();
        let token = keys
            .authenticate_api_key(identity_pb::AuthenticateApiKeyRequest {
                secret: created.secret.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token;
        Ok(Key {
            id: id(&created.api_key.unwrap().name),
            secret: created.secret,
            token,
        })
    }

    /// A check about a user, asked with their own token.
    async fn allowed(&self, user: &User, object: (&str, &str), permission: &str) -> bool {
        allowed(
            &self.channel,
            &user.token,
            ("user", &user.id),
            object,
            permission,
        )
        .await
    }

    /// A check about the key itself, asked with its own token.
    async fn key_allowed(&self, key: &Key, object: (&str, &str), permission: &str) -> bool {
        key_allowed(&self.channel, key, object, permission).await
    }
}

/// Whether `subject` (type, id) may do `permission` on `object`, asked of
/// the server behind `channel` with `token`, with no consistency
/// requirement.
async fn allowed(
    channel: &Channel,
    token: &str,
    subject: (&str, &str),
    object: (&str, &str),
    permission: &str,
) -> bool {
    Authz::new(channel.clone())
        .check_permission(authed(
            authz::CheckPermissionRequest {
                resource: Some(authz::ObjectReference {
                    object_type: object.0.into(),
                    object_id: object.1.into(),
                }),
                permission: permission.into(),
                subject: Some(authz::SubjectReference {
                    object: Some(authz::ObjectReference {
                        object_type: subject.0.into(),
                        object_id: subject.1.into(),
                    }),
                    optional_relation: String::new(),
                }),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .permissionship()
        == authz::Permissionship::Allowed
}

/// A check about a key, asked with its own token.
async fn key_allowed(channel: &Channel, key: &Key, object: (&str, &str), permission: &str) -> bool {
    allowed(
        channel,
        &key.token,
        ("api_key", &key.id),
        object,
        permission,
    )
    .await
}

#[tokio::test]
async fn a_key_holds_only_what_its_owner_holds_now() {
    for storage in storages() {
        let w = World::start(storage).await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        // A first organization starts with its default project.
        let default_project = w.projects(&ada.token, &acme).await.unwrap();
        assert_eq!(default_project.len(), 1);
        let (bob, _) = w.sign_up("bob@example.com").await;
        w.add_member(&ada, &acme, &bob, "admin").await;
        let key = w
            .key(&bob, &acme, ("", ""), &["project.create", "project.read"])
            .await
            .unwrap();
        let made = w.project(&key.token, &acme).await.unwrap();
        let mut both = [default_project, vec![made.clone()]].concat();
        both.sort();
        assert!(
            w.key_allowed(&key, ("organization", &acme), "project.create")
                .await
        );

        // Demoted: neither bob nor his key may create projects any more,
        // from the moment the write returns; nor read them, since members
        // of a new organization see only the projects granted to them.
        w.set_roles(&ada, &acme, &bob, "member").await;
        let own = w.project(&bob.token, &acme).await.unwrap_err();
        assert_eq!(own.code(), Code::PermissionDenied, "{own:?}");
        // (The key does not carry organization.read: for it the
        // organization is not even there.)
        let through_key = w.project(&key.token, &acme).await.unwrap_err();
        assert_eq!(through_key.code(), Code::NotFound, "{through_key:?}");
        assert!(
            !w.key_allowed(&key, ("organization", &acme), "project.create")
                .await
        );
        assert_eq!(w.projects(&key.token, &acme).await, Err(Code::NotFound));
        assert_eq!(w.projects(&bob.token, &acme).await, Ok(Vec::new()));

        // Promoted again: the key follows (it is the owner's access that
        // counts, never a copy).
        w.set_roles(&ada, &acme, &bob, "admin").await;
        assert!(
            w.key_allowed(&key, ("organization", &acme), "project.create")
                .await
        );
        assert_eq!(w.projects(&key.token, &acme).await, Ok(both.clone()));

        // Removed: the key holds nothing, at once.
        Members::new(w.channel.clone())
            .delete_membership(authed(
                rbac::DeleteMembershipRequest {
                    name: format!("organizations/{acme}/memberships/{}", bob.id),
                    etag: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        assert!(
            !w.key_allowed(&key, ("project", &made), "project.read")
                .await
        );
        assert_eq!(w.projects(&key.token, &acme).await, Err(Code::NotFound));
        let gone = w.project(&key.token, &acme).await.unwrap_err();
        assert!(
            matches!(gone.code(), Code::PermissionDenied | Code::NotFound),
            "{gone:?}"
        );
        // And the key cannot be exchanged again.
        let refused = Keys::new(w.channel.clone())
            .authenticate_api_key(identity_pb::AuthenticateApiKeyRequest {
                secret: key.secret.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_revoked_key_stops_on_the_next_call_also_through_the_gateway() {
    for storage in storages() {
        let w = World::start(storage).await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        let key = w
            .key(&ada, &acme, ("", ""), &["project.read", "project.create"])
            .await
            .unwrap();
        let rest = Rest::new(w.sandbox.http_url());
        // The gateway exchanges the key once and keeps the token.
        assert_eq!(
            create_through_gateway(&rest, &acme, &key.secret)
                .await
                .status,
            200
        );
        assert_eq!(
            create_through_gateway(&rest, &acme, &key.secret)
                .await
                .status,
            200
        );

        Keys::new(w.channel.clone())
            .revoke_api_key(authed(
                identity_pb::RevokeApiKeyRequest {
                    name: format!("organizations/{acme}/apiKeys/{}", key.id),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let refused = create_through_gateway(&rest, &acme, &key.secret).await;
        assert!(
            matches!(refused.status, 401 | 403 | 404),
            "a revoked key still creates: {refused:?}"
        );
        // The token it was exchanged for holds nothing either.
        assert!(
            !w.key_allowed(&key, ("organization", &acme), "project.create")
                .await
        );
        assert_eq!(w.projects(&key.token, &acme).await, Err(Code::NotFound));
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn scoped_keys_see_exactly_their_scope() {
    for storage in storages() {
        let w = World::start(storage).await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        // A first organization starts with its default project.
        let default_project = w.projects(&ada.token, &acme).await.unwrap();
        assert_eq!(default_project.len(), 1);
        let team = Teams::new(w.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: format!("organizations/{acme}"),
                    team: Some(org::Team {
                        display_name: "Platform".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap()
            .name;
        TeamMembers::new(w.channel.clone())
            .add_team_member(authed(
                rbac::AddTeamMemberRequest {
                    parent: team.clone(),
                    team_member: Some(rbac::TeamMember {
                        user: format!("users/{}", ada.id),
                        role: authz::TeamRole::Lead as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let teams_project = w.project(&ada.token, &acme).await.unwrap();
        let other_project = w.project(&ada.token, &acme).await.unwrap();
        Grants::new(w.channel.clone())
            .create_project_grant(authed(
                rbac::CreateProjectGrantRequest {
                    parent: format!("organizations/{acme}/projects/{teams_project}"),
                    project_grant: Some(rbac::ProjectGrant {
                        subject: Some(rbac::project_grant::Subject::Team(team.clone())),
                        access_level: authz::ProjectAccessLevel::Viewer as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let mut all = [
            default_project,
            vec![teams_project.clone(), other_project.clone()],
        ]
        .concat();
        all.sort();

        // A team key reaches the team and the projects granted to it.
        let team_key = w
            .key(&ada, &acme, (&team, ""), &["project.read", "team.read"])
            .await
            .unwrap();
        assert_eq!(
            w.projects(&team_key.token, &acme).await,
            Ok(vec![teams_project.clone()])
        );
        Teams::new(w.channel.clone())
            .get_team(authed(
                org::GetTeamRequest { name: team.clone() },
                &team_key.token,
            ))
            .await
            .unwrap();
        assert!(
            !w.key_allowed(&team_key, ("project", &other_project), "project.read")
                .await
        );
        // A permission of a level above the scope is refused; nothing is made.
        let above = w
            .key(&ada, &acme, (&team, ""), &["organization.read"])
            .await
            .err()
            .unwrap();
        assert_eq!(above.code(), Code::InvalidArgument, "{above:?}");

        // An organization key reaches every project its owner reads.
        let org_key = w
            .key(&ada, &acme, ("", ""), &["project.read"])
            .await
            .unwrap();
        assert_eq!(w.projects(&org_key.token, &acme).await, Ok(all));
        let unreadable = Orgs::new(w.channel.clone())
            .get_organization(authed(
                org::GetOrganizationRequest {
                    name: format!("organizations/{acme}"),
                },
                &org_key.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            unreadable.code(),
            Code::NotFound,
            "it does not carry organization.read"
        );

        // A project key reaches its project only.
        let project_key = w
            .key(
                &ada,
                &acme,
                (
                    "",
                    &format!("organizations/{acme}/projects/{other_project}"),
                ),
                &["project.read"],
            )
            .await
            .unwrap();
        assert_eq!(
            w.projects(&project_key.token, &acme).await,
            Ok(vec![other_project.clone()])
        );
        let beside = w
            .key(
                &ada,
                &acme,
                (
                    "",
                    &format!("organizations/{acme}/projects/{other_project}"),
                ),
                &["team.read"],
            )
            .await
            .err()
            .unwrap();
        assert_eq!(beside.code(), Code::InvalidArgument, "{beside:?}");
        // Another tenant's project cannot be a scope.
        let (eve, evil) = w.sign_up("eve@example.com").await;
        let foreign = w
            .key(
                &eve,
                &evil,
                (
                    "",
                    &format!("organizations/{acme}/projects/{other_project}"),
                ),
                &["project.read"],
            )
            .await
            .err()
            .unwrap();
        assert_eq!(foreign.code(), Code::InvalidArgument, "{foreign:?}");
        let hidden = w
            .key(
                &eve,
                &evil,
                (
                    "",
                    &format!("organizations/{evil}/projects/{other_project}"),
                ),
                &["project.read"],
            )
            .await
            .err()
            .unwrap();
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
        w.sandbox.shutdown().await.unwrap();
    }
}

/// `POST /v1/organizations/{organization}/projects` with an `X-Api-Key`.
async fn create_through_gateway(
    rest: &Rest,
    organization: &str,
    secret: &str,
) -> tenantry_tests::rest::Reply {
    let request = rest
        .request(
            "POST",
            &format!("/v1/organizations/{organization}/projects"),
            None,
        )
        .header("x-api-key", secret)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"displayName":"Edge"}"#,
        )))
        .unwrap();
    rest.send(request).await
}

/// Demoting a key's owner, promoting them back and revoking the key are
/// each seen by the next check on another rbac replica, with no token.
#[tokio::test]
async fn key_changes_reach_every_replica_before_the_write_returns() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let internal = "77".repeat(32);
    let configured = internal.clone();
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
            ("TENANTRY_INTERNAL_KEY", internal),
            ("TENANTRY_PEERS__IDENTITY", first.clone()),
            ("TENANTRY_PEERS__ORGANIZATION", first),
        ],
    )
    .await
    .unwrap();
    let other = Channel::from_shared(replica.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let w = World { sandbox, channel };
    let (ada, acme) = w.sign_up("ada@example.com").await;
    let (bob, _) = w.sign_up("bob@example.com").await;
    w.add_member(&ada, &acme, &bob, "admin").await;
    for round in 0..20 {
        let key = w
            .key(&bob, &acme, ("", ""), &["project.create"])
            .await
            .unwrap();
        let create = ("organization", acme.as_str());
        assert!(
            key_allowed(&other, &key, create, "project.create").await,
            "{round}"
        );
        w.set_roles(&ada, &acme, &bob, "member").await;
        assert!(
            !key_allowed(&other, &key, create, "project.create").await,
            "{round}"
        );
        w.set_roles(&ada, &acme, &bob, "admin").await;
        assert!(
            key_allowed(&other, &key, create, "project.create").await,
            "{round}"
        );
        Keys::new(w.channel.clone())
            .revoke_api_key(authed(
                identity_pb::RevokeApiKeyRequest {
                    name: format!("organizations/{acme}/apiKeys/{}", key.id),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        assert!(
            !key_allowed(&other, &key, create, "project.create").await,
            "{round}"
        );
    }
    // A logout, seen by the other replica's next check.
    let token = login(&w, "bob@example.com", "correct horse battery staple").await;
    let asked = |token: String| {
        let (other, bob, acme) = (other.clone(), bob.id.clone(), acme.clone());
        async move {
            allowed(
                &other,
                &token,
                ("user", &bob),
                ("organization", &acme),
                "project.create",
            )
            .await
        }
    };
    assert!(asked(token.clone()).await);
    Identity::new(w.channel.clone())
        .logout(authed(identity_pb::LogoutRequest::default(), &token))
        .await
        .unwrap();
    assert!(!asked(token).await, "the other replica honours the logout");
    drop(replica);
    w.sandbox.shutdown().await.unwrap();
}

async fn login(w: &World, email: &str, password: &str) -> String {
    let tokens = Identity::new(w.channel.clone())
        .login(identity_pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(identity_pb::login_response::Result::Tokens(tokens)) = tokens.result else {
        panic!("no tokens");
    };
    tokens.access_token
}

/// Whether the holder of `token` (the user `user`) may create projects in
/// `organization`, asked of rbac with that token.
async fn may_create(w: &World, user: &str, token: &str, organization: &str) -> bool {
    allowed(
        &w.channel,
        token,
        ("user", user),
        ("organization", organization),
        "project.create",
    )
    .await
}

#[tokio::test]
async fn an_ended_session_holds_nothing_on_the_next_call() {
    for storage in storages() {
        let w = World::start(storage).await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        let password = "correct horse battery staple";
        let second = login(&w, "ada@example.com", password).await;
        let third = login(&w, "ada@example.com", password).await;
        assert!(may_create(&w, &ada.id, &ada.token, &acme).await);

        // Logout: that session's access token holds nothing at once, at
        // every service; the others are untouched.
        Identity::new(w.channel.clone())
            .logout(authed(identity_pb::LogoutRequest::default(), &ada.token))
            .await
            .unwrap();
        assert!(!may_create(&w, &ada.id, &ada.token, &acme).await);
        assert_eq!(w.projects(&ada.token, &acme).await, Err(Code::NotFound));
        let me = Identity::new(w.channel.clone())
            .me(authed(identity_pb::MeRequest::default(), &ada.token))
            .await
            .unwrap_err();
        assert_eq!(me.code(), Code::Unauthenticated);
        assert!(may_create(&w, &ada.id, &second, &acme).await);

        // A password change ends every other session.
        Identity::new(w.channel.clone())
            .change_password(authed(
                identity_pb::ChangePasswordRequest {
                    current_password: password.into(),
                    new_password: "another long passphrase entirely".into(),
                },
                &second,
            ))
            .await
            .unwrap();
        assert!(!may_create(&w, &ada.id, &third, &acme).await);
        let made = w.project(&third, &acme).await.unwrap_err();
        assert!(
            matches!(made.code(), Code::NotFound | Code::PermissionDenied),
            "{made:?}"
        );
        assert!(may_create(&w, &ada.id, &second, &acme).await);
        w.sandbox.shutdown().await.unwrap();
    }
}

/// What tenant B's owner sees of B through the REST API: compared before
/// and after tenant A tried every route with B's names.
async fn tenant_view(rest: &Rest, token: &str, organization: &str, project: &str) -> Vec<String> {
    let mut view = Vec::new();
    for path in [
        format!("/v1/organizations/{organization}"),
        format!("/v1/organizations/{organization}/projects"),
        format!("/v1/organizations/{organization}/projects/{project}"),
        format!("/v1/organizations/{organization}/projects/{project}/grants"),
        format!("/v1/organizations/{organization}/teams"),
        format!("/v1/organizations/{organization}/memberships"),
        format!("/v1/organizations/{organization}/invitations"),
        format!("/v1/organizations/{organization}/apiKeys"),
        format!("/v1/organizations/{organization}/roles"),
        format!("/v1/organizations/{organization}/subscription"),
        "/v1/me".to_string(),
    ] {
        let reply = rest.call("GET", &path, Some(token), None).await;
        view.push(format!("GET {path}: {} {}", reply.status, reply.text));
    }
    view
}

/// Every REST route of the contracts (one per RPC, read from the gateway's
/// OpenAPI document, which is generated from the descriptor set), called by
/// tenant A with tenant B's names in its path: never a success, never a
/// server error, never a word of B's data, and B's state unchanged.
#[tokio::test]
async fn every_route_refuses_another_tenants_names() {
    for storage in storages() {
        let w = World::with(
            storage,
            &[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Billing,
                ServiceKind::Audit,
                ServiceKind::Gateway,
            ],
        )
        .await;
        let rest = Rest::new(w.sandbox.http_url());
        let (ada, _) = w.sign_up("ada@example.com").await;
        let (bob, bobs) = w.sign_up("bob.secret@example.com").await;
        let project = w.project(&bob.token, &bobs).await.unwrap();
        let team = Teams::new(w.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: format!("organizations/{bobs}"),
                    team: Some(org::Team {
                        display_name: "Secret team".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        let key = w
            .key(&bob, &bobs, ("", ""), &["project.read"])
            .await
            .unwrap();
        let invitation = rest
            .ok(
                "POST",
                &format!("/v1/organizations/{bobs}/invitations"),
                Some(&bob.token),
                Some(serde_json::json!({"email": "carol@example.com"})),
            )
            .await;
        let workspace = rest
            .ok(
                "GET",
                &format!("/v1/organizations/{bobs}"),
                Some(&bob.token),
                None,
            )
            .await["organization"]["workspace"]
            .as_str()
            .unwrap()
            .to_string();
        // B's id for each path parameter the OpenAPI document names.
        let ids = [
            ("organizationId", bobs.clone()),
            ("projectId", project.clone()),
            ("teamId", id(&team.name)),
            ("apiKeyId", key.id.clone()),
            (
                "invitationId",
                id(invitation["invitation"]["name"].as_str().unwrap()),
            ),
            ("membershipId", bob.id.clone()),
            ("memberId", bob.id.clone()),
            ("userId", bob.id.clone()),
            ("workspaceId", id(&workspace)),
        ];
        // Filled in, but not B's: built-in roles are everyone's.
        let shared = [("roleId", "admin".to_string())];
        let before = tenant_view(&rest, &bob.token, &bobs, &project).await;

        let document = rest.ok("GET", "/openapi.json", None, None).await;
        let mut tried = 0;
        for (template, operations) in document["paths"].as_object().unwrap() {
            // Fill every parameter; a route with none of B's names in it is
            // not about B.
            let mut path = template.clone();
            let mut names_b = false;
            while let Some(start) = path.find('{') {
                let end = start + path[start..].find('}').unwrap();
                let parameter = path[start + 1..end].trim_end_matches(|c: char| c.is_ascii_digit());
                let value = match ids.iter().find(|(name, _)| *name == parameter) {
                    Some((_, value)) => {
                        names_b = true;
                        value.clone()
                    }
                    None => match shared.iter().find(|(name, _)| *name == parameter) {
                        Some((_, value)) => value.clone(),
                        None => uuid::Uuid::now_v7().to_string(),
                    },
                };
                path.replace_range(start..=end, &value);
            }
            if !names_b {
                continue;
            }
            for (method, operation) in operations.as_object().unwrap() {
                let method = method.to_uppercase();
                let body = operation.get("requestBody").map(|_| serde_json::json!({}));
                let reply = rest.call(&method, &path, Some(&ada.token), body).await;
                tried += 1;
                assert!(
                    matches!(reply.status, 400 | 403 | 404 | 409 | 412),
                    "{method} {path} ({}) answered tenant A {}: {}",
                    operation["x-grpc-method"],
                    reply.status,
                    reply.text
                );
                for secret in ["bob.secret", "Secret team", &key.id] {
                    assert!(
                        !reply.text.contains(secret),
                        "{method} {path} told tenant A {secret:?}: {}",
                        reply.text
                    );
                }
            }
        }
        assert!(tried > 80, "only {tried} routes name tenant B");
        assert_eq!(
            tenant_view(&rest, &bob.token, &bobs, &project).await,
            before,
            "tenant A changed tenant B"
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

/// An answer's code, reason and message: what it tells the caller.
fn told(status: tonic::Status) -> (Code, String) {
    (status.code(), status.message().to_string())
}

/// Nobody joins an organization, or is shown to it, without accepting an
/// invitation: adding a stranger by id answers as for a user who does not
/// exist and writes nothing; once they accepted, administrators place them
/// in departments and projects directly. An external invitation grants
/// projects only.
#[tokio::test]
async fn strangers_join_only_by_accepting_an_invitation() {
    for storage in storages() {
        let w = World::start(storage).await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        let (bob, _) = w.sign_up("bob@example.com").await;
        let (carol, _) = w.sign_up("carol@example.com").await;
        let department = id(&Orgs::new(w.channel.clone())
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: "Research".into(),
                        parent: format!("organizations/{acme}"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap()
            .name);
        let rocket = w.project(&ada.token, &acme).await.unwrap();
        let probe = w.project(&ada.token, &acme).await.unwrap();
        let add = |organization: String, user: String| {
            let (channel, token) = (w.channel.clone(), ada.token.clone());
            async move {
                Members::new(channel)
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
                        &token,
                    ))
                    .await
            }
        };
        let grant = |project: String, user: String| {
            let (channel, token, acme) = (w.channel.clone(), ada.token.clone(), acme.clone());
            async move {
                Grants::new(channel)
                    .create_project_grant(authed(
                        rbac::CreateProjectGrantRequest {
                            parent: format!("organizations/{acme}/projects/{project}"),
                            project_grant: Some(rbac::ProjectGrant {
                                subject: Some(rbac::project_grant::Subject::User(format!(
                                    "users/{user}"
                                ))),
                                access_level: authz::ProjectAccessLevel::Viewer as i32,
                                ..Default::default()
                            }),
                            request_id: String::new(),
                        },
                        &token,
                    ))
                    .await
            }
        };
        let members = || async {
            let mut users: Vec<String> = Members::new(w.channel.clone())
                .list_memberships(authed(
                    rbac::ListMembershipsRequest {
                        parent: format!("organizations/{acme}"),
                        include_external: true,
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .memberships
                .into_iter()
                .map(|m| id(&m.user))
                .collect();
            users.sort();
            users
        };

        // A stranger, by id: the same answer as nobody at all, nothing written.
        let nobody = uuid::Uuid::now_v7().to_string();
        let stranger = told(add(acme.clone(), bob.id.clone()).await.unwrap_err());
        assert_eq!(stranger.0, Code::NotFound);
        assert_eq!(
            stranger,
            told(add(acme.clone(), nobody.clone()).await.unwrap_err())
        );
        assert_eq!(
            told(grant(rocket.clone(), bob.id.clone()).await.unwrap_err()),
            told(grant(rocket.clone(), nobody).await.unwrap_err())
        );
        assert_eq!(members().await, vec![ada.id.clone()]);
        assert!(
            !w.allowed(&bob, ("organization", &acme), "organization.read")
                .await
        );
        assert!(!w.allowed(&bob, ("project", &rocket), "project.read").await);

        // Once bob accepted, he is placed in a department directly.
        tenantry_tests::people::join(
            &w.sandbox,
            &w.channel,
            &ada.token,
            &acme,
            &bob.token,
            &["roles/member"],
        )
        .await;
        let placed = add(department.clone(), bob.id.clone())
            .await
            .unwrap()
            .into_inner()
            .membership
            .unwrap();
        assert_eq!(placed.user_email, "bob@example.com");

        // An external invitation: carol sees what she agrees to before
        // accepting, then reads rocket only, holds no membership, and may
        // then be granted another project directly.
        let mut invitations =
            rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone());
        invitations
            .create_invitation(authed(
                rbac::CreateInvitationRequest {
                    parent: format!("organizations/{acme}"),
                    invitation: Some(rbac::Invitation {
                        email: "carol@example.com".into(),
                        external: true,
                        projects: vec![rbac::InvitationProject {
                            project: format!("organizations/{acme}/projects/{rocket}"),
                            access_level: authz::ProjectAccessLevel::Viewer as i32,
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let token = w
            .sandbox
            .mail_token("carol@example.com", "invitation")
            .unwrap();
        let preview = invitations
            .lookup_invitation(authed(
                rbac::LookupInvitationRequest { token },
                &carol.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .preview
            .unwrap();
        assert!(preview.external && preview.roles.is_empty());
        assert_eq!(
            preview.projects,
            vec![format!("organizations/{acme}/projects/{rocket}")]
        );
        let pending = invitations
            .list_invitations(authed(
                rbac::ListInvitationsRequest {
                    parent: format!("organizations/{acme}"),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitations;
        for invitation in pending.iter().filter(|i| i.email == "carol@example.com") {
            invitations
                .revoke_invitation(authed(
                    rbac::RevokeInvitationRequest {
                        name: invitation.name.clone(),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap();
        }
        let accepted = tenantry_tests::people::accept(
            &w.sandbox,
            &w.channel,
            &ada.token,
            &acme,
            &carol.token,
            rbac::Invitation {
                external: true,
                projects: vec![rbac::InvitationProject {
                    project: format!("organizations/{acme}/projects/{rocket}"),
                    access_level: authz::ProjectAccessLevel::Viewer as i32,
                }],
                ..Default::default()
            },
        )
        .await;
        assert!(accepted.membership.is_none());
        assert!(
            w.allowed(&carol, ("project", &rocket), "project.read")
                .await
        );
        assert!(!w.allowed(&carol, ("project", &probe), "project.read").await);
        assert!(
            !w.allowed(&carol, ("organization", &acme), "organization.read")
                .await
        );
        grant(probe.clone(), carol.id.clone()).await.unwrap();
        assert!(w.allowed(&carol, ("project", &probe), "project.read").await);
        let mut expected = vec![ada.id.clone(), bob.id.clone(), carol.id.clone()];
        expected.sort();
        assert_eq!(members().await, expected);

        // An external invitation carries projects, and only projects.
        let invalid =
            rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
                .create_invitation(authed(
                    rbac::CreateInvitationRequest {
                        parent: format!("organizations/{acme}"),
                        invitation: Some(rbac::Invitation {
                            email: "dan@example.com".into(),
                            external: true,
                            roles: vec!["roles/member".into()],
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap_err();
        assert_eq!(invalid.code(), Code::InvalidArgument);
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Where a query runs: outside any scope, in one tenant's, or in the
/// system scope.
#[derive(Clone, Copy)]
enum In<'a> {
    Nowhere,
    Tenant(&'a str),
    Everyone,
}

/// The first column (text) of what `sql`, which has no tenant filter of
/// its own, finds on `db` in `scope`, sorted: row-level security decides
/// alone.
async fn unfiltered(db: &tenantry_kit::db::Database, scope: In<'_>, sql: &str) -> Vec<String> {
    use tenantry_kit::tenancy;
    let query =
        sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(db.pool());
    let rows = match scope {
        In::Nowhere => query.await,
        In::Tenant(tenant) => {
            tenancy::request(async {
                tenancy::enter(tenant);
                query.await
            })
            .await
        }
        In::Everyone => tenancy::system(query).await,
    };
    let mut values: Vec<String> = rows.unwrap().into_iter().map(|(v,)| v).collect();
    values.sort();
    values
}

/// Ada's and Bob's organizations, a project each, on Postgres with every
/// service that keeps tenant rows, and a pool of the services' own role
/// (neither superuser nor BYPASSRLS, like a deployment's).
struct TwoTenants {
    w: World,
    ada: User,
    ada_org: String,
    bob: User,
    bob_org: String,
    db: tenantry_kit::db::Database,
}

impl TwoTenants {
    async fn start() -> Option<TwoTenants> {
        if !storages().contains(&Storage::Postgres) {
            return None;
        }
        let services = [
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
            ServiceKind::Audit,
            ServiceKind::Billing,
        ];
        let w = World::with(Storage::Postgres, &services).await;
        let (ada, ada_org) = w.sign_up("ada@example.com").await;
        let (bob, bob_org) = w.sign_up("bob@example.com").await;
        w.project(&ada.token, &ada_org).await.unwrap();
        w.project(&bob.token, &bob_org).await.unwrap();
        let db = w.sandbox.database.connect().await.unwrap();
        assert!(!db.role_bypasses_row_security().await.unwrap());
        Some(TwoTenants {
            w,
            ada,
            ada_org,
            bob,
            bob_org,
            db,
        })
    }

    async fn stop(self) {
        self.db.close().await;
        self.w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn on_postgres_a_query_that_forgets_its_tenant_filter_finds_nothing_of_another_tenant() {
    let Some(t) = TwoTenants::start().await else {
        return;
    };
    let (db, ada_org, bob_org) = (&t.db, t.ada_org.as_str(), t.bob_org.as_str());
    let adas = t.w.projects(&t.ada.token, ada_org).await.unwrap();
    let bobs = t.w.projects(&t.bob.token, bob_org).await.unwrap();
    assert_eq!(
        (adas.len(), bobs.len()),
        (2, 2),
        "the default project and Rocket each"
    );
    let projects = "SELECT id FROM org_projects";
    // Outside any scope nothing shows; in a request that named Ada's
    // organization (signed-up organizations are roots), only her tree;
    // environments follow their projects, organizations their tree.
    assert!(unfiltered(db, In::Nowhere, projects).await.is_empty());
    assert_eq!(unfiltered(db, In::Tenant(ada_org), projects).await, adas);
    let organizations = "SELECT id FROM org_organizations";
    assert_eq!(
        unfiltered(db, In::Tenant(ada_org), organizations).await,
        [ada_org]
    );
    assert_eq!(unfiltered(db, In::Everyone, organizations).await.len(), 2);
    let environments = "SELECT id FROM org_environments";
    let ada_envs = unfiltered(db, In::Tenant(ada_org), environments)
        .await
        .len();
    assert!(ada_envs > 0);
    assert_eq!(
        unfiltered(db, In::Everyone, environments).await.len(),
        ada_envs * 2
    );

    // Writes into Bob's tree from a request scoped to Ada's: an update
    // finds nothing to change, an insert is refused by the policy.
    use tenantry_kit::tenancy;
    let (updated, inserted) = tenancy::request(async {
        tenancy::enter(ada_org);
        let updated =
            sqlx::query("UPDATE org_projects SET display_name = 'mine' WHERE organization_id = $1")
                .bind(bob_org)
                .execute(db.pool())
                .await
                .unwrap()
                .rows_affected();
        let inserted = sqlx::query(
            "INSERT INTO org_teams (id, organization_id, slug, display_name, description, \
             created_by, created_at_us, updated_at_us, version) \
             VALUES ('t', $1, 'x', 'X', '', 'users/x', 0, 0, 1)",
        )
        .bind(bob_org)
        .execute(db.pool())
        .await;
        (updated, inserted)
    })
    .await;
    assert_eq!(updated, 0, "Bob's projects are invisible to Ada's scope");
    let error = inserted.unwrap_err().to_string();
    assert!(error.contains("row-level security"), "{error}");
    assert_eq!(unfiltered(db, In::Tenant(bob_org), projects).await, bobs);
    assert_eq!(t.w.projects(&t.bob.token, bob_org).await.unwrap(), bobs);
    let refused_team = "SELECT id FROM org_teams WHERE id = 't'";
    assert!(unfiltered(db, In::Everyone, refused_team).await.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn on_postgres_every_service_shows_a_tenant_only_its_own_rows() {
    let Some(t) = TwoTenants::start().await else {
        return;
    };
    let (db, ada_org, bob_org) = (&t.db, t.ada_org.as_str(), t.bob_org.as_str());
    // rbac: Ada's tree shows her membership, never Bob's.
    let members = "SELECT organization_id || '/' || user_id FROM rbac_memberships";
    let ada_member = format!("{ada_org}/{}", t.ada.id);
    assert_eq!(
        unfiltered(db, In::Tenant(ada_org), members).await,
        [ada_member]
    );
    // identity: a key shows in its organization's scope only.
    t.w.key(&t.ada, ada_org, ("", ""), &["project.read"])
        .await
        .unwrap();
    let keys = "SELECT organization_id FROM identity_api_keys";
    assert_eq!(unfiltered(db, In::Tenant(ada_org), keys).await, [ada_org]);
    assert!(unfiltered(db, In::Tenant(bob_org), keys).await.is_empty());
    // audit: a read of Ada's chain sees no line of Bob's (the log takes
    // the events in as they arrive).
    let chains = "SELECT DISTINCT scope FROM audit_events";
    tenantry_testkit::eventually("both organizations' creation in the log", || async {
        let every = unfiltered(db, In::Everyone, chains).await;
        (every.iter().any(|c| c == ada_org) && every.iter().any(|c| c == bob_org)).then_some(())
    })
    .await;
    assert_eq!(unfiltered(db, In::Tenant(ada_org), chains).await, [ada_org]);
    // billing: its tenant is a workspace; Ada's shows her tree only.
    let nodes = "SELECT id || ' ' || workspace_id FROM billing_nodes";
    let every = tenantry_testkit::eventually("both trees in billing", || async {
        let every = unfiltered(db, In::Everyone, nodes).await;
        (every.len() == 2).then_some(every)
    })
    .await;
    let ada_node = every.iter().find(|n| n.starts_with(ada_org)).unwrap();
    let ada_workspace = ada_node.split(' ').nth(1).unwrap();
    assert_eq!(
        unfiltered(db, In::Tenant(ada_workspace), nodes).await,
        std::slice::from_ref(ada_node)
    );
    t.stop().await;
}

#[tokio::test]
async fn production_refuses_a_database_role_that_bypasses_row_security() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let database = tenantry_testkit::TestDatabase::new(Storage::Postgres)
        .await
        .unwrap();
    let operator = database.connect_as_operator().await.unwrap();
    assert!(operator.role_bypasses_row_security().await.unwrap());
    operator.close().await;
    let superuser = database.operator_url().to_string();
    let Err(refused) = Sandbox::builder()
        .services(&[ServiceKind::Organization])
        .storage(Storage::Postgres)
        .configure(move |config| {
            config.mode = tenantry::config::Mode::Production;
            config.database_url = Some(superuser);
        })
        .start()
        .await
    else {
        panic!("a production start as a superuser is refused");
    };
    assert!(refused.to_string().contains("BYPASSRLS"), "{refused}");
}
