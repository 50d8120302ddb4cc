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
use sha2::{Digest as _, Sha256};

use super::principal::PrincipalKind;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const ISSUER: &str = "https://id.tenantry.test";
    pub(crate) const AUDIENCE: &str = "tenantry";
    pub(crate) const NOW: i64 = 1_750_000_000;

    pub(crate) fn claims(now: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "0197a1b2-0000-7000-8000-000000000001".into(),
            sid: Some("0197a1b2-0000-7000-8000-000000000002".into()),
            org: Some("0197a1b2-0000-7000-8000-000000000003".into()),
            iat: now,
            exp: now + 900,
            nbf: None,
            jti: "0197a1b2-0000-7000-8000-000000000004".into(),
            amr: vec!["pwd".into()],
            kind: PrincipalKind::User,
            perms: None,
            team: None,
            mfa_pending: false,
            name: None,
        }
    }

    pub(crate) fn expectations() -> Expectations {
        Expectations::new(ISSUER, AUDIENCE)
    }

    fn key(kid: &str, byte: u8) -> SigningKey {
        SigningKey::from_seed(kid, [byte; 32])
    }

    fn set_of(keys: &[&SigningKey]) -> KeySet {
        KeySet::from_jwks(&keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()).unwrap()
    }

    fn b64(data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(data)
    }

    /// A token with a hand-written header, signed correctly by `key`.
    fn signed_with_header(key: &SigningKey, header: &str, claims: &Claims) -> String {
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(&serde_json::to_vec(claims).unwrap())
        );
        let signature = key.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let key = key("k1", 1);
        let mut claims = claims(NOW);
        claims.amr = vec!["pwd".into(), "mfa".into()];
        claims.kind = PrincipalKind::ApiKey;
        claims.perms = Some(vec!["billing.invoices.read".into()]);
        claims.team = Some("team-1".into());
        claims.nbf = Some(NOW);
        let token = key.sign(&claims);
        let verified = set_of(&[&key])
            .verify(&token, &expectations(), NOW + 10)
            .unwrap();
        assert_eq!(verified, claims);
    }

    #[test]
    fn the_header_names_the_algorithm_type_and_key() {
        let key = key("k1", 1);
        let token = key.sign(&claims(NOW));
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
        );
    }

    #[test]
    fn seeds_and_jwks_round_trip() {
        let generated = SigningKey::generate();
        assert_eq!(generated.kid(), thumbprint(&generated.verifying_key()));
        let restored = SigningKey::from_seed(generated.kid(), generated.seed());
        assert_eq!(restored.public_jwk(), generated.public_jwk());

        let jwk = generated.public_jwk();
        let proto: tenantry_proto::tenantry::identity::v1::Jwk = jwk.clone().into();
        assert_eq!(proto.r#use, "sig");
        assert_eq!(JwkKey::from(proto), jwk);
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "sig");
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["alg"], "EdDSA");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = key("k1", 7);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&format!("{:?}", key.seed())), "{shown}");
        assert!(!shown.contains(&b64(&key.seed())), "{shown}");
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
        let key = VerifyingKey::from_bytes(&bytes).unwrap();
        assert_eq!(
            thumbprint(&key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn bad_jwks_are_refused() {
        let good = key("k1", 1).public_jwk();
        let mut wrong_curve = good.clone();
        wrong_curve.crv = "X25519".into();
        assert!(matches!(
            wrong_curve.verifying_key(),
            Err(JwkError::Unsupported { .. })
        ));
        let mut wrong_alg = good.clone();
        wrong_alg.alg = "HS256".into();
        assert!(matches!(
            wrong_alg.verifying_key(),
            Err(JwkError::Unsupported { .. })
        ));
        let mut short = good.clone();
        short.x = b64(&[1; 31]);
        assert!(matches!(
            short.verifying_key(),
            Err(JwkError::InvalidKey { .. })
        ));
        // The identity point has small order: a weak key.
        let mut weak = good.clone();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        weak.x = b64(&identity);
        assert!(matches!(
            weak.verifying_key(),
            Err(JwkError::InvalidKey { .. })
        ));
        let mut no_kid = good;
        no_kid.kid.clear();
        assert_eq!(no_kid.verifying_key(), Err(JwkError::MissingKid));
    }

    #[test]
    fn malformed_tokens_are_malformed() {
        let key = key("k1", 1);
        let set = set_of(&[&key]);
        let token = key.sign(&claims(NOW));
        let [h, p, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let cases = [
            String::new(),
            "garbage".to_string(),
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.{s}"),
            // Padding is not base64url as JWS uses it.
            format!("{h}=.{p}.{s}"),
            // The standard alphabet is not the URL-safe one.
            format!("{}.{p}.{s}", h.replace('-', "+").replace('_', "/") + "+"),
            format!("{}.{p}.{s}", b64(b"not json")),
            format!("{h}.{p}.{}", b64(&[0; 10])),
            format!("{h}.{p}.{s}{}", "A".repeat(MAX_TOKEN_LEN)),
        ];
        for case in cases {
            let result = set.verify(&case, &expectations(), NOW);
            assert!(
                matches!(result, Err(TokenError::Malformed(_))),
                "{case:.80}: {result:?}"
            );
        }
    }

    #[test]
    fn a_payload_that_is_not_our_claims_is_malformed_even_when_signed() {
        let key = key("k1", 1);
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"EdDSA","kid":"k1"}"#),
            b64(br#"{"sub":"x"}"#)
        );
        let token = format!(
            "{input}.{}",
            b64(&key.key.sign(input.as_bytes()).to_bytes())
        );
        assert_eq!(
            set_of(&[&key]).verify(&token, &expectations(), NOW),
            Err(TokenError::Malformed("claims json"))
        );
    }

    #[test]
    fn alg_none_with_an_empty_signature_is_refused() {
        let key = key("k1", 1);
        let payload = b64(&serde_json::to_vec(&claims(NOW)).unwrap());
        for header in [
            r#"{"alg":"none","kid":"k1"}"#,
            r#"{"alg":"None","kid":"k1"}"#,
            r#"{"kid":"k1"}"#,
        ] {
            let token = format!("{}.{payload}.", b64(header.as_bytes()));
            assert_eq!(
                set_of(&[&key]).verify(&token, &expectations(), NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn an_hs256_token_keyed_with_the_public_key_is_refused() {
        use hmac::{Hmac, Mac};
        let key = key("k1", 1);
        // The classic confusion: HMAC keyed with the verifier's public key.
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#),
            b64(&serde_json::to_vec(&claims(NOW)).unwrap())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(key.verifying_key().as_bytes()).unwrap();
        mac.update(input.as_bytes());
        let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(
            set_of(&[&key]).verify(&token, &expectations(), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn crit_headers_are_refused() {
        let key = key("k1", 1);
        let token = signed_with_header(
            &key,
            r#"{"alg":"EdDSA","kid":"k1","crit":["exp"],"exp":1}"#,
            &claims(NOW),
        );
        assert_eq!(
            set_of(&[&key]).verify(&token, &expectations(), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn an_embedded_key_is_never_trusted() {
        let trusted = key("k1", 1);
        let attacker = key("k1", 2);
        let jwk = serde_json::to_string(&attacker.public_jwk()).unwrap();
        let header = format!(r#"{{"alg":"EdDSA","kid":"k1","jwk":{jwk}}}"#);
        let token = signed_with_header(&attacker, &header, &claims(NOW));
        assert_eq!(
            set_of(&[&trusted]).verify(&token, &expectations(), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_foreign_typ_is_refused() {
        let key = key("k1", 1);
        let token = signed_with_header(
            &key,
            r#"{"alg":"EdDSA","typ":"mfa+jwt","kid":"k1"}"#,
            &claims(NOW),
        );
        assert!(matches!(
            set_of(&[&key]).verify(&token, &expectations(), NOW),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_and_missing_key_ids() {
        let key = key("k2", 1);
        let token = key.sign(&claims(NOW));
        let other = self::key("k1", 1);
        assert_eq!(
            set_of(&[&other]).verify(&token, &expectations(), NOW),
            Err(TokenError::UnknownKey("k2".into()))
        );
        let token = signed_with_header(&key, r#"{"alg":"EdDSA"}"#, &claims(NOW));
        assert_eq!(
            set_of(&[&key]).verify(&token, &expectations(), NOW),
            Err(TokenError::Malformed("missing kid"))
        );
    }

    #[test]
    fn another_key_with_the_same_kid_is_a_bad_signature() {
        let trusted = key("k1", 1);
        let impostor = key("k1", 2);
        let token = impostor.sign(&claims(NOW));
        assert_eq!(
            set_of(&[&trusted]).verify(&token, &expectations(), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let key = key("k1", 1);
        let token = key.sign(&claims(NOW));
        let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let mut forged = claims(NOW);
        forged.org = Some("someone-elses-organization".into());
        let token = format!("{h}.{}.{s}", b64(&serde_json::to_vec(&forged).unwrap()));
        assert_eq!(
            set_of(&[&key]).verify(&token, &expectations(), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_malleated_signature_is_refused() {
        // verify_strict rejects S >= L: adding the group order to S gives
        // another encoding of the same signature.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let key = key("k1", 1);
        let token = key.sign(&claims(NOW));
        let (input, s) = token.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(s).unwrap();
        let mut carry = 0u16;
        for (byte, l) in signature[32..].iter_mut().zip(L) {
            let sum = u16::from(*byte) + u16::from(l) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        let token = format!("{input}.{}", b64(&signature));
        assert!(matches!(
            set_of(&[&key]).verify(&token, &expectations(), NOW),
            Err(TokenError::BadSignature | TokenError::Malformed(_))
        ));
    }

    #[test]
    fn expiry_is_checked_with_leeway() {
        let key = key("k1", 1);
        let set = set_of(&[&key]);
        let token = key.sign(&claims(NOW));
        let exp = NOW + 900;
        assert!(set.verify(&token, &expectations(), exp + 29).is_ok());
        assert_eq!(
            set.verify(&token, &expectations(), exp + 30),
            Err(TokenError::Expired)
        );
        let strict = Expectations {
            leeway_secs: 0,
            ..expectations()
        };
        assert_eq!(set.verify(&token, &strict, exp), Err(TokenError::Expired));
    }

    #[test]
    fn future_tokens_are_not_yet_valid() {
        let key = key("k1", 1);
        let set = set_of(&[&key]);
        let issued_later = key.sign(&claims(NOW + 60));
        assert_eq!(
            set.verify(&issued_later, &expectations(), NOW),
            Err(TokenError::NotYetValid)
        );
        // Within the leeway, a fast clock at the issuer is tolerated.
        let slightly_later = key.sign(&claims(NOW + 20));
        assert!(set.verify(&slightly_later, &expectations(), NOW).is_ok());

        let mut not_before = claims(NOW);
        not_before.nbf = Some(NOW + 120);
        let token = key.sign(&not_before);
        assert_eq!(
            set.verify(&token, &expectations(), NOW),
            Err(TokenError::NotYetValid)
        );
        assert!(set.verify(&token, &expectations(), NOW + 100).is_ok());
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let key = key("k1", 1);
        let set = set_of(&[&key]);
        let mut other_issuer = claims(NOW);
        other_issuer.iss = "https://evil.test".into();
        assert_eq!(
            set.verify(&key.sign(&other_issuer), &expectations(), NOW),
            Err(TokenError::WrongIssuer)
        );
        let mut other_audience = claims(NOW);
        other_audience.aud = "another-product".into();
        assert_eq!(
            set.verify(&key.sign(&other_audience), &expectations(), NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn an_absurd_expiry_does_not_overflow() {
        let key = key("k1", 1);
        let mut forever = claims(NOW);
        forever.exp = i64::MAX;
        assert!(
            set_of(&[&key])
                .verify(&key.sign(&forever), &expectations(), NOW)
                .is_ok()
        );
        let mut ancient = claims(i64::MIN);
        ancient.exp = i64::MIN;
        assert_eq!(
            set_of(&[&key]).verify(&key.sign(&ancient), &expectations(), NOW),
            Err(TokenError::Expired)
        );
    }
}
