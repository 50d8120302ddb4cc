//! Permission checks asked of the rbac service, for every service that
//! guards its RPCs with rbac's answers: who the caller is ([`Caller`]) and
//! whether they hold permissions on objects ([`Checker`]).
//!
//! Every call is made on the caller's behalf with the caller's own bearer
//! token (services hold no credentials of their own), so rbac answers
//! exactly what the caller may know. Failures close: when rbac cannot
//! answer, the request fails with UNAVAILABLE, never a yes.

use crate::permission::Permission;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;

use crate::auth::{BearerToken, Principal, PrincipalKind};
use crate::error::{Code, Error, Result};
use crate::peer::PeerChannel;

/// The most checks rbac answers in one bulk call.
const BULK_LIMIT: usize = 1000;

/// The caller of a request: who, with which token, from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub bearer: Option<BearerToken>,
    pub request: events::RequestContext,
}

impl Caller {
    /// The caller of a request the auth layer let through.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Caller> {
        Ok(Caller {
            principal: Principal::from_request(request)?.clone(),
            bearer: BearerToken::from_request(request).cloned(),
            request: crate::request::request_context(request),
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

    /// Whether the caller is another Tenantry service.
    pub fn is_internal(&self) -> bool {
        self.principal.internal_service().is_some()
    }

    /// The actor of the events this caller causes.
    pub fn actor(&self) -> events::Actor {
        crate::request::actor(&self.principal)
    }

    /// The caller as a resource name, for `created_by` and `set_by`.
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

    /// A request carrying `message` on the caller's behalf.
    pub fn on_behalf<T>(&self, message: T) -> tonic::Request<T> {
        crate::request::on_behalf(self.bearer.as_ref(), message)
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
    fn token_allows(&self, permission: Permission) -> bool {
        self.principal
            .permissions
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|p| p == permission.as_str()))
    }
}

/// An object a permission is checked on: its type (`organization`,
/// `project`, …) and id.
pub type ObjectRef<'a> = (&'a str, &'a str);

/// The client of rbac's `CheckBulkPermissions`.
#[derive(Debug, Clone)]
pub struct Checker {
    rbac: PeerChannel,
    domain: &'static str,
}

impl Checker {
    /// A client of rbac over `rbac`, whose failures name `domain` (the
    /// asking service) in their ErrorInfo.
    pub fn new(rbac: PeerChannel, domain: &'static str) -> Checker {
        Checker { rbac, domain }
    }

    /// The UNAVAILABLE of an rbac call that failed.
    pub fn unavailable(&self, status: tonic::Status) -> Error {
        Error::new(
            Code::Unavailable,
            "DEPENDENCY_UNAVAILABLE",
            "the authorization service is unavailable",
        )
        .with_domain(self.domain)
        .with_source(anyhow::anyhow!("{}: {}", status.code(), status.message()))
    }

    /// The channel to rbac, for the asking service's other calls.
    pub fn channel(&self) -> &PeerChannel {
        &self.rbac
    }

    /// Whether the caller holds each (object, built-in permission), in
    /// order, in as few bulk calls as rbac allows.
    pub async fn check_all(
        &self,
        caller: &Caller,
        checks: &[(ObjectRef<'_>, Permission)],
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
                .map(|&i| {
                    let ((object_type, object_id), permission) = checks[i];
                    authz_pb::CheckBulkPermissionsRequestItem {
                        resource: Some(authz_pb::ObjectReference {
                            object_type: object_type.to_string(),
                            object_id: object_id.to_string(),
                        }),
                        permission: permission.as_str().to_string(),
                        subject: Some(caller.subject()),
                    }
                })
                .collect();
            let response = client
                .check_bulk_permissions(caller.on_behalf(authz_pb::CheckBulkPermissionsRequest {
                    consistency: None,
                    items,
                }))
                .await
                .map_err(|status| self.unavailable(status))?
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
}
