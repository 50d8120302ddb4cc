//! How one Tenantry service proves to another that it is one: a short-lived
//! credential MACed with the deployment's internal key.
//!
//! Most calls between services are made on a caller's behalf, with the
//! caller's own access token. A few are made by a service as itself — the
//! organization service handing the authorization index the events of a
//! write, for one — and need a credential no client can hold. Identity signs
//! access tokens, so only identity could mint service tokens; instead, every
//! process of a deployment shares one secret key (`auth.internal_key`,
//! generated into the data directory on a single machine) and presents
//!
//! ```text
//! x-tenantry-internal: <service>.<expiry, unix seconds>.<hex HMAC-SHA256>
//! ```
//!
//! over `tenantry-internal-v1|<service>|<expiry>`. The layer accepts it for
//! a known service name only, until it expires (at most [`LIFETIME`] ahead),
//! compared in constant time. Such a principal is what
//! [`Principal::internal_service`] recognizes.
//!
//! The gateway holds no such key: it keeps no state, and a compromised edge
//! must not speak for the services. What it does report — requests it
//! refused before any service saw them, for the audit log — it reports with
//! an *edge credential*: the same form for the service name [`EDGE`], made
//! with a key of its own (`edge_key`) that only the gateway and the audit
//! service hold. Such a principal is what [`Principal::is_edge`] recognizes;
//! it is nobody's internal service, so it passes no check but the audit
//! service's own.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::jwt::Claims;
use super::principal::{Principal, PrincipalKind};

/// The metadata key of the credential.
pub const HEADER: &str = "x-tenantry-internal";

/// How long a minted credential is valid.
pub const LIFETIME: Duration = Duration::from_secs(60);

/// The services that may present an internal credential.
pub const SERVICES: &[&str] = &["identity", "organization", "rbac", "billing", "audit"];

/// The name in an edge credential (see the module docs).
pub const EDGE: &str = "gateway";

/// The only methods an edge credential opens (by path prefix): the audit
/// service's reports from the edge.
pub const EDGE_METHODS: &str = "/tenantry.audit.v1.EdgeReportService/";

/// The deployment's internal key.
#[derive(Clone)]
pub struct InternalKey([u8; 32]);

impl std::fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalKey(<redacted>)")
    }
}

impl InternalKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> InternalKey {
        InternalKey(bytes)
    }

    fn mac(&self, service: &str, expiry: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(format!("tenantry-internal-v1|{service}|{expiry}").as_bytes());
        mac
    }

    /// A credential for `service`, valid from `now_unix` for [`LIFETIME`].
    pub fn credential(&self, service: &str, now_unix: i64) -> String {
        let expiry = now_unix + LIFETIME.as_secs() as i64;
        let tag = self.mac(service, expiry).finalize().into_bytes();
        format!("{service}.{expiry}.{}", hex::encode(tag))
    }

    /// The service a credential was minted for, if it is genuine and
    /// current at `now_unix`.
    pub fn verify(&self, credential: &str, now_unix: i64) -> Option<&'static str> {
        self.verify_among(credential, now_unix, SERVICES)
    }

    /// Whether `credential` is a genuine, current edge credential made with
    /// this key (the edge key).
    pub fn verify_edge(&self, credential: &str, now_unix: i64) -> bool {
        self.verify_among(credential, now_unix, &[EDGE]).is_some()
    }

    fn verify_among(
        &self,
        credential: &str,
        now_unix: i64,
        services: &[&'static str],
    ) -> Option<&'static str> {
        let mut parts = credential.splitn(3, '.');
        let (service, expiry, tag) = (parts.next()?, parts.next()?, parts.next()?);
        let service = services.iter().copied().find(|s| *s == service)?;
        let expiry: i64 = expiry.parse().ok()?;
        if expiry < now_unix || expiry > now_unix + LIFETIME.as_secs() as i64 {
            return None;
        }
        let tag = hex::decode(tag).ok()?;
        self.mac(service, expiry).verify_slice(&tag).ok()?;
        Some(service)
    }

    /// The principal of a verified credential.
    pub fn principal(service: &'static str, now_unix: i64) -> Principal {
        Self::principal_with(service, "svc", now_unix)
    }

    /// The principal of a verified edge credential.
    pub fn edge_principal(now_unix: i64) -> Principal {
        Self::principal_with(EDGE, "edge", now_unix)
    }

    fn principal_with(service: &'static str, method: &str, now_unix: i64) -> Principal {
        Principal::from(Claims {
            iss: "tenantry-internal".into(),
            aud: "tenantry-internal".into(),
            sub: service.into(),
            sid: None,
            org: None,
            iat: now_unix,
            exp: now_unix + LIFETIME.as_secs() as i64,
            nbf: None,
            jti: String::new(),
            amr: vec![method.into()],
            kind: PrincipalKind::ServiceAccount,
            perms: None,
            team: None,
            mfa_pending: false,
            name: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_credential_verifies_for_its_service_until_it_expires() {
        let key = InternalKey::new([7; 32]);
        let credential = key.credential("organization", NOW);
        assert_eq!(key.verify(&credential, NOW), Some("organization"));
        assert_eq!(key.verify(&credential, NOW + 60), Some("organization"));
        assert_eq!(key.verify(&credential, NOW + 61), None, "expired");
        let principal = InternalKey::principal("organization", NOW);
        assert_eq!(principal.internal_service(), Some("organization"));
    }

    #[test]
    fn forged_and_foreign_credentials_are_refused() {
        let key = InternalKey::new([7; 32]);
        let other = InternalKey::new([8; 32]);
        let good = key.credential("rbac", NOW);
        let (_, tail) = good.split_once('.').unwrap();
        let cases = [
            other.credential("rbac", NOW),
            format!("billing.{tail}"),
            format!("intruder.{tail}"),
            good.replace(&format!("{}", NOW + 60), &format!("{}", NOW + 59)),
            // An expiry far ahead would be a credential that never dies.
            key.credential("rbac", NOW + 3600),
            "rbac".into(),
            "rbac.x.y".into(),
            String::new(),
        ];
        for case in cases {
            assert_eq!(key.verify(&case, NOW), None, "{case}");
        }
    }

    #[test]
    fn an_edge_credential_is_no_internal_one_and_the_other_way_round() {
        let internal = InternalKey::new([7; 32]);
        let edge = InternalKey::new([9; 32]);
        let from_edge = edge.credential(EDGE, NOW);
        assert!(edge.verify_edge(&from_edge, NOW));
        assert_eq!(edge.verify(&from_edge, NOW), None, "the edge is no service");
        assert_eq!(internal.verify(&from_edge, NOW), None);
        // The edge key cannot pose as a service, nor the internal key as
        // the edge (each key verifies its own names only).
        assert!(!edge.verify_edge(&edge.credential("rbac", NOW), NOW));
        assert!(!edge.verify_edge(&internal.credential(EDGE, NOW), NOW));
        assert!(!edge.verify_edge(&edge.credential(EDGE, NOW - 3600), NOW));
        let principal = InternalKey::edge_principal(NOW);
        assert!(principal.is_edge());
        assert_eq!(principal.internal_service(), None);
        assert!(!InternalKey::principal("rbac", NOW).is_edge());
    }
}
