//! High-entropy secrets the identity service hands out, and the form it
//! stores them in.
//!
//! Three kinds, all drawn from the thread-local CSPRNG (`rand::rng()`, ChaCha
//! seeded from the operating system):
//!
//! - **Opaque tokens** (refresh, email verification, password reset, MFA
//!   challenge, invitation): 256 random bits as base64url, stored as
//!   [`hash_token`].
//! - **API keys** (`tnt_…`) and **service-account client secrets** (`tsa_…`):
//!   `<prefix><id>_<secret><crc>`, looked up by the public id and stored as
//!   [`hash_api_key_secret`] of the secret part only.
//! - **MFA recovery codes**: 80 random bits shown as `xxxx-xxxx-xxxx-xxxx`,
//!   stored as [`hash_token`] of [`normalize_recovery_code`].
//!
//! Nothing here touches the database; the callers store the hashes.

use data_encoding::BASE32_NOPAD;
use rand::RngCore;
use tenantry_kit::Error;

pub use tenantry_kit::secret::{hash_token, new_token, tokens_equal};

/// The lowercase RFC 4648 base32 alphabet every key and code here uses. It has
/// no `0`, `1`, `8` or `9`, so `0`/`o` and `1`/`l` cannot be confused, and no
/// symbol breaks a double-click selection.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Characters of the public id of an API key: 60 random bits, a lookup key
/// that is unique in practice (a unique index catches the rest).
const ID_LEN: usize = 12;
/// Characters of the secret part of an API key: 160 random bits.
const SECRET_LEN: usize = 32;
/// Characters of the checksum: the full 32-bit CRC32 as 7 base32 digits,
/// most significant first (the first digit is therefore one of `a`–`d`).
/// Why 7 and not 6: 6 digits hold only 30 bits, and with the whole CRC every
/// single-character typo and every swap of neighbours is guaranteed to be
/// caught (CRC32 detects every error burst up to 32 bits). Why base32 and not
/// 8 hex digits: one alphabet for the whole key keeps it a single word for
/// double-click selection and a simple regex for secret scanners.
const CRC_LEN: usize = 7;

/// The format of API keys and client secrets, which differ only in prefix and
/// in the error they answer.
///
/// Why a fixed prefix: secret scanners (GitHub secret scanning, trufflehog,
/// gitleaks) match a fixed, recognisable prefix plus the checksum, so a leaked
/// key is found and reported with few false positives. Why a checksum: a typo
/// or a truncated paste is rejected offline, without a database read, which
/// also makes a flood of random keys cheap to turn away.
struct KeyFormat {
    /// The fixed prefix, ending with `_`.
    prefix: &'static str,
    /// The UNAUTHENTICATED message every rejected key of this kind answers.
    rejection: &'static str,
}

/// API keys: `tnt_<id>_<secret><crc>`.
const API_KEY: KeyFormat = KeyFormat {
    prefix: "tnt_",
    rejection: "invalid API key",
};

/// Service-account client secrets: `tsa_<id>_<secret><crc>`.
const CLIENT_SECRET: KeyFormat = KeyFormat {
    prefix: "tsa_",
    rejection: "invalid client credentials",
};

impl KeyFormat {
    /// The length of a whole key of this format.
    fn len(&self) -> usize {
        self.prefix.len() + ID_LEN + 1 + SECRET_LEN + CRC_LEN
    }

    /// The error a rejected key answers: the same for every kind of defect,
    /// and never echoing the input (it may be a real key pasted in the wrong
    /// place).
    fn rejected(&self) -> Error {
        Error::unauthenticated(self.rejection).with_domain(crate::NAME)
    }

    fn generate(&self) -> (ApiKeyParts, String) {
        let parts = ApiKeyParts {
            id: random_base32(ID_LEN),
            secret: random_base32(SECRET_LEN),
        };
        let mut full = format!("{}{}_{}", self.prefix, parts.id, parts.secret);
        let crc = encode_crc(crc32fast::hash(full.as_bytes()));
        full.extend(crc.iter().map(|&b| char::from(b)));
        debug_assert_eq!(full.len(), self.len());
        (parts, full)
    }

