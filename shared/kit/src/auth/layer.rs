//! [`AuthLayer`]: the tower layer in front of every gRPC server that turns a
//! bearer token into a [`Principal`] or rejects the call.
//!
//! The policy, per method path:
//!
//! - **Always public** (`/grpc.health.v1.Health/`, `/grpc.reflection.`):
//!   the `authorization` header is not even read. Probes and tooling must
//!   work without credentials, and a probe with a stale token must not fail.
//! - **Public** (configured, e.g. `Login`): no token passes anonymously; a
//!   valid token attaches its principal (optional auth); an *invalid* token
//!   (forged, wrong key, wrong issuer, malformed) is rejected with
//!   UNAUTHENTICATED. Ignoring it instead would let a handler that checks
//!   "is there a principal?" silently treat a caller with a forged token as
//!   anonymous, and a client with a broken token learns about it at once.
//!   The one exception is a token that is authentic but *expired*: it passes
//!   anonymously, because clients whose interceptor attaches the access token
//!   to every call send exactly that token to `Refresh`, and rejecting it
//!   would lock them out of the one call that fixes it.
//! - **Everything else**: a valid token is required.
//!
//! A token with `mfa_pending` reaches only the configured MFA-enrollment
//! methods; elsewhere it is PERMISSION_DENIED (on a public method it is just
//! not attached, so such a principal is only ever seen by those methods).
//!
//! Nothing but the bearer token counts. Headers such as `x-user-id` that a
//! proxy might set are never read, and a `Principal` already in the
//! request's extensions is removed: the gateway is not a trust boundary.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use super::internal::{self, InternalKey};
use super::jwks::JwksCache;
use super::jwt::{Expectations, TokenError};
use super::principal::{BearerToken, Principal};
use crate::{Code, Error};

/// Method path prefixes that never need (or look at) credentials.
pub const ALWAYS_PUBLIC_PREFIXES: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];

/// The tower layer; see the [module docs](self) for the policy.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    policy: Arc<Policy>,
}

#[derive(Debug, Clone)]
struct Policy {
    cache: Arc<JwksCache>,
    expect: Expectations,
    /// Full method paths (`/pkg.Service/Method`) callable without a token.
    public: HashSet<String>,
    /// Full method paths an `mfa_pending` token may call.
    mfa_pending_allowed: HashSet<String>,
    /// Verifies the credentials services present when they call as
    /// themselves; without it, such credentials are refused.
    internal: Option<InternalKey>,
    /// Verifies the gateway's edge credentials; without it, they are
    /// refused.
    edge: Option<InternalKey>,
}

impl AuthLayer {
    /// A layer verifying tokens with `cache` against `expect`, with no public
    /// methods besides health and reflection.
    pub fn new(cache: Arc<JwksCache>, expect: Expectations) -> Self {
        AuthLayer {
            policy: Arc::new(Policy {
                cache,
                expect,
                public: HashSet::new(),
                mfa_pending_allowed: HashSet::new(),
                internal: None,
                edge: None,
            }),
        }
    }

    /// Adds methods, by full path (`/tenantry.identity.v1.IdentityService/Login`),
    /// that can be called without a token.
    pub fn with_public_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let policy = Arc::make_mut(&mut self.policy);
        policy.public.extend(methods.into_iter().map(Into::into));
        self
    }

    /// Accepts internal credentials made with `key` (see
    /// [`internal`](super::internal)).
    pub fn with_internal_key(mut self, key: InternalKey) -> Self {
        Arc::make_mut(&mut self.policy).internal = Some(key);
        self
    }

    /// Accepts the gateway's edge credentials made with `key` (see
    /// [`internal`](super::internal)).
    pub fn with_edge_key(mut self, key: InternalKey) -> Self {
        Arc::make_mut(&mut self.policy).edge = Some(key);
        self
    }

    /// Adds methods, by full path, that a token with `mfa_pending` may call
    /// (`Me`, `EnrollTotp`, `ConfirmTotp`, `Logout`).
    pub fn with_mfa_pending_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let policy = Arc::make_mut(&mut self.policy);
        policy
            .mfa_pending_allowed
            .extend(methods.into_iter().map(Into::into));
        self
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Only this layer vouches for a caller.
        request.extensions_mut().remove::<Principal>();
        request.extensions_mut().remove::<BearerToken>();
        // Take the service that was driven to readiness; leave a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            match policy.authenticate(&mut request).await {
                Ok(()) => inner.call(request).await,
                // A trailers-only response: the status travels in headers.
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// What the `authorization` header holds.
enum Credentials<'a> {
    Missing,
    Bearer(&'a str),
    /// Several headers, another scheme, or not a single token.
    Invalid,
}

