//! A stand-in for the organization, rbac and billing services, serving their
//! real gRPC contracts from an in-memory table, for testing a service
//! against those contracts before (or without) the services themselves. It
//! checks no credentials: it plays the other side of the contract, not its
//! security.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::organization::v1 as org_pb;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;
use tonic::{Request, Response, Status};

/// What the stand-in rbac knows: (user, organization) memberships and
/// (subject, object id, permission) grants.
#[derive(Debug, Default)]
pub struct Directory {
    pub members: HashSet<(String, String)>,
    /// (subject id, object id, permission): the object may be an
    /// organization, a team or a project.
    pub grants: HashSet<(String, String, String)>,
    /// Users' email addresses, reported in memberships.
    pub emails: std::collections::HashMap<String, String>,
    /// Projects that have access grants.
    pub granted_projects: HashSet<String>,
    /// Projects that other services registered resources in.
    pub used_projects: HashSet<String>,
    /// Quotas: (organization, metric) → (limit, used).
    pub quotas: std::collections::HashMap<(String, i32), (i64, i64)>,
    /// Every permission check asked: (subject type, subject id, object id,
    /// permission).
    pub checks: Vec<(String, String, String, String)>,
    /// Organizations that require MFA.
    pub require_mfa: HashSet<String>,
    /// Organizations created through CreateOrganization: (id, owner).
    pub created: Vec<(String, String)>,
    /// Team memberships: (organization, team, user).
    pub team_members: HashSet<(String, String, String)>,
    /// Pending invitations: token → (organization, email).
    pub invitations: std::collections::HashMap<String, (String, String)>,
    /// When set, permission checks answer UNAVAILABLE (rbac down).
    pub checks_unavailable: bool,
}

/// Serves the organization, membership and authorization contracts from an
/// in-memory [`Directory`] the test edits.
#[derive(Debug, Clone, Default)]
pub struct DirectoryStandIn(Arc<Mutex<Directory>>);

impl DirectoryStandIn {
    /// The state, to read or change.
    pub fn state(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.0.lock().expect("stand-in lock")
    }

    /// Serves the stand-in on a free loopback port; returns its URL.
    pub async fn start(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    authz_pb::authorization_service_server::AuthorizationServiceServer::new(
                        self.clone(),
                    ),
                )
                .add_service(
                    rbac_pb::membership_service_server::MembershipServiceServer::new(self.clone()),
                )
                .add_service(
                    org_pb::organization_service_server::OrganizationServiceServer::new(
                        self.clone(),
                    ),
                )
                .add_service(
                    rbac_pb::invitation_service_server::InvitationServiceServer::new(self.clone()),
                )
                .add_service(
                    rbac_pb::team_member_service_server::TeamMemberServiceServer::new(self.clone()),
                )
                .add_service(
                    rbac_pb::project_grant_service_server::ProjectGrantServiceServer::new(
                        self.clone(),
                    ),
                )
                .add_service(
                    billing_pb::entitlement_service_server::EntitlementServiceServer::new(
                        self.clone(),
                    ),
                )
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Ok(format!("http://{addr}"))
    }
}

impl DirectoryStandIn {
    /// Answers one check from the grants, and records it.
    fn decide(
        &self,
        resource: Option<authz_pb::ObjectReference>,
        permission: &str,
        subject: Option<authz_pb::SubjectReference>,
    ) -> authz_pb::Permissionship {
        let subject = subject.and_then(|s| s.object).unwrap_or_default();
        let object = resource.map(|r| r.object_id).unwrap_or_default();
        let mut state = self.state();
        state.checks.push((
            subject.object_type.clone(),
            subject.object_id.clone(),
            object.clone(),
            permission.to_string(),
        ));
        if state
            .grants
            .contains(&(subject.object_id, object, permission.to_string()))
        {
            authz_pb::Permissionship::Allowed
        } else {
            authz_pb::Permissionship::Denied
        }
    }
}

#[tonic::async_trait]
impl authz_pb::authorization_service_server::AuthorizationService for DirectoryStandIn {
    async fn check_permission(
        &self,
        request: Request<authz_pb::CheckPermissionRequest>,
    ) -> Result<Response<authz_pb::CheckPermissionResponse>, Status> {
        if self.state().checks_unavailable {
            return Err(Status::unavailable("the stand-in's checks are down"));
        }
        let request = request.into_inner();
        if let Some(resource) = &request.resource
            && of_another_type(&resource.object_type, &request.permission)
        {
            // As rbac answers: the permission is checked against the type
            // (built-in vocabulary) before any grant.
            return Err(tenantry_kit::error::Error::new(
                tenantry_kit::error::Code::InvalidArgument,
                "PERMISSION_OF_ANOTHER_TYPE",
                "invalid `permission`: it is not a permission of the resource's type",
            )
            .with_violation("permission", "is not a permission of the resource's type")
            .into());
        }
        let permissionship = self.decide(request.resource, &request.permission, request.subject);
        Ok(Response::new(authz_pb::CheckPermissionResponse {
            permissionship: permissionship as i32,
            ..Default::default()
        }))
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<authz_pb::CheckBulkPermissionsRequest>,
    ) -> Result<Response<authz_pb::CheckBulkPermissionsResponse>, Status> {
        let pairs = request
            .into_inner()
            .items
            .into_iter()
            .map(|item| {
                let permissionship = self.decide(
                    item.resource.clone(),
                    &item.permission,
                    item.subject.clone(),
                );
                authz_pb::CheckBulkPermissionsPair {
                    request: Some(item),
                    response: Some(authz_pb::check_bulk_permissions_pair::Response::Item(
                        authz_pb::CheckBulkPermissionsResponseItem {
                            permissionship: permissionship as i32,
                        },
                    )),
                }
            })
            .collect();
        Ok(Response::new(authz_pb::CheckBulkPermissionsResponse {
            checked_at: None,
            pairs,
        }))
    }

