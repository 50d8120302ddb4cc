//! Authentication at the edge. A request carries an access token
//! (`Authorization: Bearer <jwt>`) or an API key (`Authorization: Bearer
//! tnt_…` or `X-Api-Key: tnt_…`). Tokens are verified here with identity's
//! keys so bad ones stop at the edge with 401; API keys are exchanged
//! through identity's `AuthenticateApiKey` for a short-lived token, cached
//! by the key's SHA-256 until shortly before the token expires. The
//! backends verify the token they receive again: the gateway is not a
//! trust boundary.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use sha2::{Digest as _, Sha256};
use tenantry_kit::auth::{Claims, Expectations, JwksCache, TokenError};
use tenantry_kit::cache::Cache;
use tenantry_proto::tenantry::identity::v1 as identity_pb;

use crate::errors::{ApiError, unauthenticated};

/// The prefix of every Tenantry API key.
const API_KEY_PREFIX: &str = "tnt_";
/// Exchanged tokens are used until this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// At most this many exchanged keys are cached.
const CACHE_CAPACITY: u64 = 10_000;

/// Who is calling, as far as the edge can tell.
#[derive(Debug, Clone, Default)]
pub struct EdgeCaller {
    /// The `authorization` header to send to the backend.
    pub authorization: Option<HeaderValue>,
    /// The verified claims; `None` for anonymous callers of public methods.
    pub claims: Option<Claims>,
    /// Whether an API key was exchanged (for logs).
    pub api_key: bool,
}

/// Verifies tokens and exchanges API keys.
#[derive(Clone)]
pub struct EdgeAuth {
    jwks: Arc<JwksCache>,
    expect: Expectations,
    identity: crate::upstream::Upstream,
    cache: Arc<Cache<[u8; 32], Exchanged>>,
}

impl std::fmt::Debug for EdgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAuth").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Exchanged {
    authorization: HeaderValue,
    claims: Claims,
}

impl EdgeAuth {
    /// An authenticator with identity's keys and its channel.
    pub fn new(
        jwks: Arc<JwksCache>,
        expect: Expectations,
        identity: crate::upstream::Upstream,
    ) -> Self {
        EdgeAuth {
            jwks,
            expect,
            identity,
            cache: Arc::new(Cache::new("gateway_api_keys", CACHE_CAPACITY)),
        }
    }

    /// Authenticates a request for a method that is `public` or not.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        public: bool,
    ) -> Result<EdgeCaller, ApiError> {
        match credential(headers)? {
            Credential::None if public => Ok(EdgeCaller::default()),
            Credential::None => Err(unauthenticated("missing credentials")),
            Credential::ApiKey(key) => self.exchange(&key).await,
            Credential::Token(token) => match self.jwks.verify(&token, &self.expect).await {
                Ok(claims) => Ok(EdgeCaller {
                    authorization: bearer(&token),
                    claims: Some(claims),
                    api_key: false,
                }),
                // A client that attaches its expired token to every call
                // still reaches the public ones (Refresh above all); the
                // backend applies the same rule.
                Err(TokenError::Expired) if public => Ok(EdgeCaller {
                    authorization: bearer(&token),
                    claims: None,
                    api_key: false,
                }),
                Err(error) => {
                    tracing::debug!(%error, "token refused at the edge");
                    Err(unauthenticated("invalid or expired token"))
                }
            },
        }
    }

    async fn exchange(&self, key: &str) -> Result<EdgeCaller, ApiError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some(entry) = self.cache.get(&digest) {
            metrics::counter!("tenantry_gateway_api_key_exchanges_total", "result" => "cached")
                .increment(1);
            return Ok(EdgeCaller {
                authorization: Some(entry.authorization),
                claims: Some(entry.claims),
                api_key: true,
            });
        }
        let mut client =
            identity_pb::api_key_service_client::ApiKeyServiceClient::new(self.identity.clone());
        let mut request = tonic::Request::new(identity_pb::AuthenticateApiKeyRequest {
            secret: key.to_string(),
        });
        request.set_timeout(Duration::from_secs(5));
        let response = client
            .authenticate_api_key(request)
            .await
            .map_err(|status| {
                metrics::counter!("tenantry_gateway_api_key_exchanges_total", "result" => "refused")
                .increment(1);
                match status.code() {
                    tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => {
                        unauthenticated("invalid API key")
                    }
                    _ => ApiError::from_status(status),
                }
            })?;
        let token = response.into_inner().access_token;
        let claims = self
            .jwks
            .verify(&token, &self.expect)
            .await
            .map_err(|_| unauthenticated("invalid API key"))?;
        let authorization = bearer(&token).ok_or_else(|| unauthenticated("invalid API key"))?;
        let lifetime = Duration::from_secs(
            u64::try_from(claims.exp - tenantry_kit::db::now_micros() / 1_000_000)
                .unwrap_or_default(),
        );
        let entry = Exchanged {
            authorization: authorization.clone(),
            claims: claims.clone(),
        };
        self.cache
            .insert(digest, entry, lifetime.saturating_sub(REFRESH_MARGIN));
        metrics::counter!("tenantry_gateway_api_key_exchanges_total", "result" => "exchanged")
            .increment(1);
        Ok(EdgeCaller {
            authorization: Some(authorization),
            claims: Some(claims),
            api_key: true,
        })
    }
}

fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

enum Credential {
    None,
    Token(String),
    ApiKey(String),
}

/// Reads the one credential of a request. Two of them (two `authorization`
/// headers, or a header and an `x-api-key`) are refused: which one a
/// backend would read is not left to chance.
fn credential(headers: &HeaderMap) -> Result<Credential, ApiError> {
    let mut found = Vec::new();
    for value in headers.get_all(http::header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| unauthenticated("malformed authorization header"))?;
        let (scheme, token) = text
            .split_once(' ')
            .ok_or_else(|| unauthenticated("malformed authorization header"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthenticated("the authorization scheme must be Bearer"));
        }
        let token = token.trim();
        if token.is_empty() || token.contains(' ') {
            return Err(unauthenticated("malformed authorization header"));
        }
        found.push(if token.starts_with(API_KEY_PREFIX) {
            Credential::ApiKey(token.to_string())
        } else {
            Credential::Token(token.to_string())
        });
    }
    for value in headers.get_all("x-api-key") {
        let key = value
            .to_str()
            .map_err(|_| unauthenticated("malformed x-api-key header"))?
            .trim();
        found.push(Credential::ApiKey(key.to_string()));
    }
    match found.len() {
        0 => Ok(Credential::None),
        1 => Ok(found.pop().unwrap_or(Credential::None)),
        _ => Err(unauthenticated("send one credential, not several")),
    }
}
