//! Who is calling: the [`Principal`] that [`AuthLayer`](super::AuthLayer)
//! puts into every authenticated request.

use serde::{Deserialize, Serialize};

use super::jwt::Claims;
use crate::Error;

/// What kind of identity a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person who signed in.
    User,
    /// An organization's API key, limited to a subset of permissions.
    ApiKey,
    /// A machine identity using client credentials.
    ServiceAccount,
}

impl PrincipalKind {
    /// The `kind` claim's spelling: `user`, `api_key`, `service_account`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }
}

impl std::fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of a request, taken from a verified access token.
///
/// The fields are the token's claims under their domain names; `claims`
/// keeps the whole token for anything else (`jti`, `exp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The kind of identity.
    pub kind: PrincipalKind,
    /// The id of the user, API key or service account (`sub`).
    pub id: String,
    /// The organization the token acts in (`org`).
    pub organization: Option<String>,
    /// The session, for user tokens (`sid`).
    pub session_id: Option<String>,
    /// How the caller authenticated (`amr`).
    pub amr: Vec<String>,
    /// The permissions an API key is limited to (`perms`); `None` means the
    /// principal's memberships decide.
    pub permissions: Option<Vec<String>>,
    /// The team an API key is limited to (`team`).
    pub team: Option<String>,
    /// True when the token may only enroll MFA. The layer lets such a
    /// principal reach only the methods configured for it.
    pub mfa_pending: bool,
    /// The verified claims.
    pub claims: Claims,
}

impl From<Claims> for Principal {
    fn from(claims: Claims) -> Self {
        Principal {
            kind: claims.kind,
            id: claims.sub.clone(),
            organization: claims.org.clone(),
            session_id: claims.sid.clone(),
            amr: claims.amr.clone(),
            permissions: claims.perms.clone(),
            team: claims.team.clone(),
            mfa_pending: claims.mfa_pending,
            claims,
        }
    }
}

impl Principal {
    /// The principal of a request that passed [`AuthLayer`](super::AuthLayer),
    /// or UNAUTHENTICATED. Handlers of non-public methods can rely on it
    /// being present; handlers of public methods use it for optional auth.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<&Principal, Error> {
        Self::from_extensions(request.extensions())
            .ok_or_else(|| Error::unauthenticated("missing credentials"))
    }

    /// The principal in a request's extensions, if any (for code that sees
    /// `http::Request`s, such as other tower layers).
    pub fn from_extensions(extensions: &http::Extensions) -> Option<&Principal> {
        extensions.get::<Principal>()
    }

    /// Whether the caller used a second factor (`amr` contains `mfa`).
    pub fn mfa_authenticated(&self) -> bool {
        self.amr.iter().any(|method| method == "mfa")
    }

    /// The Tenantry service this principal is, when it is one calling
    /// another (`identity` asking the organization service, say): a
    /// service-account token with `amr = ["svc"]` whose subject is a service
    /// name, or the principal of an internal credential
    /// ([`InternalKey`](super::InternalKey)). Only identity signs tokens,
    /// and the service accounts it issues tokens for have UUID ids, so no
    /// client can hold such a token.
    pub fn internal_service(&self) -> Option<&str> {
        // `SERVICES` does not name the edge: an edge principal is no service.
        (self.kind == PrincipalKind::ServiceAccount
            && self.amr.iter().any(|m| m == "svc")
            && super::internal::SERVICES.contains(&self.id.as_str()))
        .then_some(self.id.as_str())
    }

    /// Whether this is the gateway reporting what it refused at the edge
    /// (the principal of an edge credential; see
    /// [`internal`](super::internal)). No token identity signs has this
    /// subject and method.
    pub fn is_edge(&self) -> bool {
        self.kind == PrincipalKind::ServiceAccount
            && self.amr.iter().any(|m| m == "edge")
            && self.id == super::internal::EDGE
    }

    /// The organization the token acts in, or FAILED_PRECONDITION when the
    /// token is for none (a user who has not picked one yet).
    pub fn require_organization(&self) -> Result<&str, Error> {
        self.organization.as_deref().ok_or_else(|| {
            Error::new(
                crate::Code::FailedPrecondition,
                "NO_ACTIVE_ORGANIZATION",
                "the access token is not for an organization",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::tests::{NOW, claims};

    #[test]
    fn a_principal_carries_its_claims() {
        let mut claims = claims(NOW);
        claims.amr = vec!["pwd".into(), "mfa".into()];
        let principal = Principal::from(claims.clone());
        assert_eq!(principal.kind, PrincipalKind::User);
        assert_eq!(principal.id, claims.sub);
        assert_eq!(principal.organization, claims.org);
        assert_eq!(principal.session_id, claims.sid);
        assert!(principal.mfa_authenticated());
        assert_eq!(
            principal.require_organization().unwrap(),
            claims.org.unwrap()
        );
    }

    #[test]
    fn a_request_without_a_principal_is_unauthenticated() {
        let request = tonic::Request::new(());
        let error = Principal::from_request(&request).unwrap_err();
        assert_eq!(error.code(), crate::Code::Unauthenticated);

        let mut request = tonic::Request::new(());
        request
            .extensions_mut()
            .insert(Principal::from(claims(NOW)));
        assert_eq!(
            Principal::from_request(&request).unwrap().id,
            claims(NOW).sub
        );
    }

    #[test]
    fn kinds_use_their_claim_spelling() {
        for kind in [
            PrincipalKind::User,
            PrincipalKind::ApiKey,
            PrincipalKind::ServiceAccount,
        ] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
        assert!(serde_json::from_str::<PrincipalKind>(r#""admin""#).is_err());
    }
}

/// The verified bearer token the caller presented, kept beside its
/// [`Principal`] for calls made on the caller's behalf: a service forwards it
/// to ask the authorization service about the caller's own permissions,
/// which needs no credentials of the service's own.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub std::sync::Arc<str>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// The caller's token, from a request the auth layer let through.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Option<&BearerToken> {
        request.extensions().get::<BearerToken>()
    }
}
