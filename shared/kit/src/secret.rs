//! Opaque single-use tokens (refresh, verification, invitation, ownership
//! transfer…): how they are drawn, stored and compared.
//!
//! A token is 256 random bits from the thread-local CSPRNG, shown once as
//! base64url, and stored only as [`hash_token`]. Nothing here touches the
//! database.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in an opaque token: 256 bits, far beyond guessing.
pub const TOKEN_BYTES: usize = 32;

/// A new opaque token: 32 random bytes, base64url without padding (43
/// characters, safe in URLs, headers and cookies). Show it once, store only
/// [`hash_token`].
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The storage form of a high-entropy secret: SHA-256, lowercase hex.
///
/// A fast hash is right here, unlike for passwords: argon2 exists to make
/// guessing a low-entropy password expensive, but a token carries 256 random
/// bits, so a leaked table of hashes cannot be reversed by guessing, and a
/// slow hash would only make every use expensive. The hash still matters: a
/// database dump alone gives no usable token. Look tokens up by this value
/// (an indexed equality), never by the token itself.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets (or their hashes) in constant time, so the time a
/// comparison takes does not reveal how long a prefix matched. Lengths are
/// not secret: unequal lengths answer `false` at once.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_hashed() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        let hash = hash_token(&a);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&a));
        assert!(tokens_equal(&hash, &hash_token(&a)));
        assert!(!tokens_equal(&hash, &hash_token(&b)));
        assert!(!tokens_equal("abc", "abcd"));
    }
}