fn credentials(headers: &http::HeaderMap) -> Credentials<'_> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credentials::Missing;
    };
    // Two headers would leave it to chance which one a proxy or a handler
    // reads; refuse to guess.
    if values.next().is_some() {
        return Credentials::Invalid;
    }
    let Ok(value) = value.to_str() else {
        return Credentials::Invalid;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Credentials::Invalid;
    };
    // RFC 9110 §11.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credentials::Invalid;
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Credentials::Invalid;
    }
    Credentials::Bearer(token)
}

fn missing_credentials() -> tonic::Status {
    Error::unauthenticated("missing credentials").into_status()
}

/// One answer for every rejected token: which check failed is for the log.
fn invalid_token() -> tonic::Status {
    Error::unauthenticated("invalid or expired token").into_status()
}

fn keys_unavailable() -> tonic::Status {
    Error::new(
        Code::Unavailable,
        "KEYS_UNAVAILABLE",
        "this process cannot verify tokens yet; retry",
    )
    .with_retry_after(std::time::Duration::from_secs(1))
    .into_status()
}

fn mfa_enrollment_required() -> tonic::Status {
    Error::new(
        Code::PermissionDenied,
        "MFA_ENROLLMENT_REQUIRED",
        "multi-factor enrollment is required first",
    )
    .into_status()
}

impl Policy {
    async fn authenticate<B>(&self, request: &mut http::Request<B>) -> Result<(), tonic::Status> {
        let path = request.uri().path();
        if ALWAYS_PUBLIC_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            return Ok(());
        }
        if let Some(credential) = request.headers().get(internal::HEADER) {
            // One credential per call: which one counts is not left to chance.
            if request.headers().contains_key(http::header::AUTHORIZATION) {
                return Err(invalid_token());
            }
            let now = chrono::Utc::now().timestamp();
            let credential = credential.to_str().unwrap_or_default();
            let service = self
                .internal
                .as_ref()
                .and_then(|key| key.verify(credential, now));
            let principal = match service {
                Some(service) => InternalKey::principal(service, now),
                // An edge credential opens the edge's own RPCs and nothing
                // else, whichever services share this server.
                None if path.starts_with(internal::EDGE_METHODS)
                    && self
                        .edge
                        .as_ref()
                        .is_some_and(|key| key.verify_edge(credential, now)) =>
                {
                    InternalKey::edge_principal(now)
                }
                None => {
                    tracing::debug!(method = path, "internal credential rejected");
                    return Err(invalid_token());
                }
            };
            request.extensions_mut().insert(principal);
            return Ok(());
        }
        let public = self.public.contains(path);
        let token = match credentials(request.headers()) {
            Credentials::Missing if public => return Ok(()),
            Credentials::Missing => return Err(missing_credentials()),
            Credentials::Invalid => {
                tracing::debug!(method = path, "authorization header rejected");
                return Err(invalid_token());
            }
            Credentials::Bearer(token) => token,
        };
        let claims = match self.cache.verify(token, &self.expect).await {
            Ok(claims) => claims,
            // The signature was checked before expiry, so this token is ours,
            // only stale; see the module docs.
            Err(TokenError::Expired) if public => return Ok(()),
            // A valid token is never refused because this process is not
            // ready: the caller retries, elsewhere or a moment later.
            Err(TokenError::KeysUnavailable) => return Err(keys_unavailable()),
            Err(error) => {
                tracing::debug!(method = path, %error, "access token rejected");
                return Err(invalid_token());
            }
        };
        if claims.mfa_pending && !self.mfa_pending_allowed.contains(path) {
            if public {
                return Ok(());
            }
            return Err(mfa_enrollment_required());
        }
        let bearer = BearerToken(token.into());
        request.extensions_mut().insert(Principal::from(claims));
        request.extensions_mut().insert(bearer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service, ServiceExt};

    use super::*;
    use crate::auth::jwks::{JwksCacheOptions, StaticJwksSource};
    use crate::auth::jwt::tests::{claims, expectations};
    use crate::auth::jwt::{Claims, KeySet, SigningKey};

