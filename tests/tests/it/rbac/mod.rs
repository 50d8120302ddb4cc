//! The rbac service and its authorization engine end to end, with the real
//! identity and organization services: the organization's events build the
//! tree in the index, owners get their membership from
//! `organization.created`, and every check is a gRPC call. On SQLite and
//! Postgres; two rbac processes on one Postgres follow the same store.

//!
//! By concern: the role matrix and its tree, custom roles with teams and
//! grants, invitations, checks that must be refused, object types that
//! services register, the index and its watch, and Foothold's tenants.

mod checks;
mod custom_roles;
mod foothold;
mod index;
mod invitations;
mod matrix;
mod object_types;

use std::time::Duration;

use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tenantry_testkit::check::{fresh, object, user as subject};
use tenantry_testkit::clients::{
    Authz, Grants, Members, Orgs, Projects, Roles, TeamMembers, Teams,
};
use tenantry_testkit::people::{self, User};
use tenantry_testkit::{Sandbox, Storage, authed, eventually, last_id as id, storages};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

struct World {
    sandbox: Sandbox,
    channel: Channel,
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
        people::sign_up(&self.channel, email, email).await.0
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
