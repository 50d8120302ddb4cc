//! Who may do what, asked of the rbac service over its contracts. This is
//! the one place the organization service talks to rbac: permission checks
//! (single and bulk), a member's roles and email, the caller's own
//! memberships, and whether a project still has grants or resources.
//!
//! Every call is made on the caller's behalf with the caller's own bearer
//! token (the organization service holds no credentials of its own), so
//! rbac answers exactly what the caller may know. Failures close: when rbac
//! cannot answer, the request fails with UNAVAILABLE, never a yes.

use tenantry_kit::access::Checker;
use tenantry_kit::error::Result;
use tenantry_kit::names::{OrganizationName, ProjectName, UserName};
use tenantry_kit::peer::PeerChannel;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;

pub use tenantry_kit::access::Caller;

/// An object permissions are checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object<'a> {
    Organization(&'a str),
    Team(&'a str),
    Project(&'a str),
}

impl<'a> Object<'a> {
    fn reference(self) -> (&'static str, &'a str) {
        match self {
            Object::Organization(id) => ("organization", id),
            Object::Team(id) => ("team", id),
            Object::Project(id) => ("project", id),
        }
    }
}

/// A member of an organization, as rbac reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub email: String,
    pub roles: Vec<String>,
}

/// The client of rbac's authorization and membership contracts.
#[derive(Debug, Clone)]
pub struct Access {
    checker: Checker,
}

impl Access {
    /// A client of rbac over `rbac`.
    pub fn new(rbac: PeerChannel) -> Access {
        Access {
            checker: Checker::new(rbac, "organization"),
        }
    }

    fn rbac(&self) -> PeerChannel {
        self.checker.channel().clone()
    }

    fn unavailable(&self, status: tonic::Status) -> tenantry_kit::error::Error {
        self.checker.unavailable(status)
    }

    /// Whether the caller holds `permission` on `object`.
    pub async fn check(
        &self,
        caller: &Caller,
        object: Object<'_>,
        permission: Permission,
    ) -> Result<bool> {
        Ok(self.check_all(caller, &[(object, permission)]).await?[0])
    }

    /// Whether the caller holds each (object, permission), in order.
    pub async fn check_all(
        &self,
        caller: &Caller,
        checks: &[(Object<'_>, Permission)],
    ) -> Result<Vec<bool>> {
        let checks: Vec<_> = checks
            .iter()
            .map(|&(object, permission)| (object.reference(), permission))
            .collect();
        self.checker.check_all(caller, &checks).await
    }

    /// A member of an organization (their email and roles), or `None` when
    /// the user is not one.
    pub async fn member(
        &self,
        caller: &Caller,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<Member>> {
        let mut client =
            rbac_pb::membership_service_client::MembershipServiceClient::new(self.rbac());
        let request = caller.on_behalf(rbac_pb::GetMembershipRequest {
            name: format!("organizations/{organization_id}/memberships/{user_id}"),
        });
        match client.get_membership(request).await {
            Ok(response) => {
                let membership = response.into_inner().membership.unwrap_or_default();
                Ok((!membership.external).then_some(Member {
                    email: membership.user_email,
                    roles: membership.roles,
                }))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(self.unavailable(status)),
        }
    }

    /// The organizations the calling user is a member of, with their roles.
    pub async fn my_memberships(&self, caller: &Caller) -> Result<Vec<(String, Vec<String>)>> {
        let mut client =
            rbac_pb::membership_service_client::MembershipServiceClient::new(self.rbac());
        let mut memberships = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = caller.on_behalf(rbac_pb::ListUserMembershipsRequest {
                parent: UserName::new(caller.id()).to_string(),
                page_size: 1000,
                page_token: page_token.clone(),
            });
            let response = client
                .list_user_memberships(request)
                .await
                .map_err(|status| self.unavailable(status))?
                .into_inner();
            for membership in response.memberships {
                let organization = membership.name.split('/').nth(1).unwrap_or_default();
                if !organization.is_empty() && !membership.external {
                    memberships.push((organization.to_string(), membership.roles));
                }
            }
            if response.next_page_token.is_empty() {
                return Ok(memberships);
            }
            page_token = response.next_page_token;
        }
    }

    /// Whether a project still has access grants, or resources registered
    /// in it by other services (relationships naming it as their parent).
    pub async fn project_in_use(
        &self,
        caller: &Caller,
        organization_id: &str,
        project_id: &str,
    ) -> Result<bool> {
        let mut grants =
            rbac_pb::project_grant_service_client::ProjectGrantServiceClient::new(self.rbac());
        let granted = grants
            .list_project_grants(caller.on_behalf(rbac_pb::ListProjectGrantsRequest {
                parent: ProjectName::new(organization_id, project_id).to_string(),
                page_size: 1,
                ..Default::default()
            }))
            .await
            .map_err(|status| self.unavailable(status))?
            .into_inner();
        if !granted.project_grants.is_empty() {
            return Ok(true);
        }
        let mut authz =
            authz_pb::authorization_service_client::AuthorizationServiceClient::new(self.rbac());
        let children = authz
            .read_relationships(caller.on_behalf(authz_pb::ReadRelationshipsRequest {
                consistency: Some(authz_pb::Consistency {
                    requirement: Some(authz_pb::consistency::Requirement::FullyConsistent(true)),
                }),
                relationship_filter: Some(authz_pb::RelationshipFilter {
                    resource_type: String::new(),
                    optional_resource_id: String::new(),
                    optional_relation: "parent".into(),
                    optional_subject_filter: Some(authz_pb::SubjectFilter {
                        subject_type: "project".into(),
                        optional_subject_id: project_id.to_string(),
                        ..Default::default()
                    }),
                }),
                organization: OrganizationName::new(organization_id).to_string(),
                page_size: 1,
                page_token: String::new(),
            }))
            .await
            .map_err(|status| self.unavailable(status))?
            .into_inner();
        Ok(!children.relationships.is_empty())
    }
}
