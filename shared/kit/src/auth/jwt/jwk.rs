//! Public keys in JSON Web Key form, and their RFC 7638 thumbprints.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ALGORITHM;

/// The RFC 7638 thumbprint of an Ed25519 public key: base64url(SHA-256) of
/// the canonical JWK `{"crv","kty","x"}`. A stable, collision-free key id.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A public Ed25519 key in JSON Web Key form (RFC 7517, RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkKey {
    /// The key type; `OKP`.
    pub kty: String,
    /// The curve; `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key id.
    pub kid: String,
    /// The algorithm; `EdDSA`. Optional in JWKs, so empty is accepted.
    #[serde(default)]
    pub alg: String,
    /// The intended use; `sig`. Optional in JWKs, so empty is accepted.
    #[serde(default, rename = "use")]
    pub use_: String,
}

/// Why a JWK cannot be used to verify tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// `kty`, `crv`, `alg` or `use` is not what an Ed25519 signing key has.
    #[error("jwk {kid:?} is not an Ed25519 signing key")]
    Unsupported {
        /// The key id.
        kid: String,
    },
    /// `x` is not a valid, strong Ed25519 public key.
    #[error("jwk {kid:?} has an invalid public key")]
    InvalidKey {
        /// The key id.
        kid: String,
    },
    /// The key id is empty.
    #[error("jwk has no key id")]
    MissingKid,
}

impl JwkKey {
    /// The JWK of a public key.
    pub fn from_verifying_key(kid: &str, key: &VerifyingKey) -> Self {
        JwkKey {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            kid: kid.into(),
            alg: ALGORITHM.into(),
            use_: "sig".into(),
        }
    }

    /// The public key, if this JWK is a valid Ed25519 signing key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, JwkError> {
        if self.kid.is_empty() {
            return Err(JwkError::MissingKid);
        }
        let unsupported = || JwkError::Unsupported {
            kid: self.kid.clone(),
        };
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(unsupported());
        }
        if !(self.alg.is_empty() || self.alg == ALGORITHM) {
            return Err(unsupported());
        }
        if !(self.use_.is_empty() || self.use_ == "sig") {
            return Err(unsupported());
        }
        let invalid = || JwkError::InvalidKey {
            kid: self.kid.clone(),
        };
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| invalid())?
            .try_into()
            .map_err(|_| invalid())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| invalid())?;
        // A small-order key verifies signatures its owner never made.
        if key.is_weak() {
            return Err(invalid());
        }
        Ok(key)
    }
}

impl From<JwkKey> for tenantry_proto::tenantry::identity::v1::Jwk {
    fn from(key: JwkKey) -> Self {
        tenantry_proto::tenantry::identity::v1::Jwk {
            kid: key.kid,
            kty: key.kty,
            crv: key.crv,
            x: key.x,
            alg: key.alg,
            r#use: key.use_,
        }
    }
}

impl From<tenantry_proto::tenantry::identity::v1::Jwk> for JwkKey {
    fn from(key: tenantry_proto::tenantry::identity::v1::Jwk) -> Self {
        JwkKey {
            kty: key.kty,
            crv: key.crv,
            x: key.x,
            kid: key.kid,
            alg: key.alg,
            use_: key.r#use,
        }
    }
}
