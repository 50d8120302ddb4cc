//! Reversible secrets at rest (TOTP secrets): sealed with a key from
//! configuration, never stored in clear.
//!
//! A sealed value is `sealed:v1:<key id>:<base64url(nonce ‖ ciphertext)>`,
//! XChaCha20-Poly1305 with a random 192-bit nonce, and the value's
//! `context` (such as `identity.totp:<user id>`) as associated data, so a
//! sealed value copied into another row or column does not open. The key
//! id travels with the ciphertext: rotation adds a key and makes it
//! current, values sealed with an older key still open, and
//! [`Sealer::is_current`] tells which to seal again (then the old key can
//! go).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

const PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 24;

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the value is not sealed")]
    NotSealed,
    #[error("the value was sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the value does not open with its key (corrupt, or moved from another context)")]
    Corrupt,
}

/// The keys that seal and open secrets: one current, older ones to open.
pub struct Sealer {
    current: String,
    keys: BTreeMap<String, XChaCha20Poly1305>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Sealer {
    /// A sealer with `keys` (id → 32 bytes) that seals with `current`.
    pub fn new(current: &str, keys: &BTreeMap<String, [u8; 32]>) -> anyhow::Result<Sealer> {
        anyhow::ensure!(
            keys.contains_key(current),
            "the current sealing key `{current}` is not among the configured keys"
        );
        for id in keys.keys() {
            anyhow::ensure!(
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "a sealing key id may hold only letters, digits, `-` and `_`, got `{id}`"
            );
        }
        Ok(Sealer {
            current: current.to_string(),
            keys: keys
                .iter()
                .map(|(id, key)| (id.clone(), XChaCha20Poly1305::new(Key::from_slice(key))))
                .collect(),
        })
    }

    /// Seals `plaintext` for `context` with the current key.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let cipher = &self.keys[&self.current];
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length this process holds");
        let mut body = nonce.to_vec();
        body.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}:{}", self.current, URL_SAFE_NO_PAD.encode(body))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(PREFIX).ok_or(SealError::NotSealed)?;
        let (id, body) = rest.split_once(':').ok_or(SealError::Corrupt)?;
        let cipher = self
            .keys
            .get(id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Corrupt)?;
        if body.len() < NONCE_BYTES {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)
    }

    /// Whether a value is sealed with the current key (false for values in
    /// clear and for older keys: both are to be sealed again).
    pub fn is_current(&self, value: &str) -> bool {
        value
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current)
    }

    /// Whether a value is sealed at all (with any key).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ids: &[(&str, u8)]) -> BTreeMap<String, [u8; 32]> {
        ids.iter()
            .map(|(id, b)| (id.to_string(), [*b; 32]))
            .collect()
    }

    #[test]
    fn seals_and_opens_in_its_context_only() {
        let sealer = Sealer::new("k1", &keys(&[("k1", 1)])).unwrap();
        let sealed = sealer.seal(b"JBSWY3DPEHPK3PXP", "identity.totp:u1");
        assert!(sealed.starts_with("sealed:v1:k1:"));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(sealed, sealer.seal(b"JBSWY3DPEHPK3PXP", "identity.totp:u1"));
        assert_eq!(
            sealer.open(&sealed, "identity.totp:u1").unwrap(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            sealer.open(&sealed, "identity.totp:u2"),
            Err(SealError::Corrupt)
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            sealer.open(&tampered, "identity.totp:u1"),
            Err(SealError::Corrupt)
        );
        assert_eq!(
            sealer.open("JBSWY3DPEHPK3PXP", "identity.totp:u1"),
            Err(SealError::NotSealed)
        );
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_the_new_key() {
        let old = Sealer::new("k1", &keys(&[("k1", 1)])).unwrap();
        let sealed = old.seal(b"secret", "c");
        let rotated = Sealer::new("k2", &keys(&[("k1", 1), ("k2", 2)])).unwrap();
        assert_eq!(rotated.open(&sealed, "c").unwrap(), b"secret");
        assert!(!rotated.is_current(&sealed));
        let resealed = rotated.seal(b"secret", "c");
        assert!(rotated.is_current(&resealed));
        // Once everything is sealed again, the old key can go.
        let retired = Sealer::new("k2", &keys(&[("k2", 2)])).unwrap();
        assert_eq!(retired.open(&resealed, "c").unwrap(), b"secret");
        assert_eq!(
            retired.open(&sealed, "c"),
            Err(SealError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn the_current_key_must_be_configured() {
        assert!(Sealer::new("k9", &keys(&[("k1", 1)])).is_err());
        assert!(Sealer::new("a:b", &keys(&[("a:b", 1)])).is_err());
        let debug = format!("{:?}", Sealer::new("k1", &keys(&[("k1", 1)])).unwrap());
        assert!(!debug.contains("1, 1"), "{debug}");
    }
}