    async fn read_relationships(
        &self,
        request: Request<authz_pb::ReadRelationshipsRequest>,
    ) -> Result<Response<authz_pb::ReadRelationshipsResponse>, Status> {
        let project = request
            .into_inner()
            .relationship_filter
            .and_then(|f| f.optional_subject_filter)
            .map(|f| f.optional_subject_id)
            .unwrap_or_default();
        let relationships = if self.state().used_projects.contains(&project) {
            vec![authz_pb::Relationship {
                resource: Some(authz_pb::ObjectReference {
                    object_type: "deployment".into(),
                    object_id: "d1".into(),
                }),
                relation: "parent".into(),
                subject: Some(authz_pb::SubjectReference {
                    object: Some(authz_pb::ObjectReference {
                        object_type: "project".into(),
                        object_id: project,
                    }),
                    optional_relation: String::new(),
                }),
            }]
        } else {
            Vec::new()
        };
        Ok(Response::new(authz_pb::ReadRelationshipsResponse {
            relationships,
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl rbac_pb::project_grant_service_server::ProjectGrantService for DirectoryStandIn {
    async fn list_project_grants(
        &self,
        request: Request<rbac_pb::ListProjectGrantsRequest>,
    ) -> Result<Response<rbac_pb::ListProjectGrantsResponse>, Status> {
        let project = request
            .into_inner()
            .parent
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let project_grants = if self.state().granted_projects.contains(&project) {
            vec![rbac_pb::ProjectGrant::default()]
        } else {
            Vec::new()
        };
        Ok(Response::new(rbac_pb::ListProjectGrantsResponse {
            project_grants,
            next_page_token: String::new(),
        }))
    }
}

#[tonic::async_trait]
impl billing_pb::entitlement_service_server::EntitlementService for DirectoryStandIn {
    async fn check_quota(
        &self,
        request: Request<billing_pb::CheckQuotaRequest>,
    ) -> Result<Response<billing_pb::CheckQuotaResponse>, Status> {
        let request = request.into_inner();
        let organization = request
            .organization
            .trim_start_matches("organizations/")
            .to_string();
        let quota = self
            .state()
            .quotas
            .get(&(organization, request.metric))
            .copied();
        Ok(Response::new(match quota {
            Some((limit, used)) => billing_pb::CheckQuotaResponse {
                allowed: used + request.delta <= limit,
                limit: Some(limit),
                used,
                remaining: Some((limit - used).max(0)),
                reason: if used + request.delta <= limit {
                    billing_pb::check_quota_response::Reason::WithinLimit as i32
                } else {
                    billing_pb::check_quota_response::Reason::LimitExceeded as i32
                },
                ..Default::default()
            },
            None => billing_pb::CheckQuotaResponse {
                allowed: true,
                reason: billing_pb::check_quota_response::Reason::Unlimited as i32,
                ..Default::default()
            },
        }))
    }
}

#[tonic::async_trait]
impl rbac_pb::membership_service_server::MembershipService for DirectoryStandIn {
    async fn get_membership(
        &self,
        request: Request<rbac_pb::GetMembershipRequest>,
    ) -> Result<Response<rbac_pb::GetMembershipResponse>, Status> {
        let name = request.into_inner().name;
        let parts: Vec<&str> = name.split('/').collect();
        let [_, organization, _, user] = parts.as_slice() else {
            return Err(Status::invalid_argument("bad name"));
        };
        let state = self.state();
        if !state
            .members
            .contains(&(user.to_string(), organization.to_string()))
        {
            return Err(Status::not_found("membership not found"));
        }
        Ok(Response::new(rbac_pb::GetMembershipResponse {
            membership: Some(rbac_pb::Membership {
                name: name.clone(),
                user: format!("users/{user}"),
                roles: vec!["roles/member".into()],
                user_email: state.emails.get(*user).cloned().unwrap_or_default(),
                ..Default::default()
            }),
        }))
    }

    async fn list_user_memberships(
        &self,
        request: Request<rbac_pb::ListUserMembershipsRequest>,
    ) -> Result<Response<rbac_pb::ListUserMembershipsResponse>, Status> {
        let user = request
            .into_inner()
            .parent
            .trim_start_matches("users/")
            .to_string();
        let memberships = self
            .0
            .lock()
            .unwrap()
            .members
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(u, org)| rbac_pb::Membership {
                name: format!("organizations/{org}/memberships/{u}"),
                roles: vec!["roles/admin".into()],
                ..Default::default()
            })
            .collect();
        Ok(Response::new(rbac_pb::ListUserMembershipsResponse {
            memberships,
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl org_pb::organization_service_server::OrganizationService for DirectoryStandIn {
    async fn get_organization(
        &self,
        request: Request<org_pb::GetOrganizationRequest>,
    ) -> Result<Response<org_pb::GetOrganizationResponse>, Status> {
        let id = request
            .into_inner()
            .name
            .trim_start_matches("organizations/")
            .to_string();
        let require_mfa = self.0.lock().unwrap().require_mfa.contains(&id);
        Ok(Response::new(org_pb::GetOrganizationResponse {
            organization: Some(org_pb::Organization {
                name: format!("organizations/{id}"),
                state: org_pb::OrganizationState::Active as i32,
                settings: Some(org_pb::OrganizationSettings {
                    require_mfa,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }))
    }

    async fn create_organization(
        &self,
        request: Request<org_pb::CreateOrganizationRequest>,
    ) -> Result<Response<org_pb::CreateOrganizationResponse>, Status> {
        let organization = request.into_inner().organization.unwrap_or_default();
        let owner = organization.owner.trim_start_matches("users/").to_string();
        let id = tenantry_kit::id::new_id().to_string();
        let mut directory = self.0.lock().unwrap();
        directory.members.insert((owner.clone(), id.clone()));
        directory.created.push((id.clone(), owner));
        Ok(Response::new(org_pb::CreateOrganizationResponse {
            organization: Some(org_pb::Organization {
                name: format!("organizations/{id}"),
                ..organization
            }),
            default_project: None,
        }))
    }
}

#[tonic::async_trait]
impl rbac_pb::invitation_service_server::InvitationService for DirectoryStandIn {
    async fn lookup_invitation(
        &self,
        request: Request<rbac_pb::LookupInvitationRequest>,
    ) -> Result<Response<rbac_pb::LookupInvitationResponse>, Status> {
        let token = request.into_inner().token;
        let (organization, email) = self
            .state()
            .invitations
            .get(&token)
            .cloned()
            .ok_or_else(|| Status::not_found("invitation not found"))?;
        Ok(Response::new(rbac_pb::LookupInvitationResponse {
            preview: Some(rbac_pb::InvitationPreview {
                organization: format!("organizations/{organization}"),
                email,
                ..Default::default()
            }),
        }))
    }

    /// Accepts as the user named by the bearer token's `sub` (read, not
    /// verified: the stand-in plays the contract, not its security).
    async fn accept_invitation(
        &self,
        request: Request<rbac_pb::AcceptInvitationRequest>,
    ) -> Result<Response<rbac_pb::AcceptInvitationResponse>, Status> {
        let user = bearer_subject(&request).ok_or_else(|| Status::unauthenticated("no token"))?;
        let token = request.into_inner().token;
        let mut state = self.state();
        let (organization, _) = state
            .invitations
            .remove(&token)
            .ok_or_else(|| Status::not_found("invitation not found"))?;
        state.members.insert((user.clone(), organization.clone()));
        Ok(Response::new(rbac_pb::AcceptInvitationResponse {
            membership: Some(rbac_pb::Membership {
                name: format!("organizations/{organization}/memberships/{user}"),
                user: format!("users/{user}"),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// The `sub` claim of the request's bearer token, unverified.
fn bearer_subject<T>(request: &Request<T>) -> Option<String> {
    use base64::Engine;
    let header = request.metadata().get("authorization")?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str().map(str::to_string)
}

#[tonic::async_trait]
impl rbac_pb::team_member_service_server::TeamMemberService for DirectoryStandIn {
    async fn get_team_member(
        &self,
        request: Request<rbac_pb::GetTeamMemberRequest>,
    ) -> Result<Response<rbac_pb::GetTeamMemberResponse>, Status> {
        let name = request.into_inner().name;
        let parts: Vec<&str> = name.split('/').collect();
        let [_, organization, _, team, _, user] = parts.as_slice() else {
            return Err(Status::invalid_argument("bad name"));
        };
        let key = (organization.to_string(), team.to_string(), user.to_string());
        if self.state().team_members.contains(&key) {
            Ok(Response::new(rbac_pb::GetTeamMemberResponse::default()))
        } else {
            Err(Status::not_found("team member not found"))
        }
    }
}

/// Whether a built-in permission belongs to another built-in type than the
/// object's (unknown names are left to the grants, as the tests write them).
fn of_another_type(object_type: &str, permission: &str) -> bool {
    let schema = tenantry_rbac::engine::Schema::built_in();
    match (schema.type_id(object_type), schema.permission(permission)) {
        (Some(kind), Some(bit)) => schema.resource_type(kind).permissions & bit == 0,
        _ => false,
    }
}
