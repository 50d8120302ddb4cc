//! The organization service over gRPC, on SQLite and Postgres: trees,
//! workspaces, teams, projects and environments, ownership, soft delete,
//! and every bad input the contract names. Permissions, memberships and
//! quotas come from a stand-in serving the rbac and billing contracts, so
//! each rule of who-may-do-what is set by the test and the service is
//! exercised exactly as it asks those services: over gRPC, with the
//! caller's own token.

use std::time::Duration;

use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as pb;
use tenantry_testkit::standin::DirectoryStandIn;
use tenantry_testkit::{EventTap, Sandbox, Storage, authed, storages};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Orgs = pb::organization_service_client::OrganizationServiceClient<Channel>;
type Teams = pb::team_service_client::TeamServiceClient<Channel>;
type Projects = pb::project_service_client::ProjectServiceClient<Channel>;
type Workspaces = pb::workspace_service_client::WorkspaceServiceClient<Channel>;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Every organization-level permission the service asks about.
const ORG_PERMISSIONS: &[&str] = &[
    "organization.read",
    "organization.settings.manage",
    "organization.suborganizations.create",
    "organization.departments.create",
    "organization.delete",
    "organization.deactivate",
    "organization.teams.create",
    "project.create",
    "billing.manage",
];

struct World {
    sandbox: Sandbox,
    rbac: DirectoryStandIn,
    channel: Channel,
    orgs: Orgs,
    teams: Teams,
    projects: Projects,
    workspaces: Workspaces,
}

impl World {
    async fn start(storage: Storage) -> World {
        let rbac = DirectoryStandIn::default();
        let url = rbac.start().await.unwrap();
        let sandbox = Sandbox::builder()
            .services(&[ServiceKind::Identity, ServiceKind::Organization])
            .storage(storage)
            .configure(move |config| {
                config.peers.rbac = Some(url.clone());
                config.peers.billing = Some(url);
            })
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        World {
            orgs: Orgs::new(channel.clone()),
            teams: Teams::new(channel.clone()),
            projects: Projects::new(channel.clone()),
            workspaces: Workspaces::new(channel.clone()),
            channel,
            rbac,
            sandbox,
        }
    }

