//! Opaque, tamper-checked page tokens.
//!
//! A token carries the cursor of the next page, authenticated with
//! HMAC-SHA256 over the cursor *and* a fingerprint of the query that produced
//! it (filters, parent, caller's tenant). A token edited by hand, or replayed
//! against a different query, fails the check and answers INVALID_ARGUMENT.
//! The token only says where to continue: it never grants access, because
//! every page re-applies the caller's scope.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::error::{Error, Result};

const VERSION: u8 = 1;
const MAC_LEN: usize = 32;

/// Signs and verifies page tokens with one secret key.
#[derive(Clone)]
pub struct PageTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens { key: <redacted> }")
    }
}

impl PageTokens {
    /// Page tokens signed with `key`. Every replica serving the same API
    /// must share the key so a token from one is valid on another.
    pub fn new(key: [u8; 32]) -> Self {
        PageTokens { key }
    }

    /// Encodes `cursor` for a query with the given fingerprint.
    pub fn encode<C: Serialize>(&self, query: &[u8], cursor: &C) -> String {
        let payload = serde_json::to_vec(cursor).expect("cursors serialize");
        let mut token = Vec::with_capacity(1 + payload.len() + MAC_LEN);
        token.push(VERSION);
        token.extend_from_slice(&payload);
        let mac = self.mac(query, &token);
        token.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Decodes a token produced by [`encode`](Self::encode) for the same
    /// query. An empty token means the first page and yields `None`.
    pub fn decode<C: DeserializeOwned>(&self, query: &[u8], token: &str) -> Result<Option<C>> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || Error::invalid_field("page_token", "is not a page token of this query");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() < 1 + MAC_LEN || raw[0] != VERSION {
            return Err(invalid());
        }
        let (signed, mac) = raw.split_at(raw.len() - MAC_LEN);
        let mut verifier = self.hmac(query);
        verifier.update(signed);
        // verify_slice compares in constant time.
        verifier.verify_slice(mac).map_err(|_| invalid())?;
        serde_json::from_slice(&signed[1..])
            .map(Some)
            .map_err(|_| invalid())
    }

    fn hmac(&self, query: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(&(query.len() as u64).to_be_bytes());
        mac.update(query);
        mac
    }

    fn mac(&self, query: &[u8], signed: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.hmac(query);
        mac.update(signed);
        mac.finalize().into_bytes().into()
    }
}

/// Bounds a requested page size: 0 means the default, anything above `max`
/// is clamped (AIP-158), negative is an error.
pub fn page_size(requested: i32, default: u32, max: u32) -> Result<u32> {
    match requested {
        n if n < 0 => Err(Error::invalid_field("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok((n as u32).min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Cursor {
        after: String,
    }

    fn tokens() -> PageTokens {
        PageTokens::new([7; 32])
    }

    #[test]
    fn round_trip() {
        let cursor = Cursor {
            after: "abc".into(),
        };
        let token = tokens().encode(b"q1", &cursor);
        assert_eq!(
            tokens().decode::<Cursor>(b"q1", &token).unwrap(),
            Some(cursor)
        );
        assert_eq!(tokens().decode::<Cursor>(b"q1", "").unwrap(), None);
    }

    #[test]
    fn tampered_tokens_and_other_queries_are_rejected() {
        let token = tokens().encode(
            b"q1",
            &Cursor {
                after: "abc".into(),
            },
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[3] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(raw);
        for (query, token) in [
            (&b"q2"[..], token.as_str()),
            (b"q1", tampered.as_str()),
            (b"q1", "garbage!"),
            (b"q1", "AQ"),
        ] {
            let error = tokens().decode::<Cursor>(query, token).unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument);
        }
        let other_key = PageTokens::new([8; 32]);
        assert!(other_key.decode::<Cursor>(b"q1", &token).is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(0, 50, 1000).unwrap(), 50);
        assert_eq!(page_size(5000, 50, 1000).unwrap(), 1000);
        assert!(page_size(-1, 50, 1000).is_err());
    }
}