    const PROTECTED: &str = "/tenantry.organization.v1.OrganizationService/GetOrganization";
    const LOGIN: &str = "/tenantry.identity.v1.IdentityService/Login";
    const ENROLL: &str = "/tenantry.identity.v1.IdentityService/EnrollTotp";
    const HEALTH: &str = "/grpc.health.v1.Health/Check";

    struct Harness {
        key: SigningKey,
        source: Arc<StaticJwksSource>,
        layer: AuthLayer,
    }

    fn harness() -> Harness {
        let key = SigningKey::from_seed("k1", [1; 32]);
        let source = Arc::new(StaticJwksSource::new(vec![key.public_jwk()]));
        let cache = JwksCache::with_keys(
            source.clone(),
            KeySet::from_jwks(&[key.public_jwk()]).unwrap(),
            JwksCacheOptions::default(),
        );
        let layer = AuthLayer::new(Arc::new(cache), expectations())
            .with_public_methods([LOGIN])
            .with_mfa_pending_methods([ENROLL]);
        Harness { key, source, layer }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn fresh_claims() -> Claims {
        claims(now())
    }

    /// The inner service answers 200 with the principal it saw, read the way
    /// a handler reads it: through `tonic::Request`.
    async fn call(layer: &AuthLayer, request: http::Request<()>) -> http::Response<String> {
        let handler = tower::service_fn(|request: http::Request<()>| async move {
            let request = tonic::Request::from_http(request);
            let body = match Principal::from_request(&request) {
                Ok(principal) => {
                    // The token travels with the principal, for calls made
                    // on the caller's behalf; a service calling as itself
                    // has none to pass on.
                    assert_eq!(
                        BearerToken::from_request(&request).is_some(),
                        principal.internal_service().is_none() && !principal.is_edge()
                    );
                    format!("principal:{}", principal.id)
                }
                Err(_) => {
                    assert!(BearerToken::from_request(&request).is_none());
                    "anonymous".to_string()
                }
            };
            Ok::<_, Infallible>(http::Response::new(body))
        });
        let mut service = layer.layer(handler);
        service.ready().await.unwrap().call(request).await.unwrap()
    }

    fn request(path: &str, authorization: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder()
            .uri(format!("http://localhost{path}"))
            .header("content-type", "application/grpc");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).unwrap()
    }