    /// Checks everything that can be checked without the database: prefix,
    /// length, alphabet (lowercase only: keys are case-sensitive), separator
    /// and checksum. None of this is secret, so it need not be constant time;
    /// the secret itself is compared by its hash after the lookup.
    fn parse(&self, input: &str) -> Result<ApiKeyParts, Error> {
        // ASCII first, so the byte offsets below are character boundaries.
        if !input.is_ascii() || input.len() != self.len() {
            return Err(self.rejected());
        }
        let Some(rest) = input.strip_prefix(self.prefix) else {
            return Err(self.rejected());
        };
        let (id, rest) = rest.split_at(ID_LEN);
        let Some(rest) = rest.strip_prefix('_') else {
            return Err(self.rejected());
        };
        let (secret, crc) = rest.split_at(SECRET_LEN);
        if !is_base32(id) || !is_base32(secret) {
            return Err(self.rejected());
        }
        let body = &input[..input.len() - CRC_LEN];
        if crc.as_bytes() != encode_crc(crc32fast::hash(body.as_bytes())) {
            return Err(self.rejected());
        }
        Ok(ApiKeyParts {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

/// The two parts of an API key or client secret: the public `id`, which
/// finds the stored row, and the `secret`, whose [`hash_api_key_secret`] that
/// row holds.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyParts {
    /// 12 lowercase base32 characters; not secret (safe to log and to show in
    /// lists as `tnt_<id>`).
    pub id: String,
    /// 32 lowercase base32 characters (160 bits); never logged or stored.
    pub secret: String,
}

/// Debug never prints the secret, so a stray `?parts` in a log leaks nothing.
impl std::fmt::Debug for ApiKeyParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyParts")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The parts of a service-account client secret: the same shape as an API key.
pub type ClientSecretParts = ApiKeyParts;

/// A new API key: its parts (store `id` and [`hash_api_key_secret`] of
/// `secret`) and the full `tnt_<id>_<secret><crc>` string, shown once.
pub fn new_api_key() -> (ApiKeyParts, String) {
    API_KEY.generate()
}

/// Parses an API key without any database read. A wrong prefix, length,
/// character (including uppercase) or checksum answers UNAUTHENTICATED
/// "invalid API key".
pub fn parse_api_key(input: &str) -> Result<ApiKeyParts, Error> {
    API_KEY.parse(input)
}

/// The error an API key that parses but is unknown, revoked, expired or has a
/// wrong secret must answer, so that no caller can tell these cases apart
/// from a malformed key.
pub fn invalid_api_key() -> Error {
    API_KEY.rejected()
}

/// A new service-account client secret, `tsa_<id>_<secret><crc>`: its parts
/// and the full string, shown once.
pub fn new_client_secret() -> (ClientSecretParts, String) {
    CLIENT_SECRET.generate()
}

/// Parses a client secret without any database read; a malformed one answers
/// UNAUTHENTICATED "invalid client credentials".
pub fn parse_client_secret(input: &str) -> Result<ClientSecretParts, Error> {
    CLIENT_SECRET.parse(input)
}

/// The error an unknown or wrong client secret must answer, identical to a
/// malformed one.
pub fn invalid_client_secret() -> Error {
    CLIENT_SECRET.rejected()
}

/// The storage form of the secret part of an API key or client secret (see
/// [`hash_token`] for why SHA-256 suffices: the part holds 160 random bits).
/// Hash only the secret part: the id is stored in the clear as the lookup key.
pub fn hash_api_key_secret(secret: &str) -> String {
    hash_token(secret)
}

/// Recovery codes issued at once.
const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code: 80 random bits, enough for a single-use
/// code that is also throttled like a login.
const RECOVERY_CODE_LEN: usize = 16;

/// Ten new recovery codes, shown once as `xxxx-xxxx-xxxx-xxxx`. Store
/// [`hash_recovery_code`] of each; each is single-use.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let code = random_base32(RECOVERY_CODE_LEN);
            let groups: Vec<&str> = (0..RECOVERY_CODE_LEN)
                .step_by(4)
                .map(|start| &code[start..start + 4])
                .collect();
            groups.join("-")
        })
        .collect()
}

/// The canonical form of a typed recovery code: dashes and whitespace
/// removed, lowercased; `None` unless exactly 16 base32 characters remain.
/// People retype these from paper, so the grouping and case are forgiven,
/// but nothing else is guessed at.
pub fn normalize_recovery_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == RECOVERY_CODE_LEN && is_base32(&code)).then_some(code)
}

