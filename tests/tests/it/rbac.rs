//! The rbac service and its authorization engine end to end, with the real
//! identity and organization services: the organization's events build the
//! tree in the index, owners get their membership from
//! `organization.created`, and every check is a gRPC call. On SQLite and
//! Postgres; two rbac processes on one Postgres follow the same store.

use std::time::Duration;

use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tenantry_testkit::{Sandbox, Storage, authed, eventually, last_id as id, storages};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Authz = authz::authorization_service_client::AuthorizationServiceClient<Channel>;
type Members = pb::membership_service_client::MembershipServiceClient<Channel>;
type Roles = pb::role_service_client::RoleServiceClient<Channel>;
type TeamMembers = pb::team_member_service_client::TeamMemberServiceClient<Channel>;
type Grants = pb::project_grant_service_client::ProjectGrantServiceClient<Channel>;
type Orgs = org::organization_service_client::OrganizationServiceClient<Channel>;

struct User {
    id: String,
    token: String,
}

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

fn subject(user: &str) -> Option<authz::SubjectReference> {
    Some(authz::SubjectReference {
        object: Some(authz::ObjectReference {
            object_type: "user".into(),
            object_id: user.into(),
        }),
        optional_relation: String::new(),
    })
}

fn object(object_type: &str, id: &str) -> Option<authz::ObjectReference> {
    Some(authz::ObjectReference {
        object_type: object_type.into(),
        object_id: id.into(),
    })
}

fn fresh(token: &Option<authz::ZedToken>) -> Option<authz::Consistency> {
    Some(authz::Consistency {
        requirement: Some(authz::consistency::Requirement::AtLeastAsFresh(
            token.clone().unwrap(),
        )),
    })
}

impl World {
    async fn start(storage: Storage) -> World {
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
        World { sandbox, channel }
    }

    async fn user(&self, email: &str) -> User {
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
        User {
            id: id(&response.user.unwrap().name),
            token: response.tokens.unwrap().access_token,
        }
    }

    fn authz(&self) -> Authz {
        Authz::new(self.channel.clone())
    }

