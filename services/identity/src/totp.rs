//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), written
//! directly on `hmac` + `sha1`: the algorithm is twenty lines, and owning it
//! keeps the replay rule and the constant-time comparison in plain sight.
//!
//! The parameters are the ones every authenticator app supports: HMAC-SHA1,
//! 6 digits, 30-second steps. A code is accepted for the current step and one
//! step either side (clock skew), and never for a step at or before the last
//! one the account used, so a code seen over a shoulder or in a log cannot be
//! replayed.

use std::fmt::Write as _;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Digits in a code.
pub const DIGITS: usize = 6;
/// Seconds in a time step.
pub const PERIOD_SECS: i64 = 30;
/// Steps accepted on either side of the current one: one, so a code typed
/// just as it rolls over, or on a phone whose clock is a little off, works.
pub const SKEW_STEPS: i64 = 1;
/// Bytes in a generated secret: 160 bits, the length RFC 4226 recommends and
/// the HMAC-SHA1 block output.
const SECRET_BYTES: usize = 20;
/// The fewest bytes a secret given as base32 may have (RFC 4226 R6: 128 bits).
const MIN_SECRET_BYTES: usize = 16;

/// A TOTP shared secret. Store it as bytes (it must be readable to verify a
/// code, so it cannot be hashed); show it once, as [`otpauth_uri`] or
/// [`TotpSecret::to_base32`], at enrollment.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A new secret of 20 random bytes from the CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    /// A secret loaded from storage.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(bytes)
    }

    /// The raw bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32, uppercase, without padding: what authenticator apps
    /// expect in the URI and for manual entry.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// Parses base32 as people and other systems write it: any case, spaces
    /// and trailing `=` padding allowed. `None` when it is not base32 or holds
    /// fewer than 128 bits.
    pub fn from_base32(text: &str) -> Option<Self> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = BASE32_NOPAD
            .decode(cleaned.trim_end_matches('=').as_bytes())
            .ok()?;
        (bytes.len() >= MIN_SECRET_BYTES).then_some(TotpSecret(bytes))
    }
}

/// Debug never prints the secret.
impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// The `otpauth://` URI an authenticator app scans as a QR code (Google's Key
/// URI format): the label `Issuer:account`, and the issuer again as a
/// parameter, which newer apps prefer. Issuer and account are percent-encoded
/// separately, so a `:` inside either cannot shift the label's split, and a
/// space is `%20`, not `+`, which some apps show literally.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={PERIOD_SECS}",
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

/// The time step a Unix time (seconds) falls in; what [`verify`] returns and
/// the caller stores as the last used step.
pub fn step_at(unix_time: i64) -> i64 {
    unix_time.div_euclid(PERIOD_SECS)
}

/// The code for a Unix time (seconds): 6 digits, zero-padded. Times before
/// 1970 have no step and answer the code of step 0.
pub fn code_at(secret: &TotpSecret, unix_time: i64) -> String {
    let step = u64::try_from(step_at(unix_time)).unwrap_or(0);
    String::from_utf8(code_for_step(secret, step).to_vec()).expect("digits are ASCII")
}

/// Checks a code typed at `unix_time`. Accepts exactly six ASCII digits that
/// match the current step or one step either side, and only for a step after
/// `last_used_step`. Answers the matched step, which the caller must store as
/// the account's new last used step (in the same transaction that accepts the
/// login) so that the code cannot be used twice.
///
/// Every candidate step is computed and compared in constant time, so the
/// answer's timing says nothing about how much of the code was right.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    unix_time: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(unix_time);
    let mut matched = None;
    for step in current - SKEW_STEPS..=current + SKEW_STEPS {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let equal: bool = code_for_step(secret, counter).ct_eq(code.as_bytes()).into();
        // The latest fresh step wins in the (one in a million) case that two
        // neighbouring steps share a code.
        if equal && last_used_step.is_none_or(|last| step > last) {
            matched = Some(step);
        }
    }
    matched
}

