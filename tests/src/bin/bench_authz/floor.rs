//! The transport floor: a bare tonic server with the authorization
//! service's contract that answers `CheckPermission` and
//! `CheckBulkPermissions` from a hash map, with no authentication,
//! telemetry, consistency or any other layer. The same client measures it
//! and Tenantry in one run; what a check costs beyond it is what Tenantry
//! adds.

use std::collections::HashMap;

use tenantry_proto::tenantry::authz::v1 as authz;
use tonic::{Request, Response, Status};

/// (resource type, resource id, permission, subject type, subject id).
type Question = (String, String, String, String, String);

/// The floor's answers: each question's permissionship, and the
/// consistency token Tenantry answered with, so that both send the same
/// bytes back.
pub struct Floor {
    answers: HashMap<Question, authz::Permissionship>,
    checked_at: Option<authz::ZedToken>,
}

impl Floor {
    /// A floor that allows `allowed` and denies anything else, answering
    /// with `checked_at`.
    pub fn new(
        allowed: &authz::CheckPermissionRequest,
        checked_at: Option<authz::ZedToken>,
    ) -> Floor {
        let question = question(&allowed.resource, &allowed.permission, &allowed.subject);
        Floor {
            answers: HashMap::from([(question, authz::Permissionship::Allowed)]),
            checked_at,
        }
    }

    fn answer(
        &self,
        resource: &Option<authz::ObjectReference>,
        permission: &str,
        subject: &Option<authz::SubjectReference>,
    ) -> authz::Permissionship {
        self.answers
            .get(&question(resource, permission, subject))
            .copied()
            .unwrap_or(authz::Permissionship::Denied)
    }

    /// Serves the floor on a free port of loopback; answers its URL.
    pub async fn serve(self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Accepted sockets take no delay from Nagle's algorithm, as
        // Tenantry's do: a bulk answer in two writes would otherwise wait
        // for a delayed acknowledgement.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    authz::authorization_service_server::AuthorizationServiceServer::new(self),
                )
                .serve_with_incoming(incoming),
        );
        Ok(format!("http://{addr}"))
    }
}

fn question(
    resource: &Option<authz::ObjectReference>,
    permission: &str,
    subject: &Option<authz::SubjectReference>,
) -> Question {
    let resource = resource.clone().unwrap_or_default();
    let subject = subject
        .clone()
        .unwrap_or_default()
        .object
        .unwrap_or_default();
    (
        resource.object_type,
        resource.object_id,
        permission.to_string(),
        subject.object_type,
        subject.object_id,
    )
}

fn not_measured() -> Status {
    Status::unimplemented("the floor answers checks only")
}

#[tonic::async_trait]
impl authz::authorization_service_server::AuthorizationService for Floor {
    async fn check_permission(
        &self,
        request: Request<authz::CheckPermissionRequest>,
    ) -> Result<Response<authz::CheckPermissionResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(authz::CheckPermissionResponse {
            checked_at: self.checked_at.clone(),
            permissionship: self
                .answer(&request.resource, &request.permission, &request.subject)
                .into(),
            debug_trace: None,
        }))
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<authz::CheckBulkPermissionsRequest>,
    ) -> Result<Response<authz::CheckBulkPermissionsResponse>, Status> {
        let pairs = request
            .into_inner()
            .items
            .into_iter()
            .map(|item| {
                let permissionship = self.answer(&item.resource, &item.permission, &item.subject);
                authz::CheckBulkPermissionsPair {
                    request: Some(item),
                    response: Some(authz::check_bulk_permissions_pair::Response::Item(
                        authz::CheckBulkPermissionsResponseItem {
                            permissionship: permissionship.into(),
                        },
                    )),
                }
            })
            .collect();
        Ok(Response::new(authz::CheckBulkPermissionsResponse {
            checked_at: self.checked_at.clone(),
            pairs,
        }))
    }

    async fn lookup_resources(
        &self,
        _: Request<authz::LookupResourcesRequest>,
    ) -> Result<Response<authz::LookupResourcesResponse>, Status> {
        Err(not_measured())
    }

    async fn lookup_subjects(
        &self,
        _: Request<authz::LookupSubjectsRequest>,
    ) -> Result<Response<authz::LookupSubjectsResponse>, Status> {
        Err(not_measured())
    }

    async fn write_relationships(
        &self,
        _: Request<authz::WriteRelationshipsRequest>,
    ) -> Result<Response<authz::WriteRelationshipsResponse>, Status> {
        Err(not_measured())
    }

    async fn delete_relationships(
        &self,
        _: Request<authz::DeleteRelationshipsRequest>,
    ) -> Result<Response<authz::DeleteRelationshipsResponse>, Status> {
        Err(not_measured())
    }

    async fn read_relationships(
        &self,
        _: Request<authz::ReadRelationshipsRequest>,
    ) -> Result<Response<authz::ReadRelationshipsResponse>, Status> {
        Err(not_measured())
    }

    async fn watch(
        &self,
        _: Request<authz::WatchRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<authz::WatchResponse>>, Status> {
        Err(not_measured())
    }
}
