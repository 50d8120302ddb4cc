//! Tokens signed and verified, and every way a token is refused.

use super::*;
use sha2::Sha256;

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
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
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