/// HOTP (RFC 4226 §5.3): HMAC-SHA1 of the big-endian counter, dynamic
/// truncation to 31 bits, the last six decimal digits as ASCII.
fn code_for_step(secret: &TotpSecret, counter: u64) -> [u8; DIGITS] {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let mut value = binary % 10u32.pow(DIGITS as u32);
    let mut digits = [b'0'; DIGITS];
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    digits
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            write!(out, "%{byte:02X}").expect("writing to a String cannot fail");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA1 seed of RFC 6238 Appendix B.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    /// RFC 6238 Appendix B, SHA1 rows, last six of the eight digits.
    const RFC_VECTORS: [(i64, &str); 6] = [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_111_111_111, "050471"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
        (20_000_000_000, "353130"),
    ];

    #[test]
    fn rfc_6238_sha1_vectors() {
        let secret = rfc_secret();
        for (time, code) in RFC_VECTORS {
            assert_eq!(code_at(&secret, time), code, "time {time}");
            assert_eq!(verify(&secret, code, time, None), Some(step_at(time)));
        }
    }

    #[test]
    fn base32_round_trips_and_tolerates_how_people_write_it() {
        let secret = rfc_secret();
        assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        for text in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
        ] {
            assert_eq!(TotpSecret::from_base32(text), Some(rfc_secret()), "{text}");
        }
        let generated = TotpSecret::generate();
        assert_eq!(generated.as_bytes().len(), 20);
        assert_eq!(
            TotpSecret::from_base32(&generated.to_base32()),
            Some(generated)
        );
        // Padding, for secrets whose length is not a multiple of five bytes.
        let sixteen = TotpSecret::from_bytes(vec![7; 16]);
        let padded = format!("{}======", sixteen.to_base32());
        assert_eq!(TotpSecret::from_base32(&padded), Some(sixteen));
    }

    #[test]
    fn base32_rejects_junk_and_short_secrets() {
        for text in ["", "GEZDGNBV", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", "ÉÉÉÉ"] {
            assert_eq!(TotpSecret::from_base32(text), None, "{text}");
        }
    }

    #[test]
    fn otpauth_uri_encodes_issuer_and_account() {
        let uri = otpauth_uri(&rfc_secret(), "Acme Corp:EU", "alice+mfa@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Corp%3AEU:alice%2Bmfa%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp%3AEU\
             &algorithm=SHA1&digits=6&period=30"
        );
        let unicode = otpauth_uri(&rfc_secret(), "Zürich", "a&b=c?d#e");
        assert!(unicode.starts_with("otpauth://totp/Z%C3%BCrich:a%26b%3Dc%3Fd%23e?"));
    }

    #[test]
    fn accepts_one_step_of_skew_either_side() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let step = step_at(now);
        let earlier = code_at(&secret, now - PERIOD_SECS);
        let later = code_at(&secret, now + PERIOD_SECS);
        assert_eq!(verify(&secret, &earlier, now, None), Some(step - 1));
        assert_eq!(verify(&secret, &later, now, None), Some(step + 1));
        for outside in [now - 2 * PERIOD_SECS, now + 2 * PERIOD_SECS] {
            let code = code_at(&secret, outside);
            // Guard against the rare code shared with a step in the window.
            let in_window = (now - PERIOD_SECS..=now + PERIOD_SECS)
                .step_by(PERIOD_SECS as usize)
                .any(|t| code_at(&secret, t) == code);
            if !in_window {
                assert_eq!(verify(&secret, &code, now, None), None);
            }
        }
    }

    #[test]
    fn rejects_replays_and_older_steps() {
        let secret = rfc_secret();
        let now = 1_111_111_111;
        let code = code_at(&secret, now);
        let step = verify(&secret, &code, now, None).expect("fresh code");
        assert_eq!(verify(&secret, &code, now, Some(step)), None);
        // A code of the previous step is still in the skew window but older
        // than the one already used.
        let previous = code_at(&secret, now - PERIOD_SECS);
        assert_eq!(verify(&secret, &previous, now, Some(step)), None);
        // The next step's code is fresh.
        let next = code_at(&secret, now + PERIOD_SECS);
        assert_eq!(verify(&secret, &next, now, Some(step)), Some(step + 1));
        assert_eq!(
            verify(&secret, &next, now + PERIOD_SECS, Some(step + 1)),
            None
        );
    }

    #[test]
    fn rejects_malformed_codes() {
        let secret = rfc_secret();
        let time = 59;
        for code in [
            "",
            "28708",
            "2870822",
            "28708a",
            " 287082",
            "287082 ",
            "287 082",
            "+28708",
            "-28708",
            "２８７０８２",
            "94287082",
        ] {
            assert_eq!(verify(&secret, code, time, None), None, "{code:?}");
        }
    }

    #[test]
    fn wrong_secret_or_code_is_rejected() {
        let time = 1_234_567_890;
        assert_eq!(verify(&rfc_secret(), "005925", time, None), None);
        let other = TotpSecret::from_bytes(b"12345678901234567891".to_vec());
        let code = code_at(&other, time);
        if code != "005924" {
            assert_eq!(verify(&rfc_secret(), &code, time, None), None);
        }
    }

    #[test]
    fn times_before_1970_do_not_panic() {
        let secret = rfc_secret();
        assert_eq!(code_at(&secret, -1), code_at(&secret, 0));
        let code = code_at(&secret, 0);
        assert_eq!(verify(&secret, &code, -15, None), Some(0));
    }

    #[test]
    fn debug_redacts_the_secret() {
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret(<redacted>)");
    }
}
