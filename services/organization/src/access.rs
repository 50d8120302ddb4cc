//! Who may do what, asked of the rbac service over its contracts. This is
//! the one place the organization service talks to rbac: permission checks
//! (single and bulk), a member's roles and email, the caller's own
//! memberships, and whether a project still has grants or resources.
//!
//! Every call is made on the caller's behalf with the caller's own bearer
//! token (the organization service holds no credentials of its own), so
//! rbac answers exactly what the caller may know. Failures close: when rbac
//! cannot answer, the request fails with UNAVAILABLE, never a yes.

use tenantry_kit::auth::{BearerToken, Principal, PrincipalKind};
use tenantry_kit::error::{Code, Error, Result};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;
use tonic::transport::Channel;

/// The most checks rbac answers in one bulk call.
const BULK_LIMIT: usize = 1000;

/// The caller of a request: who, with which token, from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub(crate) bearer: Option<BearerToken>,
    pub request: events::RequestContext,
}

impl Caller {
    /// The caller of a request the auth layer let through.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Caller> {
        Ok(Caller {
            principal: Principal::from_request(request)?.clone(),
            bearer: BearerToken::from_request(request).cloned(),
            request: tenantry_kit::request::request_context(request),
        })
    }

    /// The caller's id.
    pub fn id(&self) -> &str {
        &self.principal.id
    }

    /// Whether the caller is a signed-in user.
    pub fn is_user(&self) -> bool {
        self.principal.kind == PrincipalKind::User
    }

    /// Whether the caller is another Tenantry service (identity creating a
    /// first organization, or reading sign-in settings).
    pub fn is_internal(&self) -> bool {
        self.principal.internal_service().is_some()
    }

    /// The actor of the events this caller causes.
    pub fn actor(&self) -> events::Actor {
        tenantry_kit::request::actor(&self.principal)
    }

    /// The caller as a resource name, for `created_by`.
    pub fn resource_name(&self) -> String {
        match self.principal.kind {
            PrincipalKind::User => format!("users/{}", self.principal.id),
            PrincipalKind::ApiKey => format!("apiKeys/{}", self.principal.id),
            PrincipalKind::ServiceAccount if self.is_internal() => {
                format!("services/{}", self.principal.id)
            }
            PrincipalKind::ServiceAccount => format!("serviceAccounts/{}", self.principal.id),
        }
    }

    fn subject(&self) -> authz_pb::SubjectReference {
        authz_pb::SubjectReference {
            object: Some(authz_pb::ObjectReference {
                object_type: self.principal.kind.as_str().to_string(),
                object_id: self.principal.id.clone(),
            }),
            optional_relation: String::new(),
        }
    }

    /// Whether the token's own limits allow `permission` at all: an API key
    /// carries the permissions it is limited to.
    fn token_allows(&self, permission: &str) -> bool {
        self.principal
            .permissions
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|p| p == permission))
    }
}

