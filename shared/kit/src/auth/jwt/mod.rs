//! Access tokens: compact JWS (RFC 7515) signed with EdDSA over Ed25519
//! (RFC 8037), and nothing else.
//!
//! One algorithm, fixed by the verifier, is the whole defence against the
//! classic JWT confusions: the `alg` header is checked against `EdDSA` and
//! never used to pick an algorithm, so `none`, `HS256` with the public key as
//! the HMAC secret and friends all fail before any cryptography runs. Keys
//! are found by `kid` in a [`KeySet`] the verifier already trusts; headers
//! that point elsewhere (`jku`, `x5u`, `jwk`) are ignored. Signatures are
//! checked with `verify_strict`, which rejects malleable signatures and weak
//! keys.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::principal::PrincipalKind;

mod jwk;
#[cfg(test)]
pub(crate) mod tests;

pub use jwk::{JwkError, JwkKey, thumbprint};

/// The longest token [`KeySet::verify`] looks at, in bytes. Our tokens are a
/// few hundred bytes; anything near this is an attack on the parser.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The only signing algorithm, as spelled in the JOSE header and in JWKs.
pub const ALGORITHM: &str = "EdDSA";

/// The claims of a Tenantry access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer: the deployment's identity service.
    pub iss: String,
    /// The audience the token is for.
    pub aud: String,
    /// The subject: the id of the user, API key or service account.
    pub sub: String,
    /// The session id, for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The active organization id, absent when the token acts in none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's unique id.
    pub jti: String,
    /// How the subject authenticated (RFC 8176): `["pwd"]`, `["pwd", "mfa"]`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// What kind of principal the subject is.
    pub kind: PrincipalKind,
    /// The permissions an API key is limited to; `None` for users and
    /// service accounts, whose permissions come from their memberships.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perms: Option<Vec<String>>,
    /// The team an API key is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// True for a token that may only enroll MFA (its organization requires
    /// MFA and the user has none yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa_pending: bool,
    /// The subject's display name when the token was issued: who did it,
    /// in words, for the audit log. Never used for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a token was rejected. Callers log it at debug and answer a generic
/// message: the variant tells an attacker which check to work on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS we can read: wrong number of parts, bad base64url,
    /// bad JSON, missing `kid`, or longer than [`MAX_TOKEN_LEN`].
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than EdDSA (or none), or carries
    /// `crit` extensions we do not understand.
    #[error("unsupported algorithm or critical header")]
    UnsupportedAlgorithm,
    /// No trusted key has this id; the caller may refresh its key set.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not verify with the key named by `kid`.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is not the expected audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The verifier holds no keys yet (identity has not answered since the
    /// process started): the token may be fine, the verifier is not ready.
    #[error("no signing keys loaded yet")]
    KeysUnavailable,
}

/// What a verifier requires of a token besides a good signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: i64,
}

impl Expectations {
    /// The default clock-skew tolerance, in seconds.
    pub const DEFAULT_LEEWAY_SECS: i64 = 30;

    /// Expectations with the default leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Expectations {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: Self::DEFAULT_LEEWAY_SECS,
        }
    }
}

/// The JOSE header we write.
#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// The JOSE header we read. Unknown members are ignored on purpose: `jku`,
/// `x5u` or an embedded `jwk` must never change which key verifies.
#[derive(Deserialize)]
struct HeaderIn {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

/// A private signing key with its key id. `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key whose id is its RFC 7638 JWK thumbprint.
    pub fn generate() -> Self {
        // rand 0.9's OS-seeded generator; ed25519-dalek 2 wants rand_core 0.6
        // for its own `generate`, so we hand it the seed instead.
        let seed = rand::random::<[u8; 32]>();
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        SigningKey {
            kid: thumbprint(&key.verifying_key()),
            key,
        }
    }

    /// The key for a stored 32-byte seed.
    pub fn from_seed(kid: impl Into<String>, seed: [u8; 32]) -> Self {
        SigningKey {
            kid: kid.into(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// The secret seed, for storing the key. Handle with care.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id, the `kid` header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = HeaderOut {
            alg: ALGORITHM,
            typ: "JWT",
            kid: &self.kid,
        };
        // Serializing plain structs of strings and integers cannot fail.
        let header = serde_json::to_vec(&header).expect("header serializes");
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        token
    }

    /// The public key as a JWK, for the JWKS.
    pub fn public_jwk(&self) -> JwkKey {
        JwkKey::from_verifying_key(&self.kid, &self.verifying_key())
    }
}

/// The public keys a verifier trusts, by key id.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// An empty set: every token is [`TokenError::UnknownKey`].
    pub fn new() -> Self {
        KeySet::default()
    }

    /// The set of a JWKS. One unusable key fails the whole set: keys come
    /// from our own identity service, so a bad one is a bug to surface, not
    /// to skip.
    pub fn from_jwks<'a>(keys: impl IntoIterator<Item = &'a JwkKey>) -> Result<Self, JwkError> {
        let mut set = KeySet::new();
        for jwk in keys {
            set.insert(jwk.kid.clone(), jwk.verifying_key()?);
        }
        Ok(set)
    }

    /// Trusts `key` under `kid`, replacing any key with the same id.
    pub fn insert(&mut self, kid: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(kid.into(), key);
    }

    /// Whether a key with this id is trusted.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token` and returns its claims. `now_unix` is the current
    /// time in seconds since the Unix epoch.
    ///
    /// Checks run cheapest and least trusting first: size and shape, header
    /// (algorithm, `crit`, `kid`), key lookup, signature, and only then the
    /// claims, so no claim of an unsigned payload is ever interpreted.
    pub fn verify(
        &self,
        token: &str,
        expect: &Expectations,
        now_unix: i64,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three parts"));
        };

        let header = decode(header_b64)?;
        let header: HeaderIn =
            serde_json::from_slice(&header).map_err(|_| TokenError::Malformed("header json"))?;
        if header.alg.as_deref() != Some(ALGORITHM) {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        // RFC 7515 §4.1.11: a recipient must reject extensions it does not
        // understand, and we understand none.
        if header.crit.is_some() {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        // `typ` is optional, but when present it must say JWT, so another
        // kind of JWS signed by the same key is not taken for an access token.
        if let Some(typ) = &header.typ
            && !typ.eq_ignore_ascii_case("JWT")
        {
            return Err(TokenError::Malformed("typ is not JWT"));
        }
        let Some(kid) = header.kid else {
            return Err(TokenError::Malformed("missing kid"));
        };

        let payload = decode(payload_b64)?;
        let signature = decode(signature_b64)?;
        let signature =
            Signature::from_slice(&signature).map_err(|_| TokenError::Malformed("signature"))?;

        let Some(key) = self.keys.get(&kid) else {
            return Err(TokenError::UnknownKey(kid));
        };
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        key.verify_strict(signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;

        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed("claims json"))?;
        check_claims(&claims, expect, now_unix)?;
        Ok(claims)
    }
}

/// Strict base64url: the URL-safe alphabet, no padding, no trailing bits, so
/// every token has exactly one encoding.
fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed("base64url"))
}

pub(crate) fn check_claims(
    claims: &Claims,
    expect: &Expectations,
    now: i64,
) -> Result<(), TokenError> {
    let leeway = expect.leeway_secs.max(0);
    // Saturating: a hostile `exp` of i64::MAX must not wrap around.
    if now >= claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    let latest_start = now.saturating_add(leeway);
    if claims.nbf.is_some_and(|nbf| nbf > latest_start) || claims.iat > latest_start {
        return Err(TokenError::NotYetValid);
    }
    if claims.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != expect.audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(())
}