    async fn check(
        &self,
        user: &User,
        object_type: &str,
        object_id: &str,
        permission: &str,
        consistency: Option<authz::Consistency>,
    ) -> Result<bool, tonic::Status> {
        let response = self
            .authz()
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    consistency,
                    resource: object(object_type, object_id),
                    permission: permission.into(),
                    subject: subject(&user.id),
                    with_tracing: false,
                },
                &user.token,
            ))
            .await?
            .into_inner();
        Ok(response.permissionship() == authz::Permissionship::Allowed)
    }

    /// Asserts that `user` holds `permission` on an object they just made:
    /// their next call sees it, with no token and no waiting.
    async fn assert_allowed(
        &self,
        user: &User,
        object_type: &str,
        object_id: &str,
        permission: &str,
    ) {
        let allowed = self
            .check(user, object_type, object_id, permission, None)
            .await
            .unwrap();
        assert!(allowed, "{permission} on {object_type}:{object_id}");
    }

    /// An organization whose members read every project, as the role
    /// matrix's member column says (the default, members seeing only
    /// their granted projects, has tests of its own).
    async fn organization(
        &self,
        owner: &User,
        name: &str,
        parent: Option<&str>,
    ) -> org::Organization {
        self.organization_with(owner, name, parent, org::ProjectVisibility::AllMembers)
            .await
    }

    async fn organization_with(
        &self,
        owner: &User,
        name: &str,
        parent: Option<&str>,
        visibility: org::ProjectVisibility,
    ) -> org::Organization {
        let created = Orgs::new(self.channel.clone())
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: name.into(),
                        parent: parent
                            .map(|p| format!("organizations/{p}"))
                            .unwrap_or_default(),
                        settings: Some(org::OrganizationSettings {
                            project_visibility: visibility as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        self.assert_allowed(
            owner,
            "organization",
            &id(&created.name),
            "organization.read",
        )
        .await;
        created
    }

    async fn project(&self, owner: &User, org_id: &str, name: &str) -> String {
        let project = org::project_service_client::ProjectServiceClient::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{org_id}"),
                    project: Some(org::Project {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        let project_id = id(&project.name);
        self.assert_allowed(owner, "project", &project_id, "project.read")
            .await;
        project_id
    }

    async fn add_member(
        &self,
        by: &User,
        org_id: &str,
        user: &User,
        roles: &[&str],
    ) -> Option<authz::ZedToken> {
        tenantry_tests::people::join(
            &self.sandbox,
            &self.channel,
            &by.token,
            org_id,
            &user.token,
            roles,
        )
        .await
        .written_at
    }
}

#[tokio::test]
async fn roles_follow_the_matrix_and_removal_ends_access_at_once() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let rocket = w.project(&ada, &acme_id, "Rocket").await;

        // The owner holds every permission of the matrix's owner column.
        for permission in [
            "organization.settings.manage",
            "organization.ownership.transfer",
            "billing.manage",
            "audit.read",
            "project.create",
        ] {
            assert!(
                w.check(&ada, "organization", &acme_id, permission, None)
                    .await
                    .unwrap(),
                "{permission}"
            );
        }

        let token = w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
        let at = || fresh(&token);
        assert!(
            w.check(&bob, "project", &rocket, "project.read", at())
                .await
                .unwrap()
        );
        assert!(
            w.check(&bob, "project", &rocket, "resources.use", at())
                .await
                .unwrap()
        );
        assert!(
            !w.check(&bob, "organization", &acme_id, "project.create", at())
                .await
                .unwrap()
        );
        assert!(
            !w.check(
                &bob,
                "organization",
                &acme_id,
                "organization.settings.manage",
                at()
            )
            .await
            .unwrap()
        );

        // Finance: billing, and no development resources.
        let updated = Members::new(w.channel.clone())
            .update_membership(authed(
                pb::UpdateMembershipRequest {
                    membership: Some(pb::Membership {
                        name: format!("organizations/{acme_id}/memberships/{}", bob.id),
                        roles: vec!["roles/finance".into()],
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["roles".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        let at = || fresh(&updated.written_at);
        assert!(
            w.check(&bob, "organization", &acme_id, "billing.manage", at())
                .await
                .unwrap()
        );
        assert!(
            !w.check(&bob, "project", &rocket, "project.read", at())
                .await
                .unwrap()
        );

        // Admin; then removed: nothing is left, at once.
        let mut members = Members::new(w.channel.clone());
        let name = format!("organizations/{acme_id}/memberships/{}", bob.id);
        members
            .update_membership(authed(
                pb::UpdateMembershipRequest {
                    membership: Some(pb::Membership {
                        name: name.clone(),
                        roles: vec!["roles/admin".into()],
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["roles".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let removed = members
            .delete_membership(authed(
                pb::DeleteMembershipRequest {
                    name: name.clone(),
                    etag: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        let at = || fresh(&removed.written_at);
        for (object_type, object_id, permission) in [
            ("organization", acme_id.as_str(), "organization.read"),
            ("project", rocket.as_str(), "project.read"),
        ] {
            assert!(
                !w.check(&bob, object_type, object_id, permission, at())
                    .await
                    .unwrap()
            );
        }
        // The owner cannot be removed or given another role here.
        let owner = members
            .delete_membership(authed(
                pb::DeleteMembershipRequest {
                    name: format!("organizations/{acme_id}/memberships/{}", ada.id),
                    etag: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(owner.code(), Code::FailedPrecondition);
        let reserved = members
            .create_membership(authed(
                pb::CreateMembershipRequest {
                    parent: acme.name.clone(),
                    membership: Some(pb::Membership {
                        user: format!("users/{}", bob.id),
                        roles: vec!["roles/owner".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(reserved.code(), Code::InvalidArgument);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn roles_flow_down_the_tree_unless_a_child_does_not_inherit() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let root = w.organization(&ada, "Root", None).await;
        let root_id = id(&root.name);
        let child = w.organization(&ada, "Child", Some(&root_id)).await;
        let child_id = id(&child.name);
        let deep = w.project(&ada, &child_id, "Deep").await;
        let token = w.add_member(&ada, &root_id, &bob, &["roles/member"]).await;
        assert!(
            w.check(&bob, "project", &deep, "project.read", fresh(&token))
                .await
                .unwrap()
        );

        Orgs::new(w.channel.clone())
            .update_organization(authed(
                org::UpdateOrganizationRequest {
                    organization: Some(org::Organization {
                        name: child.name.clone(),
                        inherit_access: Some(false),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["inherit_access".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        // Access removed by the update is gone when it returns.
        assert!(
            !w.check(&bob, "project", &deep, "project.read", None)
                .await
                .unwrap()
        );
        // The trace says why.
        let traced = w
            .authz()
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: object("project", &deep),
                    permission: "project.read".into(),
                    subject: subject(&bob.id),
                    with_tracing: true,
                    consistency: None,
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner();
        let trace = traced.debug_trace.unwrap();
        assert!(
            trace.explanation.contains("does not inherit"),
            "{}",
            trace.explanation
        );
        // The owner of the root keeps nothing below a stop either, unless a
        // role is given there; ada created the child, so she owns it.
        assert!(
            w.check(&ada, "project", &deep, "project.read", None)
                .await
                .unwrap()
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn custom_roles_teams_and_project_grants() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let lee = w.user("lee@example.com").await;
        let cat = w.user("cat@example.com").await;
        let guest = w.user("guest@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let rocket = w.project(&ada, &acme_id, "Rocket").await;
        let mut roles = Roles::new(w.channel.clone());

        // A custom role, held, then deleted only with a reassignment.
        let bad = roles
            .create_role(authed(
                pb::CreateRoleRequest {
                    parent: acme.name.clone(),
                    role: Some(pb::Role {
                        display_name: "Broken".into(),
                        permissions: vec!["audit.fly".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        let auditor = roles
            .create_role(authed(
                pb::CreateRoleRequest {
                    parent: acme.name.clone(),
                    role: Some(pb::Role {
                        display_name: "Auditor".into(),
                        permissions: vec!["organization.read".into(), "audit.read".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .role
            .unwrap();
        let token = w
            .add_member(&ada, &acme_id, &lee, &["roles/member", &auditor.name])
            .await;
        assert!(
            w.check(&lee, "organization", &acme_id, "audit.read", fresh(&token))
                .await
                .unwrap()
        );
        let in_use = roles
            .delete_role(authed(
                pb::DeleteRoleRequest {
                    name: auditor.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(in_use.code(), Code::FailedPrecondition);
        assert_eq!(
            in_use.get_details_error_info().unwrap().reason,
            "ROLE_IN_USE"
        );
        let deleted = roles
            .delete_role(authed(
                pb::DeleteRoleRequest {
                    name: auditor.name.clone(),
                    reassign_to: "roles/member".into(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            !w.check(
                &lee,
                "organization",
                &acme_id,
                "audit.read",
                fresh(&deleted.written_at)
            )
            .await
            .unwrap()
        );
        assert!(
            w.check(&lee, "organization", &acme_id, "organization.read", None)
                .await
                .unwrap()
        );

        // A role projects are granted to goes only with a reassignment, and
        // its grants move to the other role: nobody loses access by it.
        let release = roles
            .create_role(authed(
                pb::CreateRoleRequest {
                    parent: acme.name.clone(),
                    role: Some(pb::Role {
                        display_name: "Release".into(),
                        permissions: vec!["organization.read".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .role
            .unwrap();
        let rocket_name = format!("organizations/{acme_id}/projects/{rocket}");
        Grants::new(w.channel.clone())
            .create_project_grant(authed(
                pb::CreateProjectGrantRequest {
                    parent: rocket_name.clone(),
                    project_grant: Some(pb::ProjectGrant {
                        subject: Some(pb::project_grant::Subject::Role(release.name.clone())),
                        access_level: authz::ProjectAccessLevel::Contributor as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let granted_role = roles
            .delete_role(authed(
                pb::DeleteRoleRequest {
                    name: release.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        let info = granted_role.get_details_error_info().unwrap();
        assert_eq!(info.reason, "ROLE_IN_USE");
        assert_eq!(info.metadata["grants"], "1");
        roles
            .delete_role(authed(
                pb::DeleteRoleRequest {
                    name: release.name.clone(),
                    reassign_to: "roles/finance".into(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let moved: Vec<(Option<pb::project_grant::Subject>, i32)> = Grants::new(w.channel.clone())
            .list_project_grants(authed(
                pb::ListProjectGrantsRequest {
                    parent: rocket_name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project_grants
            .into_iter()
            .map(|g| (g.subject, g.access_level))
            .collect();
        assert_eq!(
            moved,
            [(
                Some(pb::project_grant::Subject::Role("roles/finance".into())),
                authz::ProjectAccessLevel::Contributor as i32
            )]
        );

        // Teams: a lead manages the team's members, and only them.
        let team = org::team_service_client::TeamServiceClient::new(w.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: acme.name.clone(),
                    team: Some(org::Team {
                        display_name: "Core".into(),
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
            .unwrap();
        let team_id = id(&team.name);
        w.assert_allowed(&ada, "team", &team_id, "team.manage")
            .await;
        let mut team_members = TeamMembers::new(w.channel.clone());
        team_members
            .add_team_member(authed(
                pb::AddTeamMemberRequest {
                    parent: team.name.clone(),
                    team_member: Some(pb::TeamMember {
                        user: format!("users/{}", lee.id),
                        role: authz::TeamRole::Lead as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        // Cat is not a member of Acme yet: she cannot join its teams.
        let outsider = team_members
            .add_team_member(authed(
                pb::AddTeamMemberRequest {
                    parent: team.name.clone(),
                    team_member: Some(pb::TeamMember {
                        user: format!("users/{}", cat.id),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &lee.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(outsider.code(), Code::FailedPrecondition);
        w.add_member(&ada, &acme_id, &cat, &["roles/finance"]).await;
        let added = team_members
            .add_team_member(authed(
                pb::AddTeamMemberRequest {
                    parent: team.name.clone(),
                    team_member: Some(pb::TeamMember {
                        user: format!("users/{}", cat.id),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &lee.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            !w.check(
                &lee,
                "team",
                &team_id,
                "team.manage",
                fresh(&added.written_at)
            )
            .await
            .unwrap()
        );

        // A grant to the team reaches its members; finance-only Cat gets
        // the project through it.
        let mut grants = Grants::new(w.channel.clone());
        let project_name = format!("organizations/{acme_id}/projects/{rocket}");
        let granted = grants
            .create_project_grant(authed(
                pb::CreateProjectGrantRequest {
                    parent: project_name.clone(),
                    project_grant: Some(pb::ProjectGrant {
                        subject: Some(pb::project_grant::Subject::Team(team.name.clone())),
                        access_level: authz::ProjectAccessLevel::Contributor as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            w.check(
                &cat,
                "project",
                &rocket,
                "resources.use",
                fresh(&granted.written_at)
            )
            .await
            .unwrap()
        );

        // An external user: someone outside the organization, granted a
        // project by accepting an invitation to it (a direct grant to them
        // is refused as if they did not exist).
        let direct = grants
            .create_project_grant(authed(
                pb::CreateProjectGrantRequest {
                    parent: project_name.clone(),
                    project_grant: Some(pb::ProjectGrant {
                        subject: Some(pb::project_grant::Subject::User(format!(
                            "users/{}",
                            guest.id
                        ))),
                        access_level: authz::ProjectAccessLevel::Viewer as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(direct.code(), Code::NotFound);
        let external = tenantry_tests::people::accept(
            &w.sandbox,
            &w.channel,
            &ada.token,
            &acme_id,
            &guest.token,
            pb::Invitation {
                external: true,
                projects: vec![pb::InvitationProject {
                    project: project_name.clone(),
                    access_level: authz::ProjectAccessLevel::Viewer as i32,
                }],
                ..Default::default()
            },
        )
        .await;
        assert!(external.membership.is_none());
        assert_eq!(external.granted_projects, vec![project_name.clone()]);
        let grant = grants
            .list_project_grants(authed(
                pb::ListProjectGrantsRequest {
                    parent: project_name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project_grants
            .into_iter()
            .find(|g| {
                g.subject
                    == Some(pb::project_grant::Subject::User(format!(
                        "users/{}",
                        guest.id
                    )))
            })
            .expect("the guest's grant is listed");
        assert!(grant.external);
        // Every grant says whom it is for in words: a team by its name, a
        // role by its display name.
        let role_grant = grants
            .create_project_grant(authed(
                pb::CreateProjectGrantRequest {
                    parent: project_name.clone(),
                    project_grant: Some(pb::ProjectGrant {
                        subject: Some(pb::project_grant::Subject::Role("roles/member".into())),
                        access_level: authz::ProjectAccessLevel::Viewer as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project_grant
            .unwrap();
        assert_eq!(role_grant.subject_display_name, "Member");
        let listed = grants
            .list_project_grants(authed(
                pb::ListProjectGrantsRequest {
                    parent: project_name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project_grants;
        let team_grant = listed
            .iter()
            .find(|g| g.subject == Some(pb::project_grant::Subject::Team(team.name.clone())))
            .expect("the team's grant is listed");
        assert_eq!(team_grant.subject_display_name, "Core");
        let at = fresh(&external.written_at);
        assert!(
            w.check(&guest, "project", &rocket, "project.read", at.clone())
                .await
                .unwrap()
        );
        assert!(
            !w.check(&guest, "project", &rocket, "resources.use", at.clone())
                .await
                .unwrap()
        );
        assert!(
            !w.check(&guest, "organization", &acme_id, "organization.read", at)
                .await
                .unwrap()
        );
        let found = w
            .authz()
            .lookup_resources(authed(
                authz::LookupResourcesRequest {
                    resource_type: "project".into(),
                    permission: "project.read".into(),
                    subject: subject(&guest.id),
                    // (Their own first organization has its default project.)
                    organization: acme.name.clone(),
                    ..Default::default()
                },
                &guest.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.resource_ids, vec![rocket.clone()]);
        let listed = Members::new(w.channel.clone())
            .list_memberships(authed(
                pb::ListMembershipsRequest {
                    parent: acme.name.clone(),
                    include_external: true,
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships;
        let guest_entry = listed
            .iter()
            .find(|m| m.user == format!("users/{}", guest.id))
            .unwrap();
        assert!(guest_entry.external);
        assert_eq!(guest_entry.user_email, "guest@example.com");
        assert!(listed.iter().filter(|m| !m.external).count() >= 3);

        // Who may read the project?
        let subjects = w
            .authz()
            .lookup_subjects(authed(
                authz::LookupSubjectsRequest {
                    resource: object("project", &rocket),
                    permission: "project.read".into(),
                    subject_type: "user".into(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .subjects;
        let ids: Vec<&str> = subjects.iter().map(|s| s.subject_id.as_str()).collect();
        for user in [&ada, &lee, &cat, &guest] {
            assert!(ids.contains(&user.id.as_str()));
        }
        assert!(
            subjects
                .iter()
                .any(|s| s.subject_id == guest.id && s.external)
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn bad_questions_are_refused_and_tenants_stay_apart() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let eve = w.user("eve@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let mut client = w.authz();
        let ask = |object_type: &str, permission: &str, who: &str| authz::CheckPermissionRequest {
            resource: object(object_type, &acme_id),
            permission: permission.into(),
            subject: subject(who),
            ..Default::default()
        };
        for (object_type, permission) in [
            ("widget", "organization.read"),
            ("organization", "organization.fly"),
            ("organization", "project.read"),
        ] {
            let error = client
                .check_permission(authed(ask(object_type, permission, &ada.id), &ada.token))
                .await
                .unwrap_err();
            assert_eq!(
                error.code(),
                Code::InvalidArgument,
                "{object_type} {permission}"
            );
        }
        // Nobody asks about someone else.
        let error = client
            .check_permission(authed(
                ask("organization", "organization.read", &ada.id),
                &eve.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
        // Eve about herself on Acme: denied, exactly like an unknown object.
        for object_id in [acme_id.clone(), tenantry_kit::id::new_id().to_string()] {
            let answer = client
                .check_permission(authed(
                    authz::CheckPermissionRequest {
                        resource: object("organization", &object_id),
                        permission: "organization.read".into(),
                        subject: subject(&eve.id),
                        ..Default::default()
                    },
                    &eve.token,
                ))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answer.permissionship(), authz::Permissionship::Denied);
        }
        // Tokens: garbage and the future are refused.
        for token in ["garbage", "r99999999"] {
            let error = client
                .check_permission(authed(
                    authz::CheckPermissionRequest {
                        consistency: Some(authz::Consistency {
                            requirement: Some(authz::consistency::Requirement::AtLeastAsFresh(
                                authz::ZedToken {
                                    token: token.into(),
                                },
                            )),
                        }),
                        ..ask("organization", "organization.read", &ada.id)
                    },
                    &ada.token,
                ))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{token}");
        }
        let consistent = client
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    consistency: Some(authz::Consistency {
                        requirement: Some(authz::consistency::Requirement::FullyConsistent(true)),
                    }),
                    ..ask("organization", "organization.read", &ada.id)
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(consistent.permissionship(), authz::Permissionship::Allowed);
        // Bulk: too many items is a clear error; one bad item does not spoil
        // the others.
        let item = |permission: &str| authz::CheckBulkPermissionsRequestItem {
            resource: object("organization", &acme_id),
            permission: permission.into(),
            subject: subject(&ada.id),
        };
        let error = client
            .check_bulk_permissions(authed(
                authz::CheckBulkPermissionsRequest {
                    consistency: None,
                    items: (0..1001).map(|_| item("organization.read")).collect(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        let pairs = client
            .check_bulk_permissions(authed(
                authz::CheckBulkPermissionsRequest {
                    consistency: None,
                    items: vec![
                        item("organization.read"),
                        item("organization.fly"),
                        item("billing.manage"),
                    ],
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .pairs;
        use authz::check_bulk_permissions_pair::Response as Answer;
        assert!(
            matches!(&pairs[0].response, Some(Answer::Item(i)) if i.permissionship() == authz::Permissionship::Allowed)
        );
        assert!(
            matches!(&pairs[1].response, Some(Answer::Error(e)) if e.code == Code::InvalidArgument as i32)
        );
        assert!(
            matches!(&pairs[2].response, Some(Answer::Item(i)) if i.permissionship() == authz::Permissionship::Allowed)
        );

        // Another tenant's memberships, roles and relationships: NOT_FOUND,
        // and nothing written.
        let mut members = Members::new(w.channel.clone());
        let error = members
            .create_membership(authed(
                pb::CreateMembershipRequest {
                    parent: acme.name.clone(),
                    membership: Some(pb::Membership {
                        user: format!("users/{}", eve.id),
                        roles: vec!["roles/admin".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &eve.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        let error = members
            .list_memberships(authed(
                pb::ListMembershipsRequest {
                    parent: acme.name.clone(),
                    ..Default::default()
                },
                &eve.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        let error = members
            .list_user_memberships(authed(
                pb::ListUserMembershipsRequest {
                    parent: format!("users/{}", ada.id),
                    ..Default::default()
                },
                &eve.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
        let error = client
            .read_relationships(authed(
                authz::ReadRelationshipsRequest {
                    relationship_filter: Some(authz::RelationshipFilter {
                        resource_type: "project".into(),
                        optional_subject_filter: Some(authz::SubjectFilter {
                            subject_type: "organization".into(),
                            optional_subject_id: acme_id.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    organization: acme.name.clone(),
                    ..Default::default()
                },
                &eve.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        assert!(
            !w.check(&eve, "organization", &acme_id, "organization.read", None)
                .await
                .unwrap()
        );
        // Her own memberships: the organization made at sign-up.
        let mine = Members::new(w.channel.clone())
            .list_user_memberships(authed(
                pb::ListUserMembershipsRequest {
                    parent: "users/me".into(),
                    ..Default::default()
                },
                &eve.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships;
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(mine[0].roles, vec!["roles/owner"]);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn two_rbac_processes_on_one_postgres_agree_after_at_least_as_fresh() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let w = World::start(Storage::Postgres).await;
    let first = format!("http://{}", w.sandbox.server.grpc_addr);
    // A second rbac: the real program in a process of its own, configured
    // as a Deployment would be, on the same Postgres.
    let replica = tenantry_testkit::ServerProcess::start(
        env!("CARGO_BIN_EXE_tenantry-process"),
        "rbac",
        &[
            ("DATABASE_URL", w.sandbox.database.url.clone()),
            ("TENANTRY_PEERS__IDENTITY", first.clone()),
            ("TENANTRY_PEERS__ORGANIZATION", first),
        ],
    )
    .await
    .unwrap();
    let other = Authz::new(
        tonic::transport::Endpoint::from_shared(replica.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    let ask = |token: &Option<authz::ZedToken>| {
        authed(
            authz::CheckPermissionRequest {
                consistency: fresh(token),
                resource: object("organization", &acme_id),
                permission: "organization.read".into(),
                subject: subject(&bob.id),
                with_tracing: false,
            },
            &bob.token,
        )
    };
    // Written through the first process, read through the second.
    let token = w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
    let answer = other
        .clone()
        .check_permission(ask(&token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.permissionship(), authz::Permissionship::Allowed);
    // Revoked through the first: the second, asked at that revision, must
    // not answer from its older state.
    let removed = Members::new(w.channel.clone())
        .delete_membership(authed(
            pb::DeleteMembershipRequest {
                name: format!("organizations/{acme_id}/memberships/{}", bob.id),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let answer = other
        .clone()
        .check_permission(ask(&removed.written_at))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.permissionship(), authz::Permissionship::Denied);
    drop(replica);
    w.sandbox.shutdown().await.unwrap();
}

type Invitations = pb::invitation_service_client::InvitationServiceClient<Channel>;

fn invite(
    org_name: &str,
    email: &str,
    teams: Vec<pb::InvitationTeam>,
) -> pb::CreateInvitationRequest {
    pb::CreateInvitationRequest {
        parent: org_name.into(),
        invitation: Some(pb::Invitation {
            email: email.into(),
            roles: vec!["roles/member".into()],
            teams,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn invitations_are_single_use_hashed_rate_limited_and_bound_to_the_verified_email() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let team = org::team_service_client::TeamServiceClient::new(w.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: acme.name.clone(),
                    team: Some(org::Team {
                        display_name: "Core".into(),
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
            .unwrap();
        w.assert_allowed(&ada, "team", &id(&team.name), "team.manage")
            .await;
        let mut invitations = Invitations::new(w.channel.clone());

        let invitation = invitations
            .create_invitation(authed(
                invite(
                    &acme.name,
                    "New.Hire@Example.com",
                    vec![pb::InvitationTeam {
                        team: team.name.clone(),
                        role: authz::TeamRole::Member as i32,
                    }],
                ),
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
        assert_eq!(invitation.email, "new.hire@example.com");
        assert_eq!(invitation.state, pb::invitation::State::Pending as i32);
        let token = w
            .sandbox
            .mail_token("new.hire@example.com", "invitation")
            .expect("the invitation was mailed");
        // Stored hashed: the token is nowhere in the database.
        {
            use sqlx::Row;
            let db = w.sandbox.database.connect_as_operator().await.unwrap();
            let stored: String = sqlx::query("SELECT token_hash FROM rbac_invitations")
                .fetch_one(db.pool())
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_ne!(stored, token);
            assert_eq!(stored, tenantry_kit::secret::hash_token(&token));
            db.close().await;
        }
        // One pending invitation per address; a second is refused.
        let twice = invitations
            .create_invitation(authed(
                invite(&acme.name, "new.hire@example.com", vec![]),
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(twice.code(), Code::AlreadyExists);
        // Resending at once is rate-limited, with a retry delay.
        let resend = invitations
            .resend_invitation(authed(
                pb::ResendInvitationRequest {
                    name: invitation.name.clone(),
                    etag: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(resend.code(), Code::ResourceExhausted);
        assert!(resend.get_details_retry_info().is_some());
        let too_long = invitations
            .create_invitation(authed(
                pb::CreateInvitationRequest {
                    expire_after: Some(prost_types::Duration {
                        seconds: 31 * 86_400,
                        nanos: 0,
                    }),
                    ..invite(&acme.name, "later@example.com", vec![])
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(too_long.code(), Code::InvalidArgument);
        let too_short = invitations
            .create_invitation(authed(
                pb::CreateInvitationRequest {
                    expire_after: Some(prost_types::Duration {
                        seconds: 3_599,
                        nanos: 0,
                    }),
                    ..invite(&acme.name, "soon@example.com", vec![])
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(too_short.code(), Code::InvalidArgument);
        assert!(
            w.sandbox
                .mail_token("soon@example.com", "invitation")
                .is_none(),
            "nothing was sent"
        );
        let owner_role = invitations
            .create_invitation(authed(
                pb::CreateInvitationRequest {
                    invitation: Some(pb::Invitation {
                        email: "boss@example.com".into(),
                        roles: vec!["roles/owner".into()],
                        ..Default::default()
                    }),
                    ..invite(&acme.name, "", vec![])
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(owner_role.code(), Code::InvalidArgument);

        // A signed-in user with another email cannot take it.
        let eve = w.user("eve@example.com").await;
        let wrong = invitations
            .accept_invitation(authed(
                pb::AcceptInvitationRequest {
                    token: token.clone(),
                },
                &eve.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::PermissionDenied);

        // Sign-up through the invitation: a verified user, a member with
        // the invited role, in the invited team.
        let mut identity =
            identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone());
        let signed_up = identity
            .sign_up(identity_pb::SignUpRequest {
                email: "new.hire@example.com".into(),
                password: "correct horse battery staple".into(),
                display_name: "New Hire".into(),
                invitation_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let hire = User {
            id: id(&signed_up.user.unwrap().name),
            token: signed_up.tokens.unwrap().access_token,
        };
        // The sign-up made the membership before it returned.
        let membership = Members::new(w.channel.clone())
            .get_membership(authed(
                pb::GetMembershipRequest {
                    name: format!("organizations/{acme_id}/memberships/{}", hire.id),
                },
                &hire.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .membership
            .unwrap();
        assert_eq!(membership.roles, vec!["roles/member"]);
        assert!(membership.invitation.ends_with(&id(&invitation.name)));
        assert!(
            w.check(&hire, "team", &id(&team.name), "team.read", None)
                .await
                .unwrap()
        );
        // Single use: the token is spent.
        let again = invitations
            .lookup_invitation(authed(
                pb::LookupInvitationRequest {
                    token: token.clone(),
                },
                &hire.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::NotFound);
        let listed = invitations
            .list_invitations(authed(
                pb::ListInvitationsRequest {
                    parent: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitations;
        assert_eq!(listed[0].state, pb::invitation::State::Accepted as i32);
        // A member is not invited again: their roles change on their
        // membership. Nothing is written.
        let member_again = invitations
            .create_invitation(authed(
                invite(&acme.name, "New.Hire@example.com", vec![]),
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(member_again.code(), Code::AlreadyExists, "{member_again:?}");
        assert_eq!(
            member_again.get_details_error_info().unwrap().reason,
            "ALREADY_A_MEMBER"
        );
        let after = invitations
            .list_invitations(authed(
                pb::ListInvitationsRequest {
                    parent: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitations;
        assert_eq!(after.len(), listed.len());

        // Revoked invitations stop working; allowed domains are enforced.
        let second = invitations
            .create_invitation(authed(
                invite(&acme.name, "temp@example.com", vec![]),
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
        let temp_token = w
            .sandbox
            .mail_token("temp@example.com", "invitation")
            .unwrap();
        invitations
            .revoke_invitation(authed(
                pb::RevokeInvitationRequest {
                    name: second.name.clone(),
                    etag: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let revoked = invitations
            .lookup_invitation(authed(
                pb::LookupInvitationRequest { token: temp_token },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(revoked.code(), Code::NotFound);
        Orgs::new(w.channel.clone())
            .update_organization(authed(
                org::UpdateOrganizationRequest {
                    organization: Some(org::Organization {
                        name: acme.name.clone(),
                        settings: Some(org::OrganizationSettings {
                            allowed_email_domains: vec!["example.com".into()],
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["settings.allowed_email_domains".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let foreign = invitations
            .create_invitation(authed(
                invite(&acme.name, "spy@other.test", vec![]),
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(foreign.code(), Code::FailedPrecondition);
        assert_eq!(
            foreign.get_details_error_info().unwrap().reason,
            "EMAIL_DOMAIN_NOT_ALLOWED"
        );
        // A member may not invite; a stranger does not even see the
        // organization.
        let by_member = invitations
            .create_invitation(authed(
                invite(&acme.name, "friend@example.com", vec![]),
                &hire.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(by_member.code(), Code::PermissionDenied);
        let by_stranger = invitations
            .create_invitation(authed(
                invite(&acme.name, "friend@example.com", vec![]),
                &eve.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(by_stranger.code(), Code::NotFound);

        // A recruiter (a custom role that may invite, not read the
        // members) sees the invitations they send.
        let reader = invitations.clone();
        let list = |token: String| {
            let mut invitations = reader.clone();
            let parent = acme.name.clone();
            async move {
                invitations
                    .list_invitations(authed(
                        pb::ListInvitationsRequest {
                            parent,
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
            }
        };
        assert!(list(hire.token.clone()).await.is_err());
        let recruiter = Roles::new(w.channel.clone())
            .create_role(authed(
                pb::CreateRoleRequest {
                    parent: acme.name.clone(),
                    role: Some(pb::Role {
                        display_name: "Recruiter".into(),
                        permissions: vec![
                            "organization.read".into(),
                            "organization.members.invite".into(),
                        ],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .role
            .unwrap();
        Members::new(w.channel.clone())
            .update_membership(authed(
                pb::UpdateMembershipRequest {
                    membership: Some(pb::Membership {
                        name: format!("organizations/{acme_id}/memberships/{}", hire.id),
                        roles: vec!["roles/member".into(), recruiter.name.clone()],
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["roles".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let sent = invitations
            .create_invitation(authed(
                invite(&acme.name, "friend@example.com", vec![]),
                &hire.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
        let seen = list(hire.token.clone())
            .await
            .unwrap()
            .into_inner()
            .invitations;
        assert!(seen.iter().any(|i| i.name == sent.name));
        invitations
            .get_invitation(authed(
                pb::GetInvitationRequest {
                    name: sent.name.clone(),
                },
                &hire.token,
            ))
            .await
            .unwrap();
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn ownership_transfer_moves_the_owner_role() {
    let w = World::start(Storage::Sqlite).await;
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
    let mut orgs = Orgs::new(w.channel.clone());
    let transfer = orgs
        .transfer_ownership(authed(
            org::TransferOwnershipRequest {
                name: acme.name.clone(),
                new_owner: format!("users/{}", bob.id),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .ownership_transfer
        .unwrap();
    let token = w
        .sandbox
        .mail_token("bob@example.com", "ownership_transfer")
        .unwrap();
    orgs.accept_ownership_transfer(authed(
        org::AcceptOwnershipTransferRequest {
            name: transfer.name,
            token,
        },
        &bob.token,
    ))
    .await
    .unwrap();
    w.assert_allowed(
        &bob,
        "organization",
        &acme_id,
        "organization.ownership.transfer",
    )
    .await;
    assert!(
        !w.check(
            &ada,
            "organization",
            &acme_id,
            "organization.ownership.transfer",
            None
        )
        .await
        .unwrap()
    );
    assert!(
        w.check(
            &ada,
            "organization",
            &acme_id,
            "organization.settings.manage",
            None
        )
        .await
        .unwrap()
    );
    w.sandbox.shutdown().await.unwrap();
}

type Schema = authz::schema_service_client::SchemaServiceClient<Channel>;

/// A service account of the platform, with a token for one organization.
async fn service_token(w: &World, root: &User, organization: &str) -> String {
    let mut accounts =
        identity_pb::service_account_service_client::ServiceAccountServiceClient::new(
            w.channel.clone(),
        );
    let account = accounts
        .create_service_account(authed(
            identity_pb::CreateServiceAccountRequest {
                service_account: Some(identity_pb::ServiceAccount {
                    display_name: "deployer".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &root.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    let credential = accounts
        .create_service_account_credential(authed(
            identity_pb::CreateServiceAccountCredentialRequest {
                parent: account.name,
                ..Default::default()
            },
            &root.token,
        ))
        .await
        .unwrap()
        .into_inner();
    accounts
        .issue_service_account_token(identity_pb::IssueServiceAccountTokenRequest {
            client_id: credential.credential.unwrap().client_id,
            client_secret: credential.client_secret,
            organization: format!("organizations/{organization}"),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

fn deployment_type() -> authz::ResourceType {
    use authz::permission_grant::Grantor;
    authz::ResourceType {
        name: "resourceTypes/deployment".into(),
        parent_type: "project".into(),
        permissions: vec![
            authz::PermissionDefinition {
                name: "deployment.read".into(),
                description: "see a deployment".into(),
                granted_by: vec![authz::PermissionGrant {
                    grantor: Some(Grantor::ParentPermission("project.read".into())),
                }],
            },
            authz::PermissionDefinition {
                name: "deployment.deploy".into(),
                description: "roll a deployment out".into(),
                granted_by: vec![
                    authz::PermissionGrant {
                        grantor: Some(Grantor::ProjectAccessLevel(
                            authz::ProjectAccessLevel::Contributor as i32,
                        )),
                    },
                    authz::PermissionGrant {
                        grantor: Some(Grantor::Role("roles/admin".into())),
                    },
                ],
            },
        ],
        ..Default::default()
    }
}

fn parent_link(
    operation: authz::relationship_update::Operation,
    object_type: &str,
    id: &str,
    parent_type: &str,
    parent: &str,
) -> authz::RelationshipUpdate {
    authz::RelationshipUpdate {
        operation: operation as i32,
        relationship: Some(authz::Relationship {
            resource: object(object_type, id),
            relation: "parent".into(),
            subject: Some(authz::SubjectReference {
                object: object(parent_type, parent),
                optional_relation: String::new(),
            }),
        }),
    }
}

#[tokio::test]
async fn services_register_types_and_attach_their_objects_in_their_organization() {
    use authz::relationship_update::Operation;
    for storage in storages() {
        let w = World::start(storage).await;
        let root = w.user("root@example.com").await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let eve = w.user("eve@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let rocket = w.project(&ada, &acme_id, "Rocket").await;
        let evil = w.organization(&eve, "Evil", None).await;
        let evil_project = w.project(&eve, &id(&evil.name), "Evil Plan").await;
        w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
        let service = service_token(&w, &root, &acme_id).await;
        // A service account's lookup is inside its organization, with or
        // without the (optional) filter; another organization is refused.
        for filter in [String::new(), acme.name.clone()] {
            let found = w
                .authz()
                .lookup_resources(authed(
                    authz::LookupResourcesRequest {
                        resource_type: "project".into(),
                        permission: "project.read".into(),
                        subject: subject(&bob.id),
                        organization: filter,
                        ..Default::default()
                    },
                    &service,
                ))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(found.resource_ids, vec![rocket.clone()]);
        }
        let elsewhere = w
            .authz()
            .lookup_resources(authed(
                authz::LookupResourcesRequest {
                    resource_type: "project".into(),
                    permission: "project.read".into(),
                    subject: subject(&eve.id),
                    organization: evil.name.clone(),
                    ..Default::default()
                },
                &service,
            ))
            .await
            .unwrap_err();
        assert_eq!(elsewhere.code(), Code::PermissionDenied);
        // A cursor that is not one is refused in the field it came in.
        let garbage = w
            .authz()
            .watch(authed(
                authz::WatchRequest {
                    optional_start_cursor: Some(authz::ZedToken {
                        token: "garbage".into(),
                    }),
                    organization: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .err()
            .unwrap();
        assert_eq!(garbage.code(), Code::InvalidArgument);
        assert!(
            garbage.message().contains("optional_start_cursor"),
            "{}",
            garbage.message()
        );
        let mut schema = Schema::new(w.channel.clone());

        // Users do not register types; bad definitions write nothing.
        let by_user = schema
            .register_resource_type(authed(
                authz::RegisterResourceTypeRequest {
                    resource_type: Some(deployment_type()),
                    validate_only: false,
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(by_user.code(), Code::PermissionDenied);
        for broken in [
            authz::ResourceType {
                parent_type: "galaxy".into(),
                ..deployment_type()
            },
            authz::ResourceType {
                permissions: Vec::new(),
                ..deployment_type()
            },
        ] {
            let error = schema
                .register_resource_type(authed(
                    authz::RegisterResourceTypeRequest {
                        resource_type: Some(broken),
                        validate_only: false,
                    },
                    &service,
                ))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument);
        }
        // A built-in name is taken; a built-in type is not deleted.
        let taken = schema
            .register_resource_type(authed(
                authz::RegisterResourceTypeRequest {
                    resource_type: Some(authz::ResourceType {
                        name: "resourceTypes/project".into(),
                        ..deployment_type()
                    }),
                    validate_only: false,
                },
                &service,
            ))
            .await
            .unwrap_err();
        assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
        assert_eq!(
            taken.get_details_error_info().unwrap().reason,
            "TYPE_BUILT_IN"
        );
        let kept = schema
            .delete_resource_type(authed(
                authz::DeleteResourceTypeRequest {
                    name: "resourceTypes/project".into(),
                    ..Default::default()
                },
                &service,
            ))
            .await
            .unwrap_err();
        assert_eq!(kept.code(), Code::FailedPrecondition, "{kept:?}");

        // Validating shows the type as it would be, and registers nothing.
        let described = authz::ResourceType {
            display_name: "Deployment".into(),
            description: "a release of a project".into(),
            ..deployment_type()
        };
        let preview = schema
            .register_resource_type(authed(
                authz::RegisterResourceTypeRequest {
                    resource_type: Some(described.clone()),
                    validate_only: true,
                },
                &service,
            ))
            .await
            .unwrap()
            .into_inner()
            .resource_type
            .unwrap();
        let names: Vec<&str> = preview
            .permissions
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["deployment.read", "deployment.deploy"]);
        assert_eq!(
            (preview.display_name.as_str(), preview.parent_type.as_str()),
            ("Deployment", "project")
        );
        let absent = schema
            .get_resource_type(authed(
                authz::GetResourceTypeRequest {
                    name: "resourceTypes/deployment".into(),
                },
                &bob.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(absent.code(), Code::NotFound);
        let registered = schema
            .register_resource_type(authed(
                authz::RegisterResourceTypeRequest {
                    resource_type: Some(described),
                    validate_only: false,
                },
                &service,
            ))
            .await
            .unwrap()
            .into_inner()
            .resource_type
            .unwrap();
        assert_eq!(registered.parent_type, "project");
        assert_eq!(registered.display_name, "Deployment");
        assert_eq!(registered.description, "a release of a project");
        // The permission catalog, by name, tells registered from built-in.
        let catalog = Roles::new(w.channel.clone())
            .list_permissions(authed(pb::ListPermissionsRequest::default(), &bob.token))
            .await
            .unwrap()
            .into_inner()
            .permissions;
        let names: Vec<&str> = catalog.iter().map(|p| p.permission.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let entry = |name: &str| catalog.iter().find(|p| p.permission == name).unwrap();
        assert!(entry("deployment.deploy").registered);
        assert_eq!(entry("deployment.deploy").resource_type, "deployment");
        assert!(!entry("organization.read").registered);
        assert!(
            entry("organization.read")
                .built_in_roles
                .contains(&"roles/member".to_string())
        );
        // In pages, the same catalog.
        let mut paged = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = Roles::new(w.channel.clone())
                .list_permissions(authed(
                    pb::ListPermissionsRequest {
                        page_size: 10,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                    &bob.token,
                ))
                .await
                .unwrap()
                .into_inner();
            assert!(page.permissions.len() <= 10);
            paged.extend(page.permissions.into_iter().map(|p| p.permission));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!(paged, names);
        // Another service may neither redefine nor delete a type it does
        // not own (it would decide who may do what to the owner's objects).
        let rival = service_token(&w, &root, &acme_id).await;
        let mut hijacked = deployment_type();
        hijacked.permissions[1].granted_by = vec![authz::PermissionGrant {
            grantor: Some(authz::permission_grant::Grantor::Role(
                "roles/member".into(),
            )),
        }];
        let taken = schema
            .register_resource_type(authed(
                authz::RegisterResourceTypeRequest {
                    resource_type: Some(hijacked),
                    validate_only: false,
                },
                &rival,
            ))
            .await
            .unwrap_err();
        assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
        assert_eq!(
            taken.get_details_error_info().unwrap().reason,
            "TYPE_OWNED_BY_ANOTHER"
        );
        let removed = schema
            .delete_resource_type(authed(
                authz::DeleteResourceTypeRequest {
                    name: "resourceTypes/deployment".into(),
                    ..Default::default()
                },
                &rival,
            ))
            .await
            .unwrap_err();
        assert_eq!(removed.code(), Code::PermissionDenied, "{removed:?}");
        // A custom role that names its permissions keeps a type in use.
        Roles::new(w.channel.clone())
            .create_role(authed(
                pb::CreateRoleRequest {
                    parent: acme.name.clone(),
                    role: Some(pb::Role {
                        display_name: "Release watcher".into(),
                        permissions: vec!["organization.read".into(), "deployment.read".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let in_use = schema
            .delete_resource_type(authed(
                authz::DeleteResourceTypeRequest {
                    name: "resourceTypes/deployment".into(),
                    ..Default::default()
                },
                &service,
            ))
            .await
            .unwrap_err();
        let info = in_use.get_details_error_info().unwrap();
        assert_eq!(info.reason, "TYPE_IN_USE");
        assert_eq!(info.metadata["roles"], "1");
        // Roles and types come in pages: built-in first.
        let mut roles = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = Roles::new(w.channel.clone())
                .list_roles(authed(
                    pb::ListRolesRequest {
                        parent: acme.name.clone(),
                        page_size: 3,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap()
                .into_inner();
            assert!(page.roles.len() <= 3);
            roles.extend(page.roles.into_iter().map(|r| r.display_name));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!(
            roles,
            ["Owner", "Admin", "Member", "Finance", "Release watcher"]
        );
        let mut types = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = schema
                .list_resource_types(authed(
                    authz::ListResourceTypesRequest {
                        page_size: 2,
                        page_token: page_token.clone(),
                    },
                    &bob.token,
                ))
                .await
                .unwrap()
                .into_inner();
            types.extend(page.resource_types.into_iter().map(|t| t.name));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!(
            types,
            [
                "resourceTypes/organization",
                "resourceTypes/team",
                "resourceTypes/project",
                "resourceTypes/deployment"
            ]
        );
        let kept = schema
            .get_resource_type(authed(
                authz::GetResourceTypeRequest {
                    name: "resourceTypes/deployment".into(),
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .resource_type
            .unwrap();
        let deploy = kept
            .permissions
            .iter()
            .find(|p| p.name == "deployment.deploy")
            .unwrap();
        assert!(
            !deploy.granted_by.iter().any(|g| g.grantor
                == Some(authz::permission_grant::Grantor::Role(
                    "roles/member".into()
                ))),
            "the owner's definition stands"
        );
        let listed = schema
            .list_resource_types(authed(
                authz::ListResourceTypesRequest::default(),
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .resource_types;
        assert!(
            listed
                .iter()
                .any(|t| t.name == "resourceTypes/deployment" && !t.built_in)
        );
        assert!(
            listed
                .iter()
                .any(|t| t.name == "resourceTypes/project" && t.built_in)
        );

        // Attach a deployment to Rocket; watch it happen.
        let before = w
            .check(&ada, "project", &rocket, "project.read", None)
            .await
            .unwrap();
        assert!(before);
        let start = w
            .authz()
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: object("project", &rocket),
                    permission: "project.read".into(),
                    subject: subject(&ada.id),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .checked_at;
        let mut watch = w
            .authz()
            .watch(authed(
                authz::WatchRequest {
                    optional_object_types: vec!["deployment".into()],
                    optional_start_cursor: start.clone(),
                    organization: acme.name.clone(),
                },
                &service,
            ))
            .await
            .unwrap()
            .into_inner();
        let written = w
            .authz()
            .write_relationships(authed(
                authz::WriteRelationshipsRequest {
                    updates: vec![parent_link(
                        Operation::Create,
                        "deployment",
                        "d1",
                        "project",
                        &rocket,
                    )],
                    optional_preconditions: Vec::new(),
                },
                &service,
            ))
            .await
            .unwrap()
            .into_inner()
            .written_at;
        let seen = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let update = &seen.updates[0];
        assert_eq!(
            update.relationship.as_ref().unwrap().resource,
            object("deployment", "d1")
        );

        // Permissions flow from the project: members read, contributors and
        // admins deploy.
        let at = || fresh(&written);
        assert!(
            w.check(&bob, "deployment", "d1", "deployment.read", at())
                .await
                .unwrap()
        );
        assert!(
            !w.check(&bob, "deployment", "d1", "deployment.deploy", at())
                .await
                .unwrap()
        );
        assert!(
            w.check(&ada, "deployment", "d1", "deployment.deploy", at())
                .await
                .unwrap()
        );
        assert!(
            !w.check(&eve, "deployment", "d1", "deployment.read", at())
                .await
                .unwrap()
        );
        // The service account asks about anyone, in its organization only.
        let about_bob = w
            .authz()
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    consistency: at(),
                    resource: object("deployment", "d1"),
                    permission: "deployment.read".into(),
                    subject: subject(&bob.id),
                    with_tracing: false,
                },
                &service,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(about_bob.permissionship(), authz::Permissionship::Allowed);
        let elsewhere = w
            .authz()
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: object("project", &evil_project),
                    permission: "project.read".into(),
                    subject: subject(&eve.id),
                    ..Default::default()
                },
                &service,
            ))
            .await
            .unwrap_err();
        assert_eq!(elsewhere.code(), Code::PermissionDenied);

        // Bad writes: another tenant's parent, unknown types and relations,
        // the wrong parent type, a duplicate create, a failed precondition.
        let write = |updates: Vec<authz::RelationshipUpdate>,
                     preconditions: Vec<authz::Precondition>| {
            let mut client = w.authz();
            let token = service.clone();
            async move {
                client
                    .write_relationships(authed(
                        authz::WriteRelationshipsRequest {
                            updates,
                            optional_preconditions: preconditions,
                        },
                        &token,
                    ))
                    .await
            }
        };
        let cases: Vec<(authz::RelationshipUpdate, Code)> = vec![
            (
                parent_link(
                    Operation::Touch,
                    "deployment",
                    "d2",
                    "project",
                    &evil_project,
                ),
                Code::NotFound,
            ),
            (
                parent_link(Operation::Touch, "widget", "w1", "project", &rocket),
                Code::InvalidArgument,
            ),
            (
                parent_link(
                    Operation::Touch,
                    "deployment",
                    "d2",
                    "organization",
                    &acme_id,
                ),
                Code::InvalidArgument,
            ),
            (
                parent_link(Operation::Touch, "deployment", "d2", "deployment", "d1"),
                Code::InvalidArgument,
            ),
            (
                parent_link(
                    Operation::Touch,
                    "project",
                    &rocket,
                    "organization",
                    &acme_id,
                ),
                Code::InvalidArgument,
            ),
            (
                parent_link(Operation::Create, "deployment", "d1", "project", &rocket),
                Code::AlreadyExists,
            ),
        ];
        for (update, code) in cases {
            assert_eq!(
                write(vec![update], Vec::new()).await.unwrap_err().code(),
                code
            );
        }
        let mut other_relation =
            parent_link(Operation::Touch, "deployment", "d2", "project", &rocket);
        other_relation.relationship.as_mut().unwrap().relation = "owner".into();
        assert_eq!(
            write(vec![other_relation], Vec::new())
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
        let must_not_exist = authz::Precondition {
            operation: authz::precondition::Operation::MustNotMatch as i32,
            filter: Some(authz::RelationshipFilter {
                resource_type: "deployment".into(),
                optional_resource_id: "d1".into(),
                ..Default::default()
            }),
        };
        let failed = write(
            vec![parent_link(
                Operation::Touch,
                "deployment",
                "d2",
                "project",
                &rocket,
            )],
            vec![must_not_exist],
        )
        .await
        .unwrap_err();
        assert_eq!(failed.code(), Code::FailedPrecondition);
        let huge = (0..1001)
            .map(|i| {
                parent_link(
                    Operation::Touch,
                    "deployment",
                    &format!("x{i}"),
                    "project",
                    &rocket,
                )
            })
            .collect();
        assert_eq!(
            write(huge, Vec::new()).await.unwrap_err().code(),
            Code::InvalidArgument
        );

        // Another tenant's relationships are out of every filter: they
        // neither satisfy a precondition nor match a deletion.
        let evil_service = service_token(&w, &root, &id(&evil.name)).await;
        w.authz()
            .write_relationships(authed(
                authz::WriteRelationshipsRequest {
                    updates: vec![parent_link(
                        Operation::Touch,
                        "deployment",
                        "e1",
                        "project",
                        &evil_project,
                    )],
                    optional_preconditions: Vec::new(),
                },
                &evil_service,
            ))
            .await
            .unwrap();
        let probe = authz::Precondition {
            operation: authz::precondition::Operation::MustMatch as i32,
            filter: Some(authz::RelationshipFilter {
                resource_type: "deployment".into(),
                optional_resource_id: "e1".into(),
                ..Default::default()
            }),
        };
        let probed = write(
            vec![parent_link(
                Operation::Touch,
                "deployment",
                "d2",
                "project",
                &rocket,
            )],
            vec![probe],
        )
        .await
        .unwrap_err();
        assert_eq!(probed.code(), Code::FailedPrecondition, "{probed:?}");
        let untouched = w
            .authz()
            .delete_relationships(authed(
                authz::DeleteRelationshipsRequest {
                    relationship_filter: Some(authz::RelationshipFilter {
                        resource_type: "deployment".into(),
                        optional_resource_id: "e1".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &service,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(untouched.relationships_deleted_count, 0);
        assert_eq!(
            untouched.deletion_progress,
            authz::delete_relationships_response::DeletionProgress::Complete as i32
        );
        let evils = w
            .authz()
            .read_relationships(authed(
                authz::ReadRelationshipsRequest {
                    relationship_filter: Some(authz::RelationshipFilter {
                        resource_type: "deployment".into(),
                        ..Default::default()
                    }),
                    organization: evil.name.clone(),
                    ..Default::default()
                },
                &eve.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .relationships;
        assert_eq!(evils.len(), 1, "{evils:?}");

        // What lives in the project keeps it from being purged.
        let read = w
            .authz()
            .read_relationships(authed(
                authz::ReadRelationshipsRequest {
                    relationship_filter: Some(authz::RelationshipFilter {
                        resource_type: "deployment".into(),
                        ..Default::default()
                    }),
                    organization: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .relationships;
        assert_eq!(read.len(), 1);
        let mut projects =
            org::project_service_client::ProjectServiceClient::new(w.channel.clone());
        let project_name = format!("organizations/{acme_id}/projects/{rocket}");
        projects
            .delete_project(authed(
                org::DeleteProjectRequest {
                    name: project_name.clone(),
                    etag: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let purge = |token: String| {
            let mut projects = projects.clone();
            let name = project_name.clone();
            async move {
                projects
                    .purge_project(authed(
                        org::PurgeProjectRequest {
                            name,
                            etag: String::new(),
                        },
                        &token,
                    ))
                    .await
            }
        };
        let in_use = purge(ada.token.clone()).await.unwrap_err();
        assert_eq!(
            in_use.get_details_error_info().unwrap().reason,
            "PROJECT_IN_USE"
        );
        let deleted = w
            .authz()
            .delete_relationships(authed(
                authz::DeleteRelationshipsRequest {
                    relationship_filter: Some(authz::RelationshipFilter {
                        resource_type: "deployment".into(),
                        optional_resource_id: "d1".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &service,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deleted.relationships_deleted_count, 1);
        assert!(
            !w.check(
                &bob,
                "deployment",
                "d1",
                "deployment.read",
                fresh(&deleted.deleted_at)
            )
            .await
            .unwrap()
        );
        purge(ada.token.clone()).await.unwrap();

        // Reading pages through every relationship, in a stable order; a
        // service reads its own organization's when it names none.
        let shelf = w.project(&ada, &acme_id, "Shelf").await;
        let ids: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
        w.authz()
            .write_relationships(authed(
                authz::WriteRelationshipsRequest {
                    updates: ids
                        .iter()
                        .map(|d| parent_link(Operation::Touch, "deployment", d, "project", &shelf))
                        .collect(),
                    optional_preconditions: Vec::new(),
                },
                &service,
            ))
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut page_token = String::new();
        let mut pages = 0;
        loop {
            let page = w
                .authz()
                .read_relationships(authed(
                    authz::ReadRelationshipsRequest {
                        relationship_filter: Some(authz::RelationshipFilter {
                            resource_type: "deployment".into(),
                            ..Default::default()
                        }),
                        page_size: 2,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                    &service,
                ))
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.relationships.len() <= 2);
            seen.extend(
                page.relationships
                    .into_iter()
                    .map(|r| r.resource.unwrap().object_id),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!(seen, ids, "every relationship once, in order");
        assert_eq!(pages, 3);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_tree_reaches_the_index_over_nats() {
    let Some(url) = tenantry_testkit::nats_url() else {
        return;
    };
    for storage in storages() {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
            ])
            .storage(storage)
            .bus(tenantry_testkit::Bus::Nats(url.clone()))
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let w = World { sandbox, channel };
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let rocket = w.project(&ada, &id(&acme.name), "Rocket").await;
        assert!(
            w.check(&ada, "project", &rocket, "project.read", None)
                .await
                .unwrap()
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn watch_streams_membership_and_grant_changes_of_an_organization() {
    let w = World::start(Storage::Sqlite).await;
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    let start = w
        .authz()
        .check_permission(authed(
            authz::CheckPermissionRequest {
                resource: object("organization", &acme_id),
                permission: "organization.read".into(),
                subject: subject(&ada.id),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .checked_at;
    let mut watch = w
        .authz()
        .watch(authed(
            authz::WatchRequest {
                optional_object_types: Vec::new(),
                optional_start_cursor: start,
                organization: acme.name.clone(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let relationship = seen.updates[0].relationship.clone().unwrap();
    assert_eq!(relationship.resource, object("organization", &acme_id));
    assert_eq!(relationship.relation, "member");
    assert_eq!(
        relationship.subject.unwrap().object,
        object("user", &bob.id)
    );
    assert!(seen.changes_through.is_some());
    // Someone else's organization is not theirs to watch.
    let eve = w.user("eve@example.com").await;
    let refused = w
        .authz()
        .watch(authed(
            authz::WatchRequest {
                organization: acme.name.clone(),
                ..Default::default()
            },
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    // Naming none, a caller watches the organization its token is for.
    let eves = id(&Orgs::new(w.channel.clone())
        .list_my_organizations(authed(
            org::ListMyOrganizationsRequest::default(),
            &eve.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organizations[0]
        .organization
        .clone()
        .unwrap()
        .name);
    let mut own = w
        .authz()
        .watch(authed(authz::WatchRequest::default(), &eve.token))
        .await
        .unwrap()
        .into_inner();
    w.add_member(&eve, &eves, &bob, &["roles/member"]).await;
    let mine = tokio::time::timeout(Duration::from_secs(10), own.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        mine.updates[0].relationship.clone().unwrap().resource,
        object("organization", &eves)
    );
    drop(watch);
    drop(own);
    w.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_replica_behind_the_compacted_log_reloads_and_old_watch_cursors_are_refused() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        // A second replica's index, loaded now, then left behind.
        let db = w.sandbox.database.connect().await.unwrap();
        let store = tenantry_rbac::store::Store::new(db);
        let lagging = tenantry_rbac::live::LiveIndex::load(store.clone())
            .await
            .unwrap();
        let old = lagging.applied();
        let token = w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
        let head = tenantry_rbac::live::parse_token(&token.as_ref().unwrap().token).unwrap();
        assert!(head > old);
        // The log before `head` is compacted away.
        store.compact(head).await.unwrap();
        assert_eq!(store.floor().await.unwrap(), head);
        assert!(store.changes_after(old, 100).await.unwrap().is_empty());
        // The lagging replica notices and reloads: it sees bob.
        lagging.catch_up().await.unwrap();
        assert!(lagging.applied() >= head);
        assert!(
            lagging
                .read()
                .check_by_id(&bob.id, "organization", &acme_id, "organization.read")
                .unwrap()
        );
        // A watch from before the floor cannot be served without a gap.
        let stale = w
            .authz()
            .watch(authed(
                authz::WatchRequest {
                    optional_start_cursor: Some(authz::ZedToken {
                        token: format!("r{old}"),
                    }),
                    organization: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::FailedPrecondition);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_purged_organization_takes_its_memberships_with_it() {
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
        ])
        .configure(|config| config.organization.purge_interval_secs = 1)
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let w = World { sandbox, channel };
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
    Orgs::new(w.channel.clone())
        .delete_organization(authed(
            org::DeleteOrganizationRequest {
                name: acme.name.clone(),
                etag: String::new(),
                force: true,
            },
            &ada.token,
        ))
        .await
        .unwrap();
    {
        let db = w.sandbox.database.connect_as_operator().await.unwrap();
        sqlx::query("UPDATE org_organizations SET purge_at_us = 1 WHERE deleted_at_us IS NOT NULL")
            .execute(db.pool())
            .await
            .unwrap();
        db.close().await;
    }
    eventually("bob's membership leaving with the organization", || async {
        let memberships = Members::new(w.channel.clone())
            .list_user_memberships(authed(
                pb::ListUserMembershipsRequest {
                    parent: "users/me".into(),
                    ..Default::default()
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships;
        (!memberships.iter().any(|m| m.name.contains(&acme_id))).then_some(())
    })
    .await;
    w.sandbox.shutdown().await.unwrap();
}

type Projects = org::project_service_client::ProjectServiceClient<Channel>;
type Teams = org::team_service_client::TeamServiceClient<Channel>;

impl World {
    /// The projects `user` lists in an organization, by display name.
    async fn project_names(&self, user: &User, organization: &str) -> Vec<String> {
        let mut names: Vec<String> = Projects::new(self.channel.clone())
            .list_projects(authed(
                org::ListProjectsRequest {
                    parent: format!("organizations/{organization}"),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .projects
            .into_iter()
            .map(|p| p.display_name)
            .collect();
        names.sort();
        names
    }

    async fn team_with(
        &self,
        owner: &User,
        organization: &str,
        name: &str,
        member: &User,
    ) -> String {
        let team = Teams::new(self.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: format!("organizations/{organization}"),
                    team: Some(org::Team {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &owner.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap()
            .name;
        TeamMembers::new(self.channel.clone())
            .add_team_member(authed(
                pb::AddTeamMemberRequest {
                    parent: team.clone(),
                    team_member: Some(pb::TeamMember {
                        user: format!("users/{}", member.id),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &owner.token,
            ))
            .await
            .unwrap();
        team
    }

    async fn grant(
        &self,
        owner: &User,
        project: &str,
        subject: pb::project_grant::Subject,
        level: authz::ProjectAccessLevel,
    ) {
        Grants::new(self.channel.clone())
            .create_project_grant(authed(
                pb::CreateProjectGrantRequest {
                    parent: project.to_string(),
                    project_grant: Some(pb::ProjectGrant {
                        subject: Some(subject),
                        access_level: level as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &owner.token,
            ))
            .await
            .unwrap();
    }

    async fn set_visibility(
        &self,
        by: &User,
        organization: &org::Organization,
        visibility: i32,
    ) -> Result<org::Organization, tonic::Status> {
        Orgs::new(self.channel.clone())
            .update_organization(authed(
                org::UpdateOrganizationRequest {
                    organization: Some(org::Organization {
                        name: organization.name.clone(),
                        settings: Some(org::OrganizationSettings {
                            project_visibility: visibility,
                            ..Default::default()
                        }),
                        etag: organization.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["settings.project_visibility".into()],
                    }),
                },
                &by.token,
            ))
            .await
            .map(|r| r.into_inner().organization.unwrap())
    }

    async fn get_organization(&self, by: &User, organization: &str) -> org::Organization {
        Orgs::new(self.channel.clone())
            .get_organization(authed(
                org::GetOrganizationRequest {
                    name: format!("organizations/{organization}"),
                },
                &by.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap()
    }
}

/// Foothold runs one tenant (project) per app team on the free plan: a new
/// organization shows its members only the projects granted to them — by
/// user, by team or by role (Rollbar's per-project access) — while admins
/// and owners see every project and organization-level permissions stay
/// with the roles. The organization can show every project to members
/// instead; switching back takes the access away at once.
#[tokio::test]
async fn foothold_gives_each_app_team_its_own_tenants_on_the_free_plan() {
    use authz::ProjectAccessLevel::{Contributor, Viewer};
    use pb::project_grant::Subject;
    for storage in storages() {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Billing,
            ])
            .storage(storage)
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let w = World { sandbox, channel };
        // Signing up makes the organization and its default tenant "main".
        let ada = w.user("ada@foothold.example").await;
        let acme_id = id(&Orgs::new(w.channel.clone())
            .list_my_organizations(authed(
                org::ListMyOrganizationsRequest::default(),
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organizations[0]
            .organization
            .clone()
            .unwrap()
            .name);
        let acme = w.get_organization(&ada, &acme_id).await;
        let settings = acme.settings.clone().unwrap();
        assert_eq!(
            settings.project_visibility(),
            org::ProjectVisibility::Granted,
            "a new organization shows members only their granted projects"
        );
        let alpha = w.project(&ada, &acme_id, "alpha").await;
        let beta = w.project(&ada, &acme_id, "beta").await;
        let project = |p: &str| format!("organizations/{acme_id}/projects/{p}");
        let main = Projects::new(w.channel.clone())
            .list_projects(authed(
                org::ListProjectsRequest {
                    parent: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .projects
            .into_iter()
            .find(|p| p.display_name == "main")
            .map(|p| id(&p.name))
            .expect("the default tenant");

        let cassidy = w.user("cassidy@foothold.example").await;
        let dan = w.user("dan@foothold.example").await;
        for person in [&cassidy, &dan] {
            w.add_member(&ada, &acme_id, person, &["roles/member"])
                .await;
        }
        let payments = w.team_with(&ada, &acme_id, "Payments", &cassidy).await;
        let search = w.team_with(&ada, &acme_id, "Search", &dan).await;
        w.grant(&ada, &project(&alpha), Subject::Team(payments), Contributor)
            .await;
        w.grant(&ada, &project(&beta), Subject::Team(search), Contributor)
            .await;
        w.grant(
            &ada,
            &project(&main),
            Subject::User(format!("users/{}", cassidy.id)),
            Viewer,
        )
        .await;

        // Cassidy sees her team's tenant and the one granted to her, not
        // Dan's; the owner sees all three.
        assert_eq!(w.project_names(&cassidy, &acme_id).await, ["alpha", "main"]);
        assert_eq!(w.project_names(&dan, &acme_id).await, ["beta"]);
        assert_eq!(
            w.project_names(&ada, &acme_id).await,
            ["alpha", "beta", "main"]
        );
        let hidden = Projects::new(w.channel.clone())
            .get_project(authed(
                org::GetProjectRequest {
                    name: project(&beta),
                },
                &cassidy.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
        assert!(
            w.check(&cassidy, "project", &alpha, "resources.use", None)
                .await
                .unwrap()
        );
        assert!(
            !w.check(&cassidy, "project", &main, "resources.use", None)
                .await
                .unwrap()
        );
        // Organization-level permissions stay with the role.
        assert!(
            w.check(
                &cassidy,
                "organization",
                &acme_id,
                "organization.read",
                None
            )
            .await
            .unwrap()
        );
        let mut lookup = authz::LookupResourcesRequest {
            resource_type: "project".into(),
            permission: "project.read".into(),
            subject: subject(&cassidy.id),
            organization: acme.name.clone(),
            ..Default::default()
        };
        let found = w
            .authz()
            .lookup_resources(authed(lookup.clone(), &cassidy.token))
            .await
            .unwrap()
            .into_inner();
        let mut expected = vec![alpha.clone(), main.clone()];
        expected.sort();
        assert_eq!(found.resource_ids, expected);
        // The trace says why a member does not read an ungranted tenant.
        let explained = w
            .authz()
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: object("project", &beta),
                    permission: "project.read".into(),
                    subject: subject(&cassidy.id),
                    with_tracing: true,
                    ..Default::default()
                },
                &cassidy.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(explained.permissionship(), authz::Permissionship::Denied);
        let trace = format!("{:?}", explained.debug_trace);
        assert!(
            trace.contains("shows members only the projects granted to them"),
            "{trace}"
        );

        // Bad changes are refused and write nothing: a member may not
        // change the setting, and only the two values exist.
        let by_member = w
            .set_visibility(&cassidy, &acme, org::ProjectVisibility::AllMembers as i32)
            .await
            .unwrap_err();
        assert_eq!(by_member.code(), Code::PermissionDenied, "{by_member:?}");
        let refused = w.set_visibility(&ada, &acme, 42).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("settings.project_visibility"),
            "{refused:?}"
        );
        assert_eq!(w.get_organization(&ada, &acme_id).await.etag, acme.etag);

        // Every project for every member, then back: the access granted
        // only by the setting is gone with the write.
        let open = w
            .set_visibility(&ada, &acme, org::ProjectVisibility::AllMembers as i32)
            .await
            .unwrap();
        assert_eq!(
            w.project_names(&cassidy, &acme_id).await,
            ["alpha", "beta", "main"]
        );
        // Named but unset, the setting is reset to its default (GRANTED
        // for a root, as the installation says).
        let reset = w
            .set_visibility(&ada, &open, org::ProjectVisibility::Unspecified as i32)
            .await
            .unwrap();
        assert_eq!(
            reset.settings.unwrap().project_visibility(),
            org::ProjectVisibility::Granted
        );
        assert!(
            !w.check(&cassidy, "project", &beta, "project.read", None)
                .await
                .unwrap()
        );
        assert_eq!(w.project_names(&cassidy, &acme_id).await, ["alpha", "main"]);

        // A grant to a role reaches everyone who holds it.
        w.grant(
            &ada,
            &project(&beta),
            Subject::Role("roles/member".into()),
            Viewer,
        )
        .await;
        assert!(
            w.check(&cassidy, "project", &beta, "project.read", None)
                .await
                .unwrap()
        );
        lookup.subject = subject(&dan.id);
        let dans = w
            .authz()
            .lookup_resources(authed(lookup, &dan.token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(dans.resource_ids, vec![beta.clone()]);

        // A department takes its parent's setting.
        let department = Orgs::new(w.channel.clone())
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: "Platform".into(),
                        parent: acme.name.clone(),
                        kind: org::OrganizationKind::Department as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(
            department.settings.unwrap().project_visibility(),
            org::ProjectVisibility::Granted
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

/// An organization's allowed email domains bind adding an existing member
/// of the tree as they bind invitations; the refusal writes nothing.
#[tokio::test]
async fn allowed_domains_bind_memberships_too() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@elsewhere.example").await;
        let root = w.organization(&ada, "Root", None).await;
        let root_id = id(&root.name);
        let child = w.organization(&ada, "Child", Some(&root_id)).await;
        let child = w.get_organization(&ada, &id(&child.name)).await;
        Orgs::new(w.channel.clone())
            .update_organization(authed(
                org::UpdateOrganizationRequest {
                    organization: Some(org::Organization {
                        name: child.name.clone(),
                        settings: Some(org::OrganizationSettings {
                            allowed_email_domains: vec!["example.com".into()],
                            ..Default::default()
                        }),
                        etag: child.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["settings.allowed_email_domains".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        w.add_member(&ada, &root_id, &bob, &["roles/member"]).await;
        let mut members = Members::new(w.channel.clone());
        let refused = members
            .create_membership(authed(
                pb::CreateMembershipRequest {
                    parent: child.name.clone(),
                    membership: Some(pb::Membership {
                        user: format!("users/{}", bob.id),
                        roles: vec!["roles/member".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert_eq!(
            refused.get_details_error_info().unwrap().reason,
            "EMAIL_DOMAIN_NOT_ALLOWED"
        );
        let listed = members
            .list_memberships(authed(
                pb::ListMembershipsRequest {
                    parent: child.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships;
        assert!(listed.iter().all(|m| m.user != format!("users/{}", bob.id)));
        w.sandbox.shutdown().await.unwrap();
    }
}

/// The Org & RBAC page's permission matrix, as any client sees it through
/// CheckBulkPermissions: Owner, Admin, Finance and Member, on the
/// organization, a team and a project, in both project visibilities (the
/// member column is the one visibility changes, and only on projects).
#[tokio::test]
async fn the_org_and_rbac_permission_matrix_holds_for_every_role() {
    // (permission, type, owner, admin, finance, member with ALL_MEMBERS)
    const MATRIX: &[(&str, &str, [bool; 4])] = &[
        (
            "organization.read",
            "organization",
            [true, true, true, true],
        ),
        (
            "organization.settings.manage",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.members.read",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.members.invite",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.members.manage",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.teams.create",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.departments.create",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.suborganizations.create",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.api_keys.create",
            "organization",
            [true, true, false, false],
        ),
        (
            "organization.delete",
            "organization",
            [true, false, false, false],
        ),
        (
            "organization.deactivate",
            "organization",
            [true, false, false, false],
        ),
        (
            "organization.ownership.transfer",
            "organization",
            [true, false, false, false],
        ),
        ("billing.read", "organization", [true, false, true, false]),
        ("billing.manage", "organization", [true, false, true, false]),
        ("project.create", "organization", [true, true, false, false]),
        ("audit.read", "organization", [true, true, false, false]),
        ("authz.write", "organization", [true, true, false, false]),
        ("team.read", "team", [true, true, false, true]),
        ("team.manage", "team", [true, true, false, false]),
        ("team.members.manage", "team", [true, true, false, false]),
        ("project.read", "project", [true, true, false, true]),
        ("resources.use", "project", [true, true, false, true]),
        ("project.manage", "project", [true, true, false, false]),
        (
            "project.grants.manage",
            "project",
            [true, true, false, false],
        ),
        ("project.delete", "project", [true, true, false, false]),
    ];
    for storage in storages() {
        let w = World::start(storage).await;
        let owner = w.user("owner@example.com").await;
        let people = [
            w.user("admin@example.com").await,
            w.user("finance@example.com").await,
            w.user("member@example.com").await,
        ];
        for visibility in [
            org::ProjectVisibility::AllMembers,
            org::ProjectVisibility::Granted,
        ] {
            let acme = w.organization_with(&owner, "Acme", None, visibility).await;
            let acme_id = id(&acme.name);
            let project = w.project(&owner, &acme_id, "Rocket").await;
            let team = id(&Teams::new(w.channel.clone())
                .create_team(authed(
                    org::CreateTeamRequest {
                        parent: acme.name.clone(),
                        team: Some(org::Team {
                            display_name: "Core".into(),
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                    &owner.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .team
                .unwrap()
                .name);
            for (person, role) in
                people
                    .iter()
                    .zip(["roles/admin", "roles/finance", "roles/member"])
            {
                w.add_member(&owner, &acme_id, person, &[role]).await;
            }
            let users = [&owner, &people[0], &people[1], &people[2]];
            for (column, user) in users.iter().enumerate() {
                let items = MATRIX
                    .iter()
                    .map(
                        |(permission, object_type, _)| authz::CheckBulkPermissionsRequestItem {
                            resource: object(
                                object_type,
                                match *object_type {
                                    "organization" => &acme_id,
                                    "team" => &team,
                                    _ => &project,
                                },
                            ),
                            permission: permission.to_string(),
                            subject: subject(&user.id),
                        },
                    )
                    .collect();
                let pairs = w
                    .authz()
                    .check_bulk_permissions(authed(
                        authz::CheckBulkPermissionsRequest {
                            consistency: None,
                            items,
                        },
                        &user.token,
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .pairs;
                for ((permission, object_type, expected), pair) in MATRIX.iter().zip(pairs) {
                    let Some(authz::check_bulk_permissions_pair::Response::Item(item)) =
                        pair.response
                    else {
                        panic!("{permission}: {:?}", pair.response);
                    };
                    // Where members see only their granted projects, the
                    // member column loses its project permissions, and
                    // nothing else changes.
                    let hidden = column == 3
                        && *object_type == "project"
                        && visibility == org::ProjectVisibility::Granted;
                    let want = expected[column] && !hidden;
                    assert_eq!(
                        item.permissionship() == authz::Permissionship::Allowed,
                        want,
                        "{visibility:?}: column {column} {permission} on {object_type}"
                    );
                }
            }
        }
        w.sandbox.shutdown().await.unwrap();
    }
}