    /// Signs a user up; returns (id, access token).
    async fn user(&self, email: &str) -> (String, String) {
        let mut identity =
            identity_pb::identity_service_client::IdentityServiceClient::new(self.channel.clone());
        let response = identity
            .sign_up(identity_pb::SignUpRequest {
                email: email.into(),
                password: "correct horse battery staple".into(),
                display_name: email.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let id = response
            .user
            .unwrap()
            .name
            .trim_start_matches("users/")
            .to_string();
        self.rbac
            .state()
            .emails
            .insert(id.clone(), email.to_string());
        (id, response.tokens.unwrap().access_token)
    }

    /// Makes `user` a member of `org` holding `permissions` on `object`.
    fn grant(&self, user: &str, object: &str, permissions: &[&str]) {
        let mut state = self.rbac.state();
        for permission in permissions {
            state
                .grants
                .insert((user.to_string(), object.to_string(), permission.to_string()));
        }
    }

    fn member(&self, user: &str, org: &str) {
        self.rbac
            .state()
            .members
            .insert((user.to_string(), org.to_string()));
    }

    /// Creates a root organization as `token`'s user, who then holds every
    /// organization permission on it (as its owner would).
    async fn root(&mut self, user: &str, token: &str, name: &str) -> pb::Organization {
        let org = self
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        self.grant(user, id(&org.name), ORG_PERMISSIONS);
        self.member(user, id(&org.name));
        org
    }

    async fn child(
        &mut self,
        user: &str,
        token: &str,
        parent: &pb::Organization,
        name: &str,
        kind: pb::OrganizationKind,
    ) -> Result<pb::Organization, tonic::Status> {
        let org = self
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: name.into(),
                        parent: parent.name.clone(),
                        kind: kind as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner()
            .organization
            .unwrap();
        self.grant(user, id(&org.name), ORG_PERMISSIONS);
        Ok(org)
    }

    async fn get(&mut self, token: &str, name: &str) -> Result<pb::Organization, tonic::Status> {
        Ok(self
            .orgs
            .get_organization(authed(
                pb::GetOrganizationRequest { name: name.into() },
                token,
            ))
            .await?
            .into_inner()
            .organization
            .unwrap())
    }

    /// How many organizations the database holds, for "nothing was
    /// written" checks.
    async fn organization_rows(&self) -> i64 {
        use sqlx::Row;
        let db = self.sandbox.database.connect_as_operator().await.unwrap();
        let count = sqlx::query("SELECT COUNT(*) FROM org_organizations")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        db.close().await;
        count
    }
}

/// The last segment of a resource name.
fn id(name: &str) -> &str {
    name.rsplit('/').next().unwrap()
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

fn payload<M: prost::Name + Default>(event: &events::Event) -> M {
    event.payload.as_ref().unwrap().to_msg().unwrap()
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

#[tokio::test]
async fn trees_nest_ten_levels_move_within_their_root_and_emit_events() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let mut tap: EventTap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;

        let root = w.root(&ada, &token, "Acme Corp").await;
        assert_eq!(root.slug, "acme-corp");
        assert_eq!(root.depth, 1);
        assert_eq!(root.root, root.name);
        assert_eq!(root.owner, format!("users/{ada}"));
        assert!(root.workspace.starts_with("workspaces/"));
        assert_eq!(root.inherit_access, Some(true));
        let created = tap
            .expect_about("organization.created", id(&root.name), EVENT_WAIT)
            .await
            .unwrap();
        let body: events::OrganizationCreated = payload(&created);
        assert_eq!(body.owner_user_id, ada);
        assert_eq!(body.root_id, id(&root.name));
        assert_eq!(created.organization_id, id(&root.name));
        tap.expect_about("workspace.created", id(&root.workspace), EVENT_WAIT)
            .await
            .unwrap();

        // A chain down to the tenth level; the eleventh is refused.
        let mut chain = vec![root.clone()];
        for level in 2..=10 {
            let parent = chain.last().unwrap().clone();
            let org = w
                .child(
                    &ada,
                    &token,
                    &parent,
                    &format!("Level {level}"),
                    pb::OrganizationKind::Organization,
                )
                .await
                .unwrap();
            assert_eq!(org.depth, level);
            assert_eq!(org.root, root.name);
            assert_eq!(org.parent, parent.name);
            chain.push(org);
        }
        let before = w.organization_rows().await;
        let too_deep = w
            .child(
                &ada,
                &token,
                &chain[9],
                "Level 11",
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap_err();
        assert_eq!(too_deep.code(), Code::FailedPrecondition);
        let info = too_deep.get_details_error_info().unwrap();
        assert_eq!(info.reason, "TREE_TOO_DEEP");
        assert_eq!(info.metadata.get("max_depth").unwrap(), "10");
        assert_eq!(w.organization_rows().await, before, "nothing was written");

        // Ancestry, root first.
        let ancestry = w
            .orgs
            .get_organization_ancestry(authed(
                pb::GetOrganizationAncestryRequest {
                    name: chain[3].name.clone(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .ancestors;
        let names: Vec<&str> = ancestry.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            vec![chain[0].name.as_str(), &chain[1].name, &chain[2].name]
        );

        // Moving level 5 (with its five descendants) under the root is
        // fine; moving a subtree deeper than ten levels is not.
        let moved = w
            .orgs
            .move_organization(authed(
                pb::MoveOrganizationRequest {
                    name: chain[4].name.clone(),
                    new_parent: root.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(moved.depth, 2);
        assert_eq!(moved.parent, root.name);
        let deepest = w.get(&token, &chain[9].name).await.unwrap();
        assert_eq!(deepest.depth, 7, "the subtree moved with it");
        let event = tap.expect("organization.moved", EVENT_WAIT).await.unwrap();
        let body: events::OrganizationMoved = payload(&event);
        assert_eq!(body.new_parent_id, id(&root.name));
        assert_eq!(body.old_parent_id, id(&chain[3].name));
        assert_eq!(body.subtree_size, 6);
        let deeper = w
            .orgs
            .move_organization(authed(
                pb::MoveOrganizationRequest {
                    name: chain[4].name.clone(),
                    new_parent: chain[3].name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap();
        assert_eq!(deeper.into_inner().organization.unwrap().depth, 5);
        let level9 = w.get(&token, &chain[8].name).await.unwrap();
        let too_deep = w
            .orgs
            .move_organization(authed(
                pb::MoveOrganizationRequest {
                    name: chain[4].name.clone(),
                    new_parent: level9.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(too_deep.code(), Code::FailedPrecondition);

        // Cycles, roots and other trees.
        let cases = [
            (chain[2].name.clone(), chain[5].name.clone(), "MOVE_CYCLE"),
            (chain[2].name.clone(), chain[2].name.clone(), "MOVE_CYCLE"),
            (root.name.clone(), chain[1].name.clone(), "ROOT_CANNOT_MOVE"),
        ];
        for (name, new_parent, expected) in cases {
            let error = w
                .orgs
                .move_organization(authed(
                    pb::MoveOrganizationRequest {
                        name,
                        new_parent,
                        etag: String::new(),
                    },
                    &token,
                ))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Code::FailedPrecondition);
            assert_eq!(reason(&error), expected);
        }
        let other = w.root(&ada, &token, "Other Root").await;
        let across = w
            .orgs
            .move_organization(authed(
                pb::MoveOrganizationRequest {
                    name: chain[2].name.clone(),
                    new_parent: other.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&across), "CROSS_TREE_MOVE");
        let root_move = w
            .orgs
            .move_organization(authed(
                pb::MoveOrganizationRequest {
                    name: other.name.clone(),
                    new_parent: chain[1].name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(root_move.code(), Code::FailedPrecondition);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn departments_settings_updates_and_etags() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let mut tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Flat Co").await;
        let department = w
            .child(
                &ada,
                &token,
                &root,
                "Research",
                pb::OrganizationKind::Department,
            )
            .await
            .unwrap();
        assert_eq!(department.kind, pb::OrganizationKind::Department as i32);

        // Switch departments off: new ones are refused (also below a
        // department, whose nearest organization decides), old ones stay.
        let updated = w
            .orgs
            .update_organization(authed(
                pb::UpdateOrganizationRequest {
                    organization: Some(pb::Organization {
                        name: root.name.clone(),
                        display_name: "Flat Company".into(),
                        settings: Some(pb::OrganizationSettings {
                            departments_enabled: Some(false),
                            require_mfa: true,
                            allowed_email_domains: vec!["Flat.example".into()],
                            ..Default::default()
                        }),
                        etag: root.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name", "settings"]),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        let settings = updated.settings.clone().unwrap();
        assert_eq!(updated.display_name, "Flat Company");
        assert_eq!(settings.departments_enabled, Some(false));
        assert!(settings.require_mfa);
        assert_eq!(settings.allowed_email_domains, vec!["flat.example"]);
        assert_ne!(updated.etag, root.etag);
        let event = tap
            .expect("organization.updated", EVENT_WAIT)
            .await
            .unwrap();
        let body: events::OrganizationUpdated = payload(&event);
        assert!(
            body.changed_fields
                .contains(&"settings.require_mfa".to_string())
        );
        let name_change = event
            .changes
            .iter()
            .find(|c| c.field == "display_name")
            .unwrap();
        assert_eq!(
            (name_change.before.as_str(), name_change.after.as_str()),
            ("Flat Co", "Flat Company")
        );

        for parent in [&root, &department] {
            let refused = w
                .child(
                    &ada,
                    &token,
                    parent,
                    "Sales",
                    pb::OrganizationKind::Department,
                )
                .await
                .unwrap_err();
            assert_eq!(reason(&refused), "DEPARTMENTS_DISABLED");
        }
        assert!(
            w.get(&token, &department.name).await.is_ok(),
            "existing departments stay readable"
        );
        // A sub-organization is still allowed.
        w.child(
            &ada,
            &token,
            &root,
            "Subsidiary",
            pb::OrganizationKind::Organization,
        )
        .await
        .unwrap();

        // A stale etag is ABORTED; unknown and immutable mask paths are
        // INVALID_ARGUMENT; none of them write.
        let stale = w
            .orgs
            .update_organization(authed(
                pb::UpdateOrganizationRequest {
                    organization: Some(pb::Organization {
                        name: root.name.clone(),
                        display_name: "Again".into(),
                        etag: root.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        for path in ["owner", "parent", "kind", "nonsense", "settings.nope"] {
            let error = w
                .orgs
                .update_organization(authed(
                    pb::UpdateOrganizationRequest {
                        organization: Some(pb::Organization {
                            name: root.name.clone(),
                            display_name: "Again".into(),
                            ..Default::default()
                        }),
                        update_mask: mask(&[path]),
                    },
                    &token,
                ))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{path}");
            let violations = error.get_details_bad_request().unwrap().field_violations;
            assert_eq!(violations[0].field, "update_mask.paths[0]");
        }
        let bad_metadata = w
            .orgs
            .update_organization(authed(
                pb::UpdateOrganizationRequest {
                    organization: Some(pb::Organization {
                        name: root.name.clone(),
                        metadata: (0..65)
                            .map(|i| (format!("k{i}"), "v".to_string()))
                            .collect(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["metadata"]),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(bad_metadata.code(), Code::InvalidArgument);
        let now = w.get(&token, &root.name).await.unwrap();
        assert_eq!(now.display_name, "Flat Company");
        assert_eq!(now.etag, updated.etag, "nothing was written");
        assert!(now.metadata.is_empty());

        // Deactivation keeps the data and is reported in the state.
        let deactivated = w
            .orgs
            .deactivate_organization(authed(
                pb::DeactivateOrganizationRequest {
                    name: root.name.clone(),
                    etag: String::new(),
                    reason: "unpaid".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(deactivated.state, pb::OrganizationState::Deactivated as i32);
        let event = tap
            .expect("organization.deactivated", EVENT_WAIT)
            .await
            .unwrap();
        assert_eq!(
            payload::<events::OrganizationDeactivated>(&event).reason,
            "unpaid"
        );
        let reactivated = w
            .orgs
            .reactivate_organization(authed(
                pb::ReactivateOrganizationRequest {
                    name: root.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(reactivated.state, pb::OrganizationState::Active as i32);
        tap.expect("organization.reactivated", EVENT_WAIT)
            .await
            .unwrap();
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn slugs_are_unique_and_request_ids_replay() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let (_, token) = w.user("ada@example.com").await;
        let create = |slug: &str, request_id: &str| pb::CreateOrganizationRequest {
            organization: Some(pb::Organization {
                display_name: "Slugged".into(),
                slug: slug.into(),
                ..Default::default()
            }),
            request_id: request_id.into(),
            ..Default::default()
        };
        let first = w
            .orgs
            .create_organization(authed(create("slugged", "req-1"), &token))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        // The same request id answers with the same organization.
        let replay = w
            .orgs
            .create_organization(authed(create("slugged", "req-1"), &token))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(replay.name, first.name);
        let rows = w.organization_rows().await;

        let duplicate = w
            .orgs
            .create_organization(authed(create("slugged", "req-2"), &token))
            .await
            .unwrap_err();
        assert_eq!(duplicate.code(), Code::AlreadyExists);
        for bad in [
            "ab",
            "Upper",
            "1digit",
            "trailing-",
            "under_score",
            "sp ace",
        ] {
            let error = w
                .orgs
                .create_organization(authed(create(bad, ""), &token))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{bad}");
            let violations = error.get_details_bad_request().unwrap().field_violations;
            assert_eq!(violations[0].field, "organization.slug");
        }
        let bad_request_id = w
            .orgs
            .create_organization(authed(create("fine-slug", "not a valid id!"), &token))
            .await
            .unwrap_err();
        assert_eq!(bad_request_id.code(), Code::InvalidArgument);
        let no_name = w
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization::default()),
                    request_id: String::new(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(no_name.code(), Code::InvalidArgument);
        assert_eq!(w.organization_rows().await, rows, "nothing was written");

        // A derived slug that collides gets a suffix instead of failing.
        let twin = w
            .orgs
            .create_organization(authed(create("", ""), &token))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert!(twin.slug.starts_with("slugged-"), "{}", twin.slug);

        // A user can create an organization only for themselves.
        let (bob, _) = w.user("bob@example.com").await;
        let for_bob = w
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: "Not Mine".into(),
                        owner: format!("users/{bob}"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(for_bob.code(), Code::InvalidArgument);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn another_tenants_objects_are_not_found_and_leak_nothing() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let (ada, ada_token) = w.user("ada@example.com").await;
        let (eve, eve_token) = w.user("eve@example.com").await;
        let acme = w.root(&ada, &ada_token, "Acme").await;
        let evil = w.root(&eve, &eve_token, "Evil").await;
        let team = w
            .teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: acme.name.clone(),
                    team: Some(pb::Team {
                        display_name: "Core".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        let project = w
            .projects
            .create_project(authed(
                pb::CreateProjectRequest {
                    parent: acme.name.clone(),
                    project: Some(pb::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();

        // Eve asks for Acme's things directly: NOT_FOUND, with the same
        // answer as for ids that do not exist at all.
        let missing = format!("organizations/{}", tenantry_kit::id::new_id());
        for name in [&acme.name, &missing] {
            let error = w.get(&eve_token, name).await.unwrap_err();
            assert_eq!(error.code(), Code::NotFound);
            assert_eq!(error.message(), "organization not found");
        }
        let error = w
            .teams
            .get_team(authed(
                pb::GetTeamRequest {
                    name: team.name.clone(),
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        let error = w
            .projects
            .get_project(authed(
                pb::GetProjectRequest {
                    name: project.name.clone(),
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        // Acme's team under Evil's organization id: still nothing, even for
        // Eve who may read Evil.
        let smuggled = format!("{}/teams/{}", evil.name, id(&team.name));
        let error = w
            .teams
            .get_team(authed(pb::GetTeamRequest { name: smuggled }, &eve_token))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        let error = w
            .orgs
            .update_organization(authed(
                pb::UpdateOrganizationRequest {
                    organization: Some(pb::Organization {
                        name: acme.name.clone(),
                        display_name: "Pwned".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        let error = w
            .teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: acme.name.clone(),
                    team: Some(pb::Team {
                        display_name: "Intruders".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        let error = w
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: "Graft".into(),
                        parent: acme.name.clone(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        // Listing shows Eve her own tree only.
        let listed = w
            .orgs
            .list_organizations(authed(pb::ListOrganizationsRequest::default(), &eve_token))
            .await
            .unwrap()
            .into_inner()
            .organizations;
        let names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, vec![evil.name.as_str()]);
        let error = w
            .orgs
            .list_organizations(authed(
                pb::ListOrganizationsRequest {
                    parent: acme.name.clone(),
                    ..Default::default()
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        // A reader who may not manage gets PERMISSION_DENIED, not NOT_FOUND.
        w.grant(&eve, id(&acme.name), &["organization.read"]);
        let error = w
            .orgs
            .update_organization(authed(
                pb::UpdateOrganizationRequest {
                    organization: Some(pb::Organization {
                        name: acme.name.clone(),
                        display_name: "Pwned".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
        assert_eq!(
            w.get(&ada_token, &acme.name).await.unwrap().display_name,
            "Acme"
        );
        // Every question went to rbac as the caller, about the caller.
        assert!(
            w.rbac
                .state()
                .checks
                .iter()
                .all(|(kind, _, _, _)| kind == "user")
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn listings_filter_and_paginate_with_tokens_bound_to_the_query() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Parent").await;
        let mut children = Vec::new();
        for i in 0..7 {
            let kind = if i % 2 == 0 {
                pb::OrganizationKind::Organization
            } else {
                pb::OrganizationKind::Department
            };
            children.push(
                w.child(&ada, &token, &root, &format!("Unit {i}"), kind)
                    .await
                    .unwrap(),
            );
        }
        let list = |request: pb::ListOrganizationsRequest| authed(request, &token);
        let mut seen = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = w
                .orgs
                .list_organizations(list(pb::ListOrganizationsRequest {
                    parent: root.name.clone(),
                    page_size: 3,
                    page_token: page_token.clone(),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner();
            assert!(page.organizations.len() <= 3);
            seen.extend(page.organizations.into_iter().map(|o| o.name));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let expected: Vec<String> = children.iter().map(|o| o.name.clone()).collect();
        assert_eq!(seen, expected, "every child once, oldest first");

        let departments = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                parent: root.name.clone(),
                kind: pb::OrganizationKind::Department as i32,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .organizations;
        assert_eq!(departments.len(), 3);
        let prefixed = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                name_prefix: "unit 4".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .organizations;
        assert_eq!(prefixed.len(), 1);
        // Wildcards in a prefix are literal.
        let wildcard = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                name_prefix: "%".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .organizations;
        assert!(wildcard.is_empty());

        // A token from another query, or tampered with, is refused.
        let first = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                parent: root.name.clone(),
                page_size: 2,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let other_query = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                parent: root.name.clone(),
                page_size: 2,
                kind: pb::OrganizationKind::Department as i32,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(other_query.code(), Code::InvalidArgument);
        let mut tampered = first.next_page_token.clone();
        tampered.replace_range(..1, if tampered.starts_with('A') { "B" } else { "A" });
        let tampered = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                parent: root.name.clone(),
                page_size: 2,
                page_token: tampered,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(tampered.code(), Code::InvalidArgument);

        // Soft-deleted children show only when asked for.
        let gone = &children[6];
        w.orgs
            .delete_organization(authed(
                pb::DeleteOrganizationRequest {
                    name: gone.name.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap();
        let live = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                parent: root.name.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .organizations;
        assert_eq!(live.len(), 6);
        let all = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                parent: root.name.clone(),
                show_deleted: true,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .organizations;
        assert_eq!(all.len(), 7);
        assert!(
            all.iter()
                .any(|o| o.name == gone.name && o.delete_time.is_some())
        );

        // The caller's own organizations, with roles, for switching.
        let (bob, bob_token) = w.user("bob@example.com").await;
        w.member(&bob, id(&children[0].name));
        w.member(&bob, id(&root.name));
        let mine = w
            .orgs
            .list_my_organizations(authed(
                pb::ListMyOrganizationsRequest {
                    page_size: 1,
                    ..Default::default()
                },
                &bob_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(mine.organizations.len(), 1);
        assert_eq!(
            mine.organizations[0]
                .organization
                .as_ref()
                .unwrap()
                .display_name,
            "Parent"
        );
        assert!(!mine.organizations[0].roles.is_empty());
        assert!(!mine.organizations[0].owner);
        let rest = w
            .orgs
            .list_my_organizations(authed(
                pb::ListMyOrganizationsRequest {
                    page_size: 1,
                    page_token: mine.next_page_token,
                    ..Default::default()
                },
                &bob_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            rest.organizations[0]
                .organization
                .as_ref()
                .unwrap()
                .display_name,
            "Unit 0"
        );
        assert!(rest.next_page_token.is_empty());
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn deleting_a_non_empty_organization_needs_force_and_undelete_restores_it_all() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let mut tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Root").await;
        let division = w
            .child(
                &ada,
                &token,
                &root,
                "Division",
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap();
        let unit = w
            .child(
                &ada,
                &token,
                &division,
                "Unit",
                pb::OrganizationKind::Department,
            )
            .await
            .unwrap();
        let team = w
            .teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: unit.name.clone(),
                    team: Some(pb::Team {
                        display_name: "Unit Team".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();

        let refused = w
            .orgs
            .delete_organization(authed(
                pb::DeleteOrganizationRequest {
                    name: division.name.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "ORGANIZATION_NOT_EMPTY");
        let deleted = w
            .orgs
            .delete_organization(authed(
                pb::DeleteOrganizationRequest {
                    name: division.name.clone(),
                    etag: division.etag.clone(),
                    force: true,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert!(deleted.delete_time.is_some() && deleted.purge_time.is_some());
        let event = tap
            .expect("organization.deleted", EVENT_WAIT)
            .await
            .unwrap();
        let body: events::OrganizationDeleted = payload(&event);
        assert_eq!(
            body.cascaded_organization_ids,
            vec![id(&unit.name).to_string()]
        );
        let unit_now = w.get(&token, &unit.name).await.unwrap();
        assert!(unit_now.delete_time.is_some(), "the subtree went with it");
        let team_now = w
            .teams
            .get_team(authed(
                pb::GetTeamRequest {
                    name: team.name.clone(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        assert!(team_now.delete_time.is_some());
        // What went along with an ancestor comes back with it, not alone.
        let alone = w
            .orgs
            .undelete_organization(authed(
                pb::UndeleteOrganizationRequest {
                    name: unit.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&alone), "DELETED_WITH_ANCESTOR");
        // A new child under a deleted parent is refused.
        let under_deleted = w
            .child(
                &ada,
                &token,
                &division,
                "Late",
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap_err();
        assert_eq!(under_deleted.code(), Code::FailedPrecondition);

        let restored = w
            .orgs
            .undelete_organization(authed(
                pb::UndeleteOrganizationRequest {
                    name: division.name.clone(),
                    etag: deleted.etag.clone(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert!(restored.delete_time.is_none());
        let body: events::OrganizationUndeleted = payload(
            &tap.expect("organization.undeleted", EVENT_WAIT)
                .await
                .unwrap(),
        );
        assert_eq!(
            body.cascaded_organization_ids,
            vec![id(&unit.name).to_string()]
        );
        assert!(
            w.get(&token, &unit.name)
                .await
                .unwrap()
                .delete_time
                .is_none()
        );
        let team_now = w
            .teams
            .get_team(authed(
                pb::GetTeamRequest {
                    name: team.name.clone(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        assert!(team_now.delete_time.is_none());
        let again = w
            .orgs
            .undelete_organization(authed(
                pb::UndeleteOrganizationRequest {
                    name: division.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&again), "ORGANIZATION_NOT_DELETED");
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn teams_projects_and_environments_live_and_die_with_quotas_and_grants() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let mut tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let org = w.root(&ada, &token, "Builders").await;
        let org_id = id(&org.name).to_string();

        let team = w
            .teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: org.name.clone(),
                    team: Some(pb::Team {
                        display_name: "Platform Team".into(),
                        description: "keeps the lights on".into(),
                        ..Default::default()
                    }),
                    request_id: "team-1".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        assert_eq!(team.slug, "platform-team");
        let body: events::TeamCreated =
            payload(&tap.expect("team.created", EVENT_WAIT).await.unwrap());
        assert_eq!(body.organization_id, org_id);
        w.grant(&ada, id(&team.name), &["team.manage"]);
        let duplicate = w
            .teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: org.name.clone(),
                    team: Some(pb::Team {
                        display_name: "Another".into(),
                        slug: "platform-team".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(duplicate.code(), Code::AlreadyExists);

        let created = w
            .projects
            .create_project(authed(
                pb::CreateProjectRequest {
                    parent: org.name.clone(),
                    project: Some(pb::Project {
                        display_name: "Rocket".into(),
                        team: team.name.clone(),
                        ..Default::default()
                    }),
                    request_id: "project-1".into(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        let project = created.project.unwrap();
        let slugs: Vec<&str> = created
            .environments
            .iter()
            .map(|e| e.slug.as_str())
            .collect();
        assert_eq!(slugs, vec!["dev", "staging", "production"]);
        assert_eq!(project.team, team.name);
        let project_id = id(&project.name).to_string();
        let body: events::ProjectCreated = payload(
            &tap.expect_about("project.created", &project_id, EVENT_WAIT)
                .await
                .unwrap(),
        );
        assert_eq!(body.environments.len(), 3);
        assert_eq!(body.owner_team_id, id(&team.name));
        w.grant(
            &ada,
            &project_id,
            &["project.read", "project.manage", "project.delete"],
        );

        // Replaying the create returns the same project and environments.
        let replay = w
            .projects
            .create_project(authed(
                pb::CreateProjectRequest {
                    parent: org.name.clone(),
                    project: Some(pb::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    request_id: "project-1".into(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(replay.project.unwrap().name, project.name);
        assert_eq!(replay.environments.len(), 3);

        // A team that owns projects cannot be deleted.
        let owns = w
            .teams
            .delete_team(authed(
                pb::DeleteTeamRequest {
                    name: team.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&owns), "TEAM_OWNS_PROJECTS");

        // Environments: add, rename, remove.
        let qa = w
            .projects
            .create_environment(authed(
                pb::CreateEnvironmentRequest {
                    parent: project.name.clone(),
                    environment: Some(pb::Environment {
                        slug: "qa".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .environment
            .unwrap();
        assert_eq!(qa.display_name, "qa");
        tap.expect("environment.added", EVENT_WAIT).await.unwrap();
        let twin = w
            .projects
            .create_environment(authed(
                pb::CreateEnvironmentRequest {
                    parent: project.name.clone(),
                    environment: Some(pb::Environment {
                        slug: "qa".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(twin.code(), Code::AlreadyExists);
        let renamed = w
            .projects
            .update_environment(authed(
                pb::UpdateEnvironmentRequest {
                    environment: Some(pb::Environment {
                        name: qa.name.clone(),
                        slug: "testing".into(),
                        etag: qa.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["slug"]),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .environment
            .unwrap();
        assert_eq!(renamed.slug, "testing");
        let body: events::EnvironmentRenamed =
            payload(&tap.expect("environment.renamed", EVENT_WAIT).await.unwrap());
        assert_eq!(
            (body.old_name.as_str(), body.new_name.as_str()),
            ("qa", "testing")
        );
        let stale = w
            .projects
            .delete_environment(authed(
                pb::DeleteEnvironmentRequest {
                    name: qa.name.clone(),
                    etag: qa.etag.clone(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        w.projects
            .delete_environment(authed(
                pb::DeleteEnvironmentRequest {
                    name: qa.name.clone(),
                    etag: renamed.etag.clone(),
                },
                &token,
            ))
            .await
            .unwrap();
        tap.expect("environment.removed", EVENT_WAIT).await.unwrap();
        let left = w
            .projects
            .list_environments(authed(
                pb::ListEnvironmentsRequest {
                    parent: project.name.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .environments;
        assert_eq!(left.len(), 3);

        // Updates with masks; a team of another organization is refused.
        let updated = w
            .projects
            .update_project(authed(
                pb::UpdateProjectRequest {
                    project: Some(pb::Project {
                        name: project.name.clone(),
                        description: "to the moon".into(),
                        team: String::new(),
                        etag: project.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["description", "team"]),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        assert_eq!(updated.description, "to the moon");
        assert!(updated.team.is_empty());
        let event = tap.expect("project.updated", EVENT_WAIT).await.unwrap();
        assert!(
            event
                .changes
                .iter()
                .any(|c| c.field == "team" && c.after.is_empty())
        );
        let foreign_team = format!(
            "organizations/{}/teams/{}",
            tenantry_kit::id::new_id(),
            tenantry_kit::id::new_id()
        );
        let error = w
            .projects
            .update_project(authed(
                pb::UpdateProjectRequest {
                    project: Some(pb::Project {
                        name: project.name.clone(),
                        team: foreign_team,
                        ..Default::default()
                    }),
                    update_mask: mask(&["team"]),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);

        // Soft delete, undelete, purge: purge needs a deleted project with
        // no grants and no resources.
        let delete = |w: &mut World| {
            let mut projects = w.projects.clone();
            let name = project.name.clone();
            let token = token.clone();
            async move {
                projects
                    .delete_project(authed(
                        pb::DeleteProjectRequest {
                            name,
                            etag: String::new(),
                        },
                        &token,
                    ))
                    .await
            }
        };
        let purge = |w: &mut World| {
            let mut projects = w.projects.clone();
            let name = project.name.clone();
            let token = token.clone();
            async move {
                projects
                    .purge_project(authed(
                        pb::PurgeProjectRequest {
                            name,
                            etag: String::new(),
                        },
                        &token,
                    ))
                    .await
            }
        };
        assert_eq!(reason(&purge(&mut w).await.unwrap_err()), "NOT_DELETED");
        delete(&mut w).await.unwrap();
        tap.expect("project.deleted", EVENT_WAIT).await.unwrap();
        w.rbac.state().granted_projects.insert(project_id.clone());
        assert_eq!(reason(&purge(&mut w).await.unwrap_err()), "PROJECT_IN_USE");
        w.rbac.state().granted_projects.clear();
        w.rbac.state().used_projects.insert(project_id.clone());
        assert_eq!(reason(&purge(&mut w).await.unwrap_err()), "PROJECT_IN_USE");
        w.rbac.state().used_projects.clear();
        w.projects
            .undelete_project(authed(
                pb::UndeleteProjectRequest {
                    name: project.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap();
        tap.expect("project.undeleted", EVENT_WAIT).await.unwrap();
        delete(&mut w).await.unwrap();
        purge(&mut w).await.unwrap();
        tap.expect("project.purged", EVENT_WAIT).await.unwrap();
        let gone = w
            .projects
            .get_project(authed(
                pb::GetProjectRequest {
                    name: project.name.clone(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);

        // Team lifecycle now that it owns nothing.
        w.teams
            .update_team(authed(
                pb::UpdateTeamRequest {
                    team: Some(pb::Team {
                        name: team.name.clone(),
                        display_name: "Platform".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
                &token,
            ))
            .await
            .unwrap();
        tap.expect("team.updated", EVENT_WAIT).await.unwrap();
        w.teams
            .delete_team(authed(
                pb::DeleteTeamRequest {
                    name: team.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap();
        tap.expect("team.deleted", EVENT_WAIT).await.unwrap();
        w.teams
            .undelete_team(authed(
                pb::UndeleteTeamRequest {
                    name: team.name.clone(),
                    etag: String::new(),
                },
                &token,
            ))
            .await
            .unwrap();
        tap.expect("team.undeleted", EVENT_WAIT).await.unwrap();
        let teams = w
            .teams
            .list_teams(authed(
                pb::ListTeamsRequest {
                    parent: org.name.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .teams;
        assert_eq!(teams.len(), 1);

        // Over the plan's quota: RESOURCE_EXHAUSTED with the limit, and
        // nothing created.
        w.rbac.state().quotas.insert(
            (org_id.clone(), billing_pb::Metric::Projects as i32),
            (1, 1),
        );
        let over = w
            .projects
            .create_project(authed(
                pb::CreateProjectRequest {
                    parent: org.name.clone(),
                    project: Some(pb::Project {
                        display_name: "One Too Many".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(over.code(), Code::ResourceExhausted);
        let info = over.get_details_error_info().unwrap();
        assert_eq!(info.reason, "QUOTA_EXCEEDED");
        assert_eq!(info.metadata.get("limit").unwrap(), "1");
        w.rbac.state().quotas.insert(
            (org_id.clone(), billing_pb::Metric::SubOrganizations as i32),
            (0, 0),
        );
        let over = w
            .child(
                &ada,
                &token,
                &org,
                "No Room",
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap_err();
        assert_eq!(over.code(), Code::ResourceExhausted);
        let projects = w
            .projects
            .list_projects(authed(
                pb::ListProjectsRequest {
                    parent: org.name.clone(),
                    show_deleted: true,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .projects;
        assert!(projects.is_empty(), "nothing was created");
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn external_users_see_only_the_projects_granted_to_them() {
    let mut w = World::start(Storage::Sqlite).await;
    let (ada, token) = w.user("ada@example.com").await;
    let (guest, guest_token) = w.user("guest@example.com").await;
    let org = w.root(&ada, &token, "Agency").await;
    let mut names = Vec::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        let project = w
            .projects
            .create_project(authed(
                pb::CreateProjectRequest {
                    parent: org.name.clone(),
                    project: Some(pb::Project {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        w.grant(&ada, id(&project.name), &["project.read"]);
        names.push(project.name);
    }
    w.grant(&guest, id(&names[1]), &["project.read"]);
    let visible = w
        .projects
        .list_projects(authed(
            pb::ListProjectsRequest {
                parent: org.name.clone(),
                ..Default::default()
            },
            &guest_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .projects;
    let visible: Vec<&str> = visible.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(visible, vec![names[1].as_str()]);
    assert_eq!(
        w.get(&guest_token, &org.name).await.unwrap_err().code(),
        Code::NotFound
    );
    let all = w
        .projects
        .list_projects(authed(
            pb::ListProjectsRequest {
                parent: org.name.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(all.len(), 3);
    w.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn ownership_moves_only_to_a_member_who_accepts_with_the_mailed_token() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let mut tap = w.sandbox.event_tap().await.unwrap();
        let (ada, ada_token) = w.user("ada@example.com").await;
        let (bob, bob_token) = w.user("bob@example.com").await;
        let (eve, eve_token) = w.user("eve@example.com").await;
        let org = w.root(&ada, &ada_token, "Heirloom").await;
        w.grant(&eve, id(&org.name), &["organization.read"]);
        let start = |new_owner: &str| pb::TransferOwnershipRequest {
            name: org.name.clone(),
            new_owner: format!("users/{new_owner}"),
            ..Default::default()
        };

        // Only the owner may start it, and only towards a member.
        let error = w
            .orgs
            .transfer_ownership(authed(start(&eve), &eve_token))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
        let error = w
            .orgs
            .transfer_ownership(authed(start(&bob), &ada_token))
            .await
            .unwrap_err();
        assert_eq!(reason(&error), "TARGET_NOT_A_MEMBER");
        let error = w
            .orgs
            .transfer_ownership(authed(
                pb::TransferOwnershipRequest {
                    ttl: Some(prost_types::Duration {
                        seconds: 31 * 86_400,
                        nanos: 0,
                    }),
                    ..start(&bob)
                },
                &ada_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        w.member(&bob, id(&org.name));

        let transfer = w
            .orgs
            .transfer_ownership(authed(start(&bob), &ada_token))
            .await
            .unwrap()
            .into_inner()
            .ownership_transfer
            .unwrap();
        assert_eq!(transfer.state, pb::OwnershipTransferState::Pending as i32);
        tap.expect("ownership.transfer_requested", EVENT_WAIT)
            .await
            .unwrap();
        let token = w
            .sandbox
            .mail_token("bob@example.com", "ownership_transfer")
            .expect("the target got the token by mail");

        // Only the target, with the right token.
        let accept = |token: &str| pb::AcceptOwnershipTransferRequest {
            name: transfer.name.clone(),
            token: token.into(),
        };
        let error = w
            .orgs
            .accept_ownership_transfer(authed(accept(&token), &eve_token))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        let error = w
            .orgs
            .accept_ownership_transfer(authed(accept("wrong-token"), &bob_token))
            .await
            .unwrap_err();
        assert_eq!(reason(&error), "INVALID_TRANSFER_TOKEN");
        assert_eq!(
            w.get(&ada_token, &org.name).await.unwrap().owner,
            format!("users/{ada}")
        );

        let accepted = w
            .orgs
            .accept_ownership_transfer(authed(accept(&token), &bob_token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            accepted.ownership_transfer.unwrap().state,
            pb::OwnershipTransferState::Accepted as i32
        );
        assert_eq!(accepted.organization.unwrap().owner, format!("users/{bob}"));
        let body: events::OwnershipTransferred = payload(
            &tap.expect("ownership.transferred", EVENT_WAIT)
                .await
                .unwrap(),
        );
        assert_eq!(
            (
                body.old_owner_user_id.as_str(),
                body.new_owner_user_id.as_str()
            ),
            (ada.as_str(), bob.as_str())
        );
        let reused = w
            .orgs
            .accept_ownership_transfer(authed(accept(&token), &bob_token))
            .await
            .unwrap_err();
        assert_eq!(reason(&reused), "INVALID_TRANSFER_TOKEN");

        // The new owner starts one back; the target declines. Then one
        // more, which its starter cancels.
        w.grant(&bob, id(&org.name), &["organization.read"]);
        let back = w
            .orgs
            .transfer_ownership(authed(start(&ada), &bob_token))
            .await
            .unwrap()
            .into_inner()
            .ownership_transfer
            .unwrap();
        let declined = w
            .orgs
            .decline_ownership_transfer(authed(
                pb::DeclineOwnershipTransferRequest {
                    name: back.name.clone(),
                },
                &ada_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .ownership_transfer
            .unwrap();
        assert_eq!(declined.state, pb::OwnershipTransferState::Declined as i32);
        let again = w
            .orgs
            .transfer_ownership(authed(start(&ada), &bob_token))
            .await
            .unwrap()
            .into_inner()
            .ownership_transfer
            .unwrap();
        let by_target = w
            .orgs
            .cancel_ownership_transfer(authed(
                pb::CancelOwnershipTransferRequest {
                    name: again.name.clone(),
                },
                &ada_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(by_target.code(), Code::PermissionDenied);
        w.orgs
            .cancel_ownership_transfer(authed(
                pb::CancelOwnershipTransferRequest {
                    name: again.name.clone(),
                },
                &bob_token,
            ))
            .await
            .unwrap();
        let read = w
            .orgs
            .get_ownership_transfer(authed(
                pb::GetOwnershipTransferRequest {
                    name: again.name.clone(),
                },
                &ada_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .ownership_transfer
            .unwrap();
        assert_eq!(read.state, pb::OwnershipTransferState::Cancelled as i32);
        let hidden = w
            .orgs
            .get_ownership_transfer(authed(
                pb::GetOwnershipTransferRequest { name: again.name },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound);
        tap.expect("ownership.transfer_canceled", EVENT_WAIT)
            .await
            .unwrap();
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn workspaces_fix_their_billing_mode_and_hold_roots() {
    for storage in storages() {
        let mut w = World::start(storage).await;
        let (ada, token) = w.user("ada@example.com").await;
        let (_, eve_token) = w.user("eve@example.com").await;
        let unspecified = w
            .workspaces
            .create_workspace(authed(
                pb::CreateWorkspaceRequest {
                    workspace: Some(pb::Workspace {
                        display_name: "No Mode".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(unspecified.code(), Code::InvalidArgument);
        let workspace = w
            .workspaces
            .create_workspace(authed(
                pb::CreateWorkspaceRequest {
                    workspace: Some(pb::Workspace {
                        display_name: "Holding".into(),
                        billing_mode: pb::BillingMode::Pooled as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .workspace
            .unwrap();
        let root = w
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: "Subsidiary A".into(),
                        workspace: workspace.name.clone(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(root.workspace, workspace.name);
        w.grant(&ada, id(&root.name), ORG_PERMISSIONS);
        w.member(&ada, id(&root.name));

        let immutable = w
            .workspaces
            .update_workspace(authed(
                pb::UpdateWorkspaceRequest {
                    workspace: Some(pb::Workspace {
                        name: workspace.name.clone(),
                        display_name: "Holding".into(),
                        billing_mode: pb::BillingMode::Single as i32,
                        ..Default::default()
                    }),
                    update_mask: mask(&["billing_mode"]),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(immutable.code(), Code::InvalidArgument);
        assert_eq!(reason(&immutable), "BILLING_MODE_IMMUTABLE");
        let renamed = w
            .workspaces
            .update_workspace(authed(
                pb::UpdateWorkspaceRequest {
                    workspace: Some(pb::Workspace {
                        name: workspace.name.clone(),
                        display_name: "Holding Group".into(),
                        etag: workspace.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .workspace
            .unwrap();
        assert_eq!(renamed.billing_mode, pb::BillingMode::Pooled as i32);
        assert_eq!(renamed.display_name, "Holding Group");

        let hidden = w
            .workspaces
            .get_workspace(authed(
                pb::GetWorkspaceRequest {
                    name: workspace.name.clone(),
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound);
        let stranger = w
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: "Squatter".into(),
                        workspace: workspace.name.clone(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &eve_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(stranger.code(), Code::NotFound);
        let mine = w
            .workspaces
            .list_workspaces(authed(pb::ListWorkspacesRequest::default(), &token))
            .await
            .unwrap()
            .into_inner()
            .workspaces;
        assert!(mine.iter().any(|ws| ws.name == workspace.name));
        let theirs = w
            .workspaces
            .list_workspaces(authed(pb::ListWorkspacesRequest::default(), &eve_token))
            .await
            .unwrap()
            .into_inner()
            .workspaces;
        assert!(theirs.iter().all(|ws| ws.name != workspace.name));
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn identity_creates_a_first_organization_through_the_real_service() {
    let w = World::start(Storage::Sqlite).await;
    let (ada, token) = w.user("ada@example.com").await;
    let mut identity =
        identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone());
    let me = identity
        .me(authed(identity_pb::MeRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(me.user.is_some());
    // Sign-up asked the organization service as identity itself, naming
    // the user as owner, and `Me` asked again with the same request id: one
    // organization, owned by the user.
    let db = w.sandbox.database.connect_as_operator().await.unwrap();
    use sqlx::Row;
    let owners: Vec<String> = sqlx::query("SELECT owner_id FROM org_organizations")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    db.close().await;
    assert_eq!(owners, vec![ada]);
    w.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn identity_follows_the_real_organizations_state_and_mfa_setting() {
    let mut w = World::start(Storage::Sqlite).await;
    let (ada, token) = w.user("ada@example.com").await;
    let org = w.root(&ada, &token, "Strict").await;
    let mut identity =
        identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone());
    let switch = |token: &str| {
        authed(
            identity_pb::SwitchOrganizationRequest {
                organization: org.name.clone(),
            },
            token,
        )
    };
    identity.switch_organization(switch(&token)).await.unwrap();

    w.orgs
        .deactivate_organization(authed(
            pb::DeactivateOrganizationRequest {
                name: org.name.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let refused = identity
        .switch_organization(switch(&token))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ORGANIZATION_DEACTIVATED");

    w.orgs
        .reactivate_organization(authed(
            pb::ReactivateOrganizationRequest {
                name: org.name.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    w.orgs
        .update_organization(authed(
            pb::UpdateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: org.name.clone(),
                    settings: Some(pb::OrganizationSettings {
                        require_mfa: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: mask(&["settings.require_mfa"]),
            },
            &token,
        ))
        .await
        .unwrap();
    let refused = identity
        .switch_organization(switch(&token))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "MFA_REQUIRED");
    w.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn objects_past_their_purge_time_are_purged_for_good() {
    for storage in storages() {
        let rbac = DirectoryStandIn::default();
        let url = rbac.start().await.unwrap();
        let sandbox = Sandbox::builder()
            .services(&[ServiceKind::Identity, ServiceKind::Organization])
            .storage(storage)
            .configure(move |config| {
                config.peers.rbac = Some(url.clone());
                config.peers.billing = Some(url);
                config.organization.purge_interval_secs = 1;
            })
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let mut w = World {
            orgs: Orgs::new(channel.clone()),
            teams: Teams::new(channel.clone()),
            projects: Projects::new(channel.clone()),
            workspaces: Workspaces::new(channel.clone()),
            channel,
            rbac,
            sandbox,
        };
        let mut tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Root").await;
        let doomed = w
            .child(
                &ada,
                &token,
                &root,
                "Doomed",
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap();
        let team = w
            .teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: doomed.name.clone(),
                    team: Some(pb::Team {
                        display_name: "Crew".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        w.orgs
            .delete_organization(authed(
                pb::DeleteOrganizationRequest {
                    name: doomed.name.clone(),
                    etag: String::new(),
                    force: true,
                },
                &token,
            ))
            .await
            .unwrap();
        // Thirty days pass: the purge times move into the past.
        {
            let db = w.sandbox.database.connect_as_operator().await.unwrap();
            for table in ["org_organizations", "org_teams"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET purge_at_us = 1 WHERE deleted_at_us IS NOT NULL"
                )))
                .execute(db.pool())
                .await
                .unwrap();
            }
            db.close().await;
        }
        let purged_team = tap.expect("team.purged", EVENT_WAIT).await.unwrap();
        assert_eq!(purged_team.aggregate_id, id(&team.name));
        let purged = tap.expect("organization.purged", EVENT_WAIT).await.unwrap();
        assert_eq!(purged.aggregate_id, id(&doomed.name));
        let gone = w.get(&token, &doomed.name).await.unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);
        // The root, never deleted, stays.
        assert!(w.get(&token, &root.name).await.is_ok());
        w.sandbox.shutdown().await.unwrap();
    }
}