    fn grpc_status(response: &http::Response<String>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap())
    }

    fn grpc_message(response: &http::Response<String>) -> String {
        response
            .headers()
            .get("grpc-message")
            .map(|v| v.to_str().unwrap().replace("%20", " "))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_missing_header_is_unauthenticated() {
        let h = harness();
        let response = call(&h.layer, request(PROTECTED, None)).await;
        assert_eq!(grpc_status(&response), Some("16"));
        assert_eq!(grpc_message(&response), "missing credentials");
        assert_eq!(response.into_body(), "");
    }

    #[tokio::test]
    async fn a_valid_token_attaches_the_principal() {
        let h = harness();
        let token = h.key.sign(&fresh_claims());
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let response = call(
                &h.layer,
                request(PROTECTED, Some(&format!("{scheme} {token}"))),
            )
            .await;
            assert_eq!(grpc_status(&response), None);
            assert_eq!(
                response.into_body(),
                format!("principal:{}", fresh_claims().sub)
            );
        }
    }

    #[tokio::test]
    async fn bad_tokens_are_unauthenticated_with_one_message() {
        let h = harness();
        let mut expired = fresh_claims();
        expired.iat = now() - 3600;
        expired.exp = now() - 1800;
        let stranger = SigningKey::from_seed("k1", [2; 32]);
        let good = h.key.sign(&fresh_claims());
        let (input, _) = good.rsplit_once('.').unwrap();
        let alg_none = {
            let (_, payload) = input.split_once('.').unwrap();
            format!("eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.{payload}.")
        };
        let mut wrong_audience = fresh_claims();
        wrong_audience.aud = "elsewhere".into();
        let cases = [
            ("expired", format!("Bearer {}", h.key.sign(&expired))),
            ("forged", format!("Bearer {input}.AAAA")),
            ("alg none", format!("Bearer {alg_none}")),
            (
                "wrong key",
                format!("Bearer {}", stranger.sign(&fresh_claims())),
            ),
            (
                "wrong audience",
                format!("Bearer {}", h.key.sign(&wrong_audience)),
            ),
            ("garbage", "Bearer not-a-token".to_string()),
            ("basic scheme", format!("Basic {good}")),
            ("no scheme", good.clone()),
            ("empty bearer", "Bearer ".to_string()),
            ("two tokens", format!("Bearer {good} {good}")),
        ];
        for (case, authorization) in cases {
            let response = call(&h.layer, request(PROTECTED, Some(&authorization))).await;
            assert_eq!(grpc_status(&response), Some("16"), "{case}");
            assert_eq!(
                grpc_message(&response),
                "invalid or expired token",
                "{case}"
            );
        }
    }

    #[tokio::test]
    async fn two_authorization_headers_are_refused() {
        let h = harness();
        let token = h.key.sign(&fresh_claims());
        let mut request = request(PROTECTED, Some(&format!("Bearer {token}")));
        request
            .headers_mut()
            .append("authorization", format!("Bearer {token}").parse().unwrap());
        let response = call(&h.layer, request).await;
        assert_eq!(grpc_status(&response), Some("16"));
    }

    #[tokio::test]
    async fn public_methods_pass_without_a_token() {
        let h = harness();
        let response = call(&h.layer, request(LOGIN, None)).await;
        assert_eq!(grpc_status(&response), None);
        assert_eq!(response.into_body(), "anonymous");
    }

    #[tokio::test]
    async fn public_methods_attach_a_valid_token_and_refuse_a_bad_one() {
        let h = harness();
        let token = h.key.sign(&fresh_claims());
        let response = call(&h.layer, request(LOGIN, Some(&format!("Bearer {token}")))).await;
        assert_eq!(
            response.into_body(),
            format!("principal:{}", fresh_claims().sub)
        );
        let response = call(&h.layer, request(LOGIN, Some("Bearer forged.token.here"))).await;
        assert_eq!(grpc_status(&response), Some("16"));
    }

    #[tokio::test]
    async fn an_expired_token_does_not_block_public_methods() {
        let h = harness();
        let mut expired = fresh_claims();
        expired.iat = now() - 3600;
        expired.exp = now() - 1800;
        let authorization = format!("Bearer {}", h.key.sign(&expired));
        let response = call(&h.layer, request(LOGIN, Some(&authorization))).await;
        assert_eq!(grpc_status(&response), None);
        assert_eq!(response.into_body(), "anonymous");
        // Expired and forged together is still forged.
        let forged = SigningKey::from_seed("k1", [2; 32]).sign(&expired);
        let response = call(&h.layer, request(LOGIN, Some(&format!("Bearer {forged}")))).await;
        assert_eq!(grpc_status(&response), Some("16"));
    }

    #[tokio::test]
    async fn health_and_reflection_pass_whatever_the_header() {
        let h = harness();
        for path in [
            HEALTH,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            for authorization in [None, Some("Bearer expired.or.forged")] {
                let response = call(&h.layer, request(path, authorization)).await;
                assert_eq!(grpc_status(&response), None, "{path}");
                assert_eq!(response.into_body(), "anonymous");
            }
        }
    }

    #[tokio::test]
    async fn a_lookalike_of_a_public_path_is_not_public() {
        let h = harness();
        for path in [
            "/grpc.health.v1.HealthX/Check",
            "/tenantry.identity.v1.IdentityService/LoginX",
            "/tenantry.identity.v1.IdentityService/Login/",
        ] {
            let response = call(&h.layer, request(path, None)).await;
            assert_eq!(grpc_status(&response), Some("16"), "{path}");
        }
    }

    #[tokio::test]
    async fn an_mfa_pending_token_only_reaches_enrollment() {
        let h = harness();
        let mut pending = fresh_claims();
        pending.mfa_pending = true;
        pending.org = None;
        let authorization = format!("Bearer {}", h.key.sign(&pending));

        let response = call(&h.layer, request(PROTECTED, Some(&authorization))).await;
        assert_eq!(grpc_status(&response), Some("7"));

        let response = call(&h.layer, request(ENROLL, Some(&authorization))).await;
        assert_eq!(grpc_status(&response), None);
        assert_eq!(response.into_body(), format!("principal:{}", pending.sub));

        // On a public method the call goes on, but without the principal.
        let response = call(&h.layer, request(LOGIN, Some(&authorization))).await;
        assert_eq!(grpc_status(&response), None);
        assert_eq!(response.into_body(), "anonymous");
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_once_and_then_accepted() {
        let h = harness();
        let next = SigningKey::from_seed("k2", [3; 32]);
        h.source.set(vec![h.key.public_jwk(), next.public_jwk()]);
        let authorization = format!("Bearer {}", next.sign(&fresh_claims()));
        for _ in 0..3 {
            let response = call(&h.layer, request(PROTECTED, Some(&authorization))).await;
            assert_eq!(grpc_status(&response), None);
        }
        assert_eq!(h.source.fetches(), 1);
    }

    #[tokio::test]
    async fn gateway_style_identity_headers_are_ignored() {
        let h = harness();
        let spoofed = |mut request: http::Request<()>| {
            for (name, value) in [
                ("x-user-id", "victim"),
                ("x-tenantry-user", "victim"),
                ("x-forwarded-user", "victim"),
            ] {
                request.headers_mut().insert(name, value.parse().unwrap());
            }
            request
        };
        let response = call(&h.layer, spoofed(request(PROTECTED, None))).await;
        assert_eq!(grpc_status(&response), Some("16"));

        let token = h.key.sign(&fresh_claims());
        let response = call(
            &h.layer,
            spoofed(request(PROTECTED, Some(&format!("Bearer {token}")))),
        )
        .await;
        assert_eq!(
            response.into_body(),
            format!("principal:{}", fresh_claims().sub)
        );
    }

    #[tokio::test]
    async fn internal_credentials_make_an_internal_principal_and_forgeries_fail() {
        let h = harness();
        let key = InternalKey::new([9; 32]);
        let layer = h.layer.clone().with_internal_key(key.clone());
        let now = now();
        let internal = |value: &str| {
            let mut request = request(PROTECTED, None);
            request
                .headers_mut()
                .insert(internal::HEADER, value.parse().unwrap());
            request
        };
        let response = call(&layer, internal(&key.credential("organization", now))).await;
        assert_eq!(response.into_body(), "principal:organization");

        let forged = InternalKey::new([1; 32]).credential("organization", now);
        let expired = key.credential("organization", now - 3600);
        for bad in [forged.as_str(), expired.as_str(), "organization.1.00"] {
            let response = call(&layer, internal(bad)).await;
            assert_eq!(grpc_status(&response), Some("16"), "{bad}");
        }
        // A layer without the key refuses every internal credential.
        let response = call(&h.layer, internal(&key.credential("organization", now))).await;
        assert_eq!(grpc_status(&response), Some("16"));
        // An internal credential and a bearer token together are refused.
        let mut both = internal(&key.credential("organization", now));
        let token = h.key.sign(&fresh_claims());
        both.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let response = call(&layer, both).await;
        assert_eq!(grpc_status(&response), Some("16"));

        // The edge key makes edge credentials only, accepted by a layer
        // that holds it, for the edge's own RPCs only; the internal key
        // makes none.
        let edge = InternalKey::new([3; 32]);
        let layer = layer.with_edge_key(edge.clone());
        let report = |value: &str| {
            let mut request = request(
                "/tenantry.audit.v1.EdgeReportService/ReportRateLimited",
                None,
            );
            request
                .headers_mut()
                .insert(internal::HEADER, value.parse().unwrap());
            request
        };
        let from_edge = edge.credential(internal::EDGE, now);
        let response = call(&layer, report(&from_edge)).await;
        assert_eq!(response.into_body(), "principal:gateway");
        let elsewhere = call(&layer, internal(&from_edge)).await;
        assert_eq!(grpc_status(&elsewhere), Some("16"), "only the edge's RPCs");
        for bad in [
            key.credential(internal::EDGE, now),
            edge.credential("organization", now),
        ] {
            let response = call(&layer, report(&bad)).await;
            assert_eq!(grpc_status(&response), Some("16"), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_principal_smuggled_into_extensions_is_dropped() {
        let h = harness();
        let mut request = request(LOGIN, None);
        request
            .extensions_mut()
            .insert(Principal::from(fresh_claims()));
        let response = call(&h.layer, request).await;
        assert_eq!(response.into_body(), "anonymous");
    }
}