/// The storage form of a recovery code as shown or as typed: [`hash_token`]
/// of its normalized form, or `None` when it cannot be a recovery code.
pub fn hash_recovery_code(input: &str) -> Option<String> {
    normalize_recovery_code(input).map(|code| hash_token(&code))
}

/// `len` random lowercase base32 characters (5 bits each). Encodes enough
/// random bytes and cuts the surplus bits off the end.
fn random_base32(len: usize) -> String {
    let mut bytes = vec![0u8; (len * 5).div_ceil(8)];
    rand::rng().fill_bytes(&mut bytes);
    let mut text = BASE32_NOPAD.encode(&bytes);
    text.truncate(len);
    text.make_ascii_lowercase();
    text
}

/// Whether `text` uses only the lowercase base32 alphabet.
fn is_base32(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
}

/// The CRC as [`CRC_LEN`] base32 digits, most significant first.
fn encode_crc(crc: u32) -> [u8; CRC_LEN] {
    let mut digits = [0u8; CRC_LEN];
    let mut rest = crc;
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(rest & 31) as usize];
        rest >>= 5;
    }
    digits
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tenantry_kit::error::Code;

    use super::*;

    fn assert_rejected(result: Result<ApiKeyParts, Error>, input: &str) {
        let error = result.expect_err("the key must be rejected");
        assert_eq!(error.code(), Code::Unauthenticated);
        assert_eq!(error.message(), "invalid API key");
        if input.len() > 8 {
            assert!(!format!("{error:?}").contains(input), "the input is echoed");
        }
    }

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let token = new_token();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(token, new_token());
    }

    #[test]
    fn token_hash_is_lowercase_sha256_hex() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = new_token();
        assert_eq!(hash_token(&token), hash_token(&token));
        assert_ne!(hash_token(&token), hash_token(&new_token()));
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
        assert!(tokens_equal("", ""));
    }

    #[test]
    fn api_key_round_trips() {
        let (parts, full) = new_api_key();
        assert_eq!(full.len(), 56);
        assert!(full.starts_with(&format!("tnt_{}_{}", parts.id, parts.secret)));
        assert_eq!(parts.id.len(), 12);
        assert_eq!(parts.secret.len(), 32);
        assert_eq!(parse_api_key(&full).expect("parses"), parts);
        assert_eq!(
            hash_api_key_secret(&parts.secret),
            hash_token(&parts.secret)
        );
    }

    #[test]
    fn client_secret_round_trips_and_is_not_an_api_key() {
        let (parts, full) = new_client_secret();
        assert!(full.starts_with("tsa_"));
        assert_eq!(parse_client_secret(&full).expect("parses"), parts);
        assert_rejected(parse_api_key(&full), &full);
        let (_, api_key) = new_api_key();
        let error = parse_client_secret(&api_key).expect_err("an API key is no client secret");
        assert_eq!(error.code(), Code::Unauthenticated);
        assert_eq!(error.message(), "invalid client credentials");
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let (_, full) = new_api_key();
        let bytes = full.as_bytes();
        for position in 0..bytes.len() {
            for &replacement in ALPHABET.iter().chain(b"_ABZ019") {
                if replacement == bytes[position] {
                    continue;
                }
                let mut corrupted = bytes.to_vec();
                corrupted[position] = replacement;
                let corrupted = String::from_utf8(corrupted).expect("ascii");
                assert_rejected(parse_api_key(&corrupted), &corrupted);
            }
        }
    }

    #[test]
    fn every_swap_of_neighbours_is_rejected() {
        let (_, full) = new_api_key();
        let bytes = full.as_bytes();
        for position in 0..bytes.len() - 1 {
            if bytes[position] == bytes[position + 1] {
                continue;
            }
            let mut swapped = bytes.to_vec();
            swapped.swap(position, position + 1);
            let swapped = String::from_utf8(swapped).expect("ascii");
            assert_rejected(parse_api_key(&swapped), &swapped);
        }
    }

    #[test]
    fn wrong_prefix_is_rejected() {
        let (_, full) = new_api_key();
        for prefix in ["tsa_", "TNT_", "tnx_", "xnt_"] {
            let other = format!("{prefix}{}", &full[4..]);
            assert_rejected(parse_api_key(&other), &other);
        }
    }

    #[test]
    fn truncated_and_extended_keys_are_rejected() {
        let (_, full) = new_api_key();
        for len in 0..full.len() {
            assert_rejected(parse_api_key(&full[..len]), &full[..len]);
        }
        for suffix in ["a", " ", "\n", "_"] {
            let longer = format!("{full}{suffix}");
            assert_rejected(parse_api_key(&longer), &longer);
        }
        let padded = format!(" {full}");
        assert_rejected(parse_api_key(&padded), &padded);
    }

    #[test]
    fn keys_are_case_sensitive_lowercase() {
        let (_, full) = new_api_key();
        let upper = full.to_ascii_uppercase();
        assert_rejected(parse_api_key(&upper), &upper);
        // Only the secret part uppercased, prefix intact.
        let mixed = format!("{}{}", &full[..17], full[17..].to_ascii_uppercase());
        assert_rejected(parse_api_key(&mixed), &mixed);
    }

    #[test]
    fn non_ascii_input_is_rejected_without_panicking() {
        let (_, full) = new_api_key();
        // Same byte length, a multi-byte character straddling the id/secret split.
        let tricky = format!("{}é{}", &full[..15], &full[17..]);
        assert_eq!(tricky.len(), full.len());
        assert_rejected(parse_api_key(&tricky), &tricky);
    }

    #[test]
    fn a_valid_format_with_a_wrong_secret_parses_but_hashes_differently() {
        // The checksum is not authentication: anyone can forge a well-formed
        // key. The stored hash must still decide.
        let (parts, _) = new_api_key();
        let body = format!("tnt_{}_{}", parts.id, "a".repeat(32));
        let crc = encode_crc(crc32fast::hash(body.as_bytes()));
        let forged = format!("{body}{}", String::from_utf8_lossy(&crc));
        let forged_parts = parse_api_key(&forged).expect("well-formed");
        assert_eq!(forged_parts.id, parts.id);
        assert!(!tokens_equal(
            &hash_api_key_secret(&forged_parts.secret),
            &hash_api_key_secret(&parts.secret)
        ));
    }

    #[test]
    fn generated_keys_are_unique() {
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for _ in 0..1000 {
            let (parts, full) = new_api_key();
            assert!(ids.insert(parts.id));
            assert!(keys.insert(full));
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let (parts, _) = new_api_key();
        let debug = format!("{parts:?}");
        assert!(debug.contains(&parts.id));
        assert!(!debug.contains(&parts.secret));
    }

    #[test]
    fn recovery_codes_are_ten_grouped_and_distinct() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 19);
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4);
            assert!(groups.iter().all(|g| g.len() == 4 && is_base32(g)));
            let normalized = normalize_recovery_code(code).expect("normalizes");
            assert_eq!(normalized, code.replace('-', ""));
        }
    }

    #[test]
    fn recovery_codes_normalize_what_people_type() {
        let canonical = Some("abcdefghijklmn23".to_owned());
        for typed in [
            "abcd-efgh-ijkl-mn23",
            "abcdefghijklmn23",
            "ABCD-EFGH-IJKL-MN23",
            " abcd efgh\tijkl mn23 \n",
            "abcd--efgh-ijkl-mn23",
        ] {
            assert_eq!(normalize_recovery_code(typed), canonical, "{typed:?}");
        }
        assert_eq!(
            hash_recovery_code("ABCD EFGH IJKL MN23"),
            hash_recovery_code("abcd-efgh-ijkl-mn23")
        );
        assert_eq!(
            hash_recovery_code("abcd-efgh-ijkl-mn23"),
            Some(hash_token("abcdefghijklmn23"))
        );
    }

    #[test]
    fn malformed_recovery_codes_are_refused() {
        for typed in [
            "",
            "abcd-efgh-ijkl-mn2",
            "abcd-efgh-ijkl-mn234",
            "abcd-efgh-ijkl-mn01",
            "abcd-efgh-ijkl-mn89",
            "abcd_efgh_ijkl_mn23",
            "abcd-efgh-ijkl-mné",
            "abcd-efgh-ijkl-mnéé",
        ] {
            assert_eq!(normalize_recovery_code(typed), None, "{typed:?}");
            assert_eq!(hash_recovery_code(typed), None, "{typed:?}");
        }
    }
}
