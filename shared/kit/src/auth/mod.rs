//! Authentication: every service verifies access tokens itself.
//!
//! Why here and not at the edge: the gateway is not a trust boundary. Services
//! are reachable over gRPC directly (by clients, by each other, by anything
//! inside the cluster network), so a header a proxy set ("this is user X") is
//! worth exactly as much as the network it came over. Instead, the identity
//! service signs short-lived access tokens with Ed25519 and publishes the
//! public keys (`GetJwks`); every other service checks the signature locally,
//! with no call per request, and trusts nothing else.
//!
//! - [`jwt`]: compact JWS with EdDSA only; [`Claims`], [`SigningKey`] (for
//!   identity), [`KeySet::verify`] and its distinct [`TokenError`]s.
//! - [`jwks`]: [`JwksCache`], the key set kept fresh from a [`JwksSource`]
//!   ([`GrpcJwksSource`] in other services, [`StaticJwksSource`] in-process).
//! - [`layer`]: [`AuthLayer`], the tower layer in front of every gRPC server.
//! - [`principal`]: [`Principal`], which handlers read with
//!   [`Principal::from_request`].
//! - [`internal`]: [`InternalKey`], the credential one Tenantry service
//!   presents to another when it calls as itself.
//! - [`AuthConfig`]: the `[auth]` configuration table.

pub mod internal;
pub mod jwks;
pub mod jwt;
pub mod layer;
pub mod principal;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use internal::InternalKey;
pub use jwks::{GrpcJwksSource, JwksCache, JwksCacheOptions, JwksSource, StaticJwksSource};
pub use jwt::{Claims, Expectations, JwkError, JwkKey, KeySet, SigningKey, TokenError};
pub use layer::{ALWAYS_PUBLIC_PREFIXES, Auth, AuthLayer};
pub use principal::{BearerToken, Principal, PrincipalKind};

/// How services verify access tokens (the `[auth]` table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The `iss` every access token must carry; identity signs with it.
    /// Default: `tenantry`.
    pub issuer: String,
    /// The `aud` every access token must carry; identity signs with it.
    /// Default: `tenantry`.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (0 to 300).
    /// Default: 30.
    pub leeway_secs: u64,
    /// How often the public keys are fetched from identity, in seconds (at
    /// least 1). Default: 300.
    pub jwks_refresh_secs: u64,
    /// The least time between two fetches caused by tokens with an unknown
    /// key id, in seconds (at least 1). Default: 5.
    pub jwks_min_refresh_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "tenantry".into(),
            audience: "tenantry".into(),
            leeway_secs: Expectations::DEFAULT_LEEWAY_SECS as u64,
            jwks_refresh_secs: 300,
            jwks_min_refresh_secs: 5,
        }
    }
}

impl AuthConfig {
    /// Checks the values, naming the key and what is allowed.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.issuer.is_empty() {
            anyhow::bail!("invalid configuration: `auth.issuer` must not be empty");
        }
        if self.audience.is_empty() {
            anyhow::bail!("invalid configuration: `auth.audience` must not be empty");
        }
        if self.leeway_secs > 300 {
            anyhow::bail!("invalid configuration: `auth.leeway_secs` must be at most 300");
        }
        if self.jwks_refresh_secs == 0 {
            anyhow::bail!("invalid configuration: `auth.jwks_refresh_secs` must be at least 1");
        }
        if self.jwks_min_refresh_secs == 0 {
            anyhow::bail!("invalid configuration: `auth.jwks_min_refresh_secs` must be at least 1");
        }
        Ok(())
    }

    /// What a verifier requires of a token.
    pub fn expectations(&self) -> Expectations {
        Expectations {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            // Validated to at most 300, so the cast cannot wrap.
            leeway_secs: self.leeway_secs.min(300) as i64,
        }
    }

    /// The cache's refresh settings.
    pub fn jwks_options(&self) -> JwksCacheOptions {
        JwksCacheOptions {
            refresh_interval: Duration::from_secs(self.jwks_refresh_secs.max(1)),
            min_refresh_interval: Duration::from_secs(self.jwks_min_refresh_secs.max(1)),
            ..JwksCacheOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid_and_bad_values_name_their_key() {
        AuthConfig::default().validate().unwrap();
        let error = AuthConfig {
            jwks_refresh_secs: 0,
            ..AuthConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            error.to_string().contains("auth.jwks_refresh_secs"),
            "{error}"
        );
        let error = AuthConfig {
            leeway_secs: 3600,
            ..AuthConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("auth.leeway_secs"), "{error}");
    }
}
