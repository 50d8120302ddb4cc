//! API keys hold what their owner holds now, inside their scope, until
//! revoked, on every replica.

use super::*;

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

/// Acme, Ada's: its default project, a team granted one more project, and
/// another project beside them.
struct Scopes {
    w: World,
    ada: User,
    acme: String,
    team: String,
    teams_project: String,
    other_project: String,
    all: Vec<String>,
}

impl Scopes {
    async fn start(storage: Storage) -> Scopes {
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

        Scopes {
            w,
            ada,
            acme,
            team,
            teams_project,
            other_project,
            all,
        }
    }
}

#[tokio::test]
async fn scoped_keys_see_exactly_their_scope() {
    for storage in storages() {
        let s = Scopes::start(storage).await;
        a_team_key_reaches_the_team_and_its_granted_projects(&s).await;
        an_organization_key_reaches_every_project_its_owner_reads(&s).await;
        a_project_key_reaches_its_project_only(&s).await;
        another_tenants_project_cannot_be_a_scope(&s).await;
        s.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_team_key_reaches_the_team_and_its_granted_projects(s: &Scopes) {
    let Scopes {
        w,
        ada,
        acme,
        team,
        teams_project,
        other_project,
        ..
    } = s;
    // A team key reaches the team and the projects granted to it.
    let team_key = w
        .key(ada, acme, (team, ""), &["project.read", "team.read"])
        .await
        .unwrap();
    assert_eq!(
        w.projects(&team_key.token, acme).await,
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
        !w.key_allowed(&team_key, ("project", other_project), "project.read")
            .await
    );
}

async fn an_organization_key_reaches_every_project_its_owner_reads(s: &Scopes) {
    let Scopes {
        w,
        ada,
        acme,
        team,
        all,
        ..
    } = s;
    // A permission of a level above the scope is refused; nothing is made.
    let above = w
        .key(ada, acme, (team, ""), &["organization.read"])
        .await
        .err()
        .unwrap();
    assert_eq!(above.code(), Code::InvalidArgument, "{above:?}");

    // An organization key reaches every project its owner reads.
    let org_key = w.key(ada, acme, ("", ""), &["project.read"]).await.unwrap();
    assert_eq!(w.projects(&org_key.token, acme).await, Ok(all.clone()));
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
}

async fn a_project_key_reaches_its_project_only(s: &Scopes) {
    let Scopes {
        w,
        ada,
        acme,
        other_project,
        ..
    } = s;
    // A project key reaches its project only.
    let project_key = w
        .key(
            ada,
            acme,
            (
                "",
                &format!("organizations/{acme}/projects/{other_project}"),
            ),
            &["project.read"],
        )
        .await
        .unwrap();
    assert_eq!(
        w.projects(&project_key.token, acme).await,
        Ok(vec![other_project.clone()])
    );
    let beside = w
        .key(
            ada,
            acme,
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
}

async fn another_tenants_project_cannot_be_a_scope(s: &Scopes) {
    let Scopes {
        w,
        acme,
        other_project,
        ..
    } = s;
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

/// A World on Postgres whose rbac has a second replica, a process of its
/// own; Ada's Acme with Bob an admin in it.
struct Replicas {
    w: World,
    replica: tenantry_testkit::ServerProcess,
    other: Channel,
    ada: User,
    bob: User,
    acme: String,
}

impl Replicas {
    async fn start() -> Replicas {
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
        let peers = [ServiceKind::Identity, ServiceKind::Organization];
        let environment = sandbox.environment_beside(Some(&internal), &peers);
        let binary = env!("CARGO_BIN_EXE_tenantry-process");
        let replica = tenantry_testkit::ServerProcess::start(binary, "rbac", &environment);
        let replica = replica.await.unwrap();
        let other = Channel::from_shared(replica.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let w = World { sandbox, channel };
        let (ada, acme) = w.sign_up("ada@example.com").await;
        let (bob, _) = w.sign_up("bob@example.com").await;
        w.add_member(&ada, &acme, &bob, "admin").await;
        Replicas {
            w,
            replica,
            other,
            ada,
            bob,
            acme,
        }
    }
}

/// Demoting a key's owner, promoting them back and revoking the key are
/// each seen by the next check on another rbac replica, with no token.
#[tokio::test]
async fn key_changes_reach_every_replica_before_the_write_returns() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let r = Replicas::start().await;
    for round in 0..20 {
        a_key_follows_its_owner_and_its_revocation_on_the_other_replica(&r, round).await;
    }
    a_logout_is_seen_by_the_other_replicas_next_check(&r).await;
    drop(r.replica);
    r.w.sandbox.shutdown().await.unwrap();
}

async fn a_key_follows_its_owner_and_its_revocation_on_the_other_replica(r: &Replicas, round: u32) {
    let Replicas {
        w,
        other,
        ada,
        bob,
        acme,
        ..
    } = r;
    let key = w
        .key(bob, acme, ("", ""), &["project.create"])
        .await
        .unwrap();
    let create = ("organization", acme.as_str());
    assert!(
        key_allowed(other, &key, create, "project.create").await,
        "{round}"
    );
    w.set_roles(ada, acme, bob, "member").await;
    assert!(
        !key_allowed(other, &key, create, "project.create").await,
        "{round}"
    );
    w.set_roles(ada, acme, bob, "admin").await;
    assert!(
        key_allowed(other, &key, create, "project.create").await,
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
        !key_allowed(other, &key, create, "project.create").await,
        "{round}"
    );
}

async fn a_logout_is_seen_by_the_other_replicas_next_check(r: &Replicas) {
    let token = session(&r.w, "bob@example.com").await;
    let asked = |token: String| async move {
        allowed(
            &r.other,
            &token,
            ("user", &r.bob.id),
            ("organization", &r.acme),
            "project.create",
        )
        .await
    };
    assert!(asked(token.clone()).await);
    Identity::new(r.w.channel.clone())
        .logout(authed(identity_pb::LogoutRequest::default(), &token))
        .await
        .unwrap();
    assert!(!asked(token).await, "the other replica honours the logout");
}
