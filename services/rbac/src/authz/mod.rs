//! `AuthorizationService`: checks, bulk checks and lookups answered from
//! this replica's index, at the freshness the caller asks for.
//!
//! Who may ask: a user about themselves; an API key about itself (within
//! its organization and its permissions); another Tenantry service about
//! anyone. Anything else is PERMISSION_DENIED. Denied and unknown objects
//! answer the same: DENIED.
//!
//! This file holds who may ask and how one question is decided; each RPC
//! runs its flow in `checks`, `lookups` or `relationships`.

use tenantry_kit::auth::{Principal, PrincipalKind};
use tenantry_kit::error::{Error, Result};
use tenantry_proto::tenantry::authz::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::{object, permissionship, subject};
use crate::engine::{Index, IndexError};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::{After, Core, NAME};

mod checks;
mod lookups;
mod relationships;

/// The most checks one bulk call may carry.
pub const MAX_BULK: usize = 1000;

/// The `AuthorizationService` handler.
#[derive(Debug, Clone)]
pub struct AuthorizationApi(pub Core);

/// An unknown type or permission, or a permission of another type, named
/// by its own reason so callers (identity, checking an API key's
/// permissions) can tell them apart.
fn index_error(error: IndexError) -> Error {
    Refusal::Index(error).into()
}

/// Refuses questions the caller may not ask: a user or API key asks about
/// itself; a service account about anyone, on objects of the organization
/// its token is for; Tenantry's own services about anything.
fn may_ask(
    principal: &Principal,
    index: &Index,
    subject_type: &str,
    subject_id: &str,
    object: Option<(&str, &str)>,
) -> Result<()> {
    if principal.internal_service().is_some() {
        return Ok(());
    }
    let own = principal.kind.as_str() == subject_type && principal.id == subject_id;
    let served = principal.kind == PrincipalKind::ServiceAccount
        && principal.organization.as_deref().is_some_and(|org| {
            object.is_some_and(|(object_type, id)| index.within(object_type, id, org))
        });
    if own || served {
        Ok(())
    } else {
        Err(Error::permission_denied("authz.check")
            .with_domain(NAME)
            .with_metadata(
                "reason",
                "a caller may only ask about itself, or a service account about its organization",
            ))
    }
}

/// Whether the asker's sign-in session still stands: the access tokens of
/// an ended session (logout, revocation, password change) hold nothing,
/// from the moment identity's write returns.
pub(crate) fn session_live(index: &Index, principal: &Principal) -> bool {
    principal
        .session_id
        .as_deref()
        .is_none_or(|session| index.session_live(session))
}

impl Core {
    /// One check, under an index already locked for reading.
    fn decide(
        &self,
        index: &Index,
        principal: &Principal,
        subject: (&str, &str),
        object: (&str, &str),
        permission: &str,
    ) -> Result<bool> {
        let allowed = match subject.0 {
            "user" => index
                .check_by_id(subject.1, object.0, object.1, permission)
                .map_err(index_error)?,
            // An API key: what it carries, inside its scope, while its
            // owner holds it there (the index knows live keys only).
            "api_key" => {
                let key = index
                    .check_key(subject.1, object.0, object.1, permission)
                    .map_err(index_error)?;
                key && principal.kind == PrincipalKind::ApiKey
            }
            // Service accounts hold no grants in the index yet.
            _ => {
                index
                    .permission_bit(object.0, permission)
                    .map_err(index_error)?;
                false
            }
        };
        Ok(allowed && session_live(index, principal))
    }
}

#[tonic::async_trait]
impl pb::authorization_service_server::AuthorizationService for AuthorizationApi {
    async fn check_permission(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        self.check_one(request).await
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<pb::CheckBulkPermissionsRequest>,
    ) -> Result<Response<pb::CheckBulkPermissionsResponse>, Status> {
        self.check_bulk(request).await
    }

    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<pb::LookupResourcesResponse>, Status> {
        self.lookup_resources_page(request).await
    }

    async fn lookup_subjects(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<pb::LookupSubjectsResponse>, Status> {
        self.lookup_subjects_page(request).await
    }

    async fn read_relationships(
        &self,
        request: Request<pb::ReadRelationshipsRequest>,
    ) -> Result<Response<pb::ReadRelationshipsResponse>, Status> {
        self.read_relationships_page(request).await
    }

    async fn write_relationships(
        &self,
        request: Request<pb::WriteRelationshipsRequest>,
    ) -> Result<Response<pb::WriteRelationshipsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let revision = self
            .0
            .write_relationships(
                &caller,
                &r.updates,
                &r.optional_preconditions,
                crate::watch::MAX_UPDATES,
            )
            .await?;
        Ok(Response::new(pb::WriteRelationshipsResponse {
            written_at: Some(token(revision)),
        }))
    }

    async fn delete_relationships(
        &self,
        request: Request<pb::DeleteRelationshipsRequest>,
    ) -> Result<Response<pb::DeleteRelationshipsResponse>, Status> {
        self.delete_relationships_matching(request).await
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::WatchResponse>>, Status> {
        self.watch_changes(request).await
    }
}