/// An object permissions are checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object<'a> {
    Organization(&'a str),
    Team(&'a str),
    Project(&'a str),
}

impl Object<'_> {
    fn reference(self) -> authz_pb::ObjectReference {
        let (object_type, object_id) = match self {
            Object::Organization(id) => ("organization", id),
            Object::Team(id) => ("team", id),
            Object::Project(id) => ("project", id),
        };
        authz_pb::ObjectReference {
            object_type: object_type.to_string(),
            object_id: object_id.to_string(),
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
    rbac: Channel,
}

fn unavailable(status: tonic::Status) -> Error {
    Error::new(
        Code::Unavailable,
        "DEPENDENCY_UNAVAILABLE",
        "the authorization service is unavailable",
    )
    .with_domain("organization")
    .with_source(anyhow::anyhow!("{}: {}", status.code(), status.message()))
}

impl Access {
    /// A client of rbac over `rbac` (see `kit::service::peer_channel`).
    pub fn new(rbac: Channel) -> Access {
        Access { rbac }
    }

    fn request<T>(&self, caller: &Caller, message: T) -> tonic::Request<T> {
        tenantry_kit::request::on_behalf(caller.bearer.as_ref(), message)
    }

    /// Whether the caller holds `permission` on `object`.
    pub async fn check(
        &self,
        caller: &Caller,
        object: Object<'_>,
        permission: &str,
    ) -> Result<bool> {
        Ok(self.check_all(caller, &[(object, permission)]).await?[0])
    }

    /// Whether the caller holds each (object, permission), in order, in as
    /// few bulk calls as rbac allows.
    pub async fn check_all(
        &self,
        caller: &Caller,
        checks: &[(Object<'_>, &str)],
    ) -> Result<Vec<bool>> {
        let mut answers = vec![false; checks.len()];
        // Only what the token's own limits allow is worth asking about.
        let asked: Vec<usize> = (0..checks.len())
            .filter(|&i| caller.token_allows(checks[i].1))
            .collect();
        let mut client = authz_pb::authorization_service_client::AuthorizationServiceClient::new(
            self.rbac.clone(),
        );
        for chunk in asked.chunks(BULK_LIMIT) {
            let items = chunk
                .iter()
                .map(|&i| authz_pb::CheckBulkPermissionsRequestItem {
                    resource: Some(checks[i].0.reference()),
                    permission: checks[i].1.to_string(),
                    subject: Some(caller.subject()),
                })
                .collect();
            let response = client
                .check_bulk_permissions(self.request(
                    caller,
                    authz_pb::CheckBulkPermissionsRequest {
                        consistency: None,
                        items,
                    },
                ))
                .await
                .map_err(unavailable)?
                .into_inner();
            for (&i, pair) in chunk.iter().zip(response.pairs) {
                answers[i] = matches!(
                    pair.response,
                    Some(authz_pb::check_bulk_permissions_pair::Response::Item(item))
                        if item.permissionship() == authz_pb::Permissionship::Allowed
                );
            }
        }
        Ok(answers)
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
            rbac_pb::membership_service_client::MembershipServiceClient::new(self.rbac.clone());
        let request = self.request(
            caller,
            rbac_pb::GetMembershipRequest {
                name: format!("organizations/{organization_id}/memberships/{user_id}"),
            },
        );
        match client.get_membership(request).await {
            Ok(response) => {
                let membership = response.into_inner().membership.unwrap_or_default();
                Ok((!membership.external).then_some(Member {
                    email: membership.user_email,
                    roles: membership.roles,
                }))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(unavailable(status)),
        }
    }

    /// The organizations the calling user is a member of, with their roles.
    pub async fn my_memberships(&self, caller: &Caller) -> Result<Vec<(String, Vec<String>)>> {
        let mut client =
            rbac_pb::membership_service_client::MembershipServiceClient::new(self.rbac.clone());
        let mut memberships = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = self.request(
                caller,
                rbac_pb::ListUserMembershipsRequest {
                    parent: format!("users/{}", caller.id()),
                    page_size: 1000,
                    page_token: page_token.clone(),
                },
            );
            let response = client
                .list_user_memberships(request)
                .await
                .map_err(unavailable)?
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
        let mut grants = rbac_pb::project_grant_service_client::ProjectGrantServiceClient::new(
            self.rbac.clone(),
        );
        let granted = grants
            .list_project_grants(self.request(
                caller,
                rbac_pb::ListProjectGrantsRequest {
                    parent: format!("organizations/{organization_id}/projects/{project_id}"),
                    page_size: 1,
                    ..Default::default()
                },
            ))
            .await
            .map_err(unavailable)?
            .into_inner();
        if !granted.project_grants.is_empty() {
            return Ok(true);
        }
        let mut authz = authz_pb::authorization_service_client::AuthorizationServiceClient::new(
            self.rbac.clone(),
        );
        let children = authz
            .read_relationships(self.request(
                caller,
                authz_pb::ReadRelationshipsRequest {
                    consistency: Some(authz_pb::Consistency {
                        requirement: Some(authz_pb::consistency::Requirement::FullyConsistent(
                            true,
                        )),
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
                    organization: format!("organizations/{organization_id}"),
                    page_size: 1,
                    page_token: String::new(),
                },
            ))
            .await
            .map_err(unavailable)?
            .into_inner();
        Ok(!children.relationships.is_empty())
    }
}
