//! The policy a new password must meet (NIST SP 800-63B): length in code
//! points after NFKC normalization, no composition rules, and a check
//! against a bundled list of common and breached passwords, the user's own
//! details and an estimate of its strength.

use std::collections::HashSet;
use std::sync::LazyLock;

use tenantry_kit::Error;
use unicode_normalization::UnicodeNormalization;

use super::*;
use crate::error::Error as Refusal;

/// Common and breached passwords, NFKC-normalized and lowercased, at least
/// 8 code points each. Source and license: `data/README.md`.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .collect()
});

/// Checks a new password against the policy and returns it NFKC-normalized
/// ([`normalize_password`]); [`PasswordHasher`] normalizes too, so either
/// the input or the returned value may be hashed.
///
/// `context` holds the user's own details (email, display name, …); the
/// password may not equal any of them, ignoring case. For a value holding
/// an `@`, its local part is checked too.
///
/// Length counts Unicode code points after normalization (NIST SP
/// 800-63B), not bytes. There are no composition rules.
pub fn check_policy(
    password: &str,
    options: &PasswordOptions,
    context: &[&str],
) -> Result<String, Error> {
    // NFKC composition merges at most four code points (a Greek letter and
    // three marks) of at most four bytes each into one character, so an
    // input of more than 16 bytes per allowed character cannot normalize
    // to an allowed length: rejected before paying for its normalization.
    let too_long = || Refusal::PasswordTooLong {
        max_length: options.max_length,
    };
    if password.len() > options.max_length.saturating_mul(16) {
        return Err(too_long().into());
    }

    let normalized = normalize_password(password);
    let length = normalized.chars().count();
    if length < options.min_length {
        return Err(Refusal::PasswordTooShort {
            min_length: options.min_length,
        }
        .into());
    }
    if length > options.max_length {
        return Err(too_long().into());
    }

    // The list is lowercased, so "Password123!" and "PASSWORD123!" are as
    // guessable as "password123!": attackers try case variants first.
    let folded = normalized.to_lowercase();
    if COMMON_PASSWORDS.contains(folded.as_str()) {
        return Err(Refusal::PasswordTooCommon.into());
    }
    if context
        .iter()
        .flat_map(|value| context_forms(value))
        .any(|value| value == folded)
    {
        return Err(Refusal::PasswordIsPersonal.into());
    }
    if options.min_strength > 0 {
        // Strength is estimated on a prefix: the estimator's matching grows
        // faster than linearly, and a long prefix is strong or not already.
        let prefix: String = normalized.chars().take(STRENGTH_PREFIX).collect();
        let estimate = zxcvbn::zxcvbn(&prefix, context);
        let score = estimate.score() as u8;
        if score < options.min_strength {
            let hint = estimate
                .feedback()
                .and_then(|feedback| feedback.warning())
                .map(|warning| format!(" ({warning})"))
                .unwrap_or_default();
            return Err(Refusal::PasswordTooWeak {
                hint,
                strength: score,
                min_strength: options.min_strength,
            }
            .into());
        }
    }
    Ok(normalized)
}

/// How many characters of a password its strength is estimated on.
const STRENGTH_PREFIX: usize = 100;

/// The form in which a password is checked, hashed and verified: NFKC, so
/// the same password typed on another keyboard or input method (full-width
/// letters, composed or decomposed accents) is the same password. Hashing
/// and verification apply it themselves; it is idempotent.
pub fn normalize_password(password: &str) -> String {
    password.nfkc().collect()
}

/// A context value, and its local part when it is an email address, in the
/// same form as a folded password: NFKC, lowercase, trimmed.
fn context_forms(value: &str) -> Vec<String> {
    let value: String = value.trim().nfkc().collect::<String>().to_lowercase();
    let mut forms = Vec::with_capacity(2);
    if let Some((local, _)) = value.rsplit_once('@')
        && !local.is_empty()
    {
        forms.push(local.to_owned());
    }
    if !value.is_empty() {
        forms.push(value);
    }
    forms
}

#[cfg(test)]
mod tests {
    use tenantry_kit::Code;

    use super::*;

    fn violation(result: Result<String, Error>) -> &'static str {
        result.expect_err("the policy should reject").reason()
    }

    #[test]
    fn length_boundaries() {
        let options = PasswordOptions::default();
        let short = check_policy("kq7!vZ2#mR9", &options, &[]).expect_err("11 is too short");
        assert_eq!(short.reason(), "PASSWORD_TOO_SHORT");
        assert_eq!(short.code(), Code::InvalidArgument);
        let status = short.into_status();
        assert!(!status.message().contains("kq7"));

        assert!(check_policy("kq7!vZ2#mR9x", &options, &[]).is_ok());
        let long = "kq7!vZ2#".repeat(8);
        assert_eq!(long.chars().count(), 64);
        assert!(check_policy(&long, &options, &[]).is_ok());
        let longest = "kq7!vZ2#".repeat(32);
        assert!(check_policy(&longest, &options, &[]).is_ok());
        let too_long = format!("{longest}x");
        assert_eq!(
            violation(check_policy(&too_long, &options, &[])),
            "PASSWORD_TOO_LONG"
        );
        // Far beyond the limit is rejected before normalization.
        let huge = "x".repeat(1 << 20);
        assert_eq!(
            violation(check_policy(&huge, &options, &[])),
            "PASSWORD_TOO_LONG"
        );
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        let options = PasswordOptions::default();
        // 12 three-byte characters: 36 bytes, 12 code points.
        let kanji = "合言葉は秘密の山と川と海";
        assert_eq!(kanji.chars().count(), 12);
        assert_eq!(check_policy(kanji, &options, &[]).expect("allowed"), kanji);
        assert_eq!(
            violation(check_policy("合言葉は秘密の山と川と", &options, &[])),
            "PASSWORD_TOO_SHORT"
        );
    }

    #[test]
    fn unicode_is_normalized() {
        let options = PasswordOptions {
            min_length: 8,
            ..PasswordOptions::default()
        };
        // Full-width letters are NFKC-equal to ASCII ones.
        assert_eq!(
            violation(check_policy("ｐａｓｓｗｏｒｄ", &options, &[])),
            "PASSWORD_TOO_COMMON"
        );
        // A decomposed "é" is returned composed, so either form hashes alike.
        let decomposed = "cafe\u{301} au lait, s'il vous pla\u{131}t";
        let normalized = check_policy(decomposed, &options, &[]).expect("allowed");
        assert!(normalized.starts_with("caf\u{e9} "));
        assert_eq!(normalized.chars().count(), decomposed.chars().count() - 1);
    }

    #[test]
    fn common_passwords_are_rejected_in_any_case() {
        let options = PasswordOptions {
            min_length: 8,
            ..PasswordOptions::default()
        };
        for password in ["password", "PassWord123", "qwertyuiop", "iloveyou"] {
            assert_eq!(
                violation(check_policy(password, &options, &[])),
                "PASSWORD_TOO_COMMON",
                "{password}"
            );
        }
        // With the default minimum, a 12-character entry of the list.
        assert_eq!(
            violation(check_policy(
                "Qwertyuiop123",
                &PasswordOptions::default(),
                &[]
            )),
            "PASSWORD_TOO_COMMON"
        );
        assert!(COMMON_PASSWORDS.len() > 10_000);
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|p| p.chars().count() >= LOWEST_MIN_LENGTH)
        );
    }

    #[test]
    fn easily_guessed_passwords_are_rejected() {
        let options = PasswordOptions::default();
        for password in [
            "aaaaaaaaaaaa",
            "123456789012",
            "iloveyou1234",
            "letmein12345",
            "P@ssw0rd1234",
            "qwertyqwerty",
        ] {
            let reason = violation(check_policy(password, &options, &[]));
            assert!(
                reason == "PASSWORD_TOO_WEAK" || reason == "PASSWORD_TOO_COMMON",
                "{password}: {reason}"
            );
        }
        // Built from the user's own details: weak, even if not equal.
        assert_eq!(
            violation(check_policy(
                "hamilton2024!",
                &options,
                &["margaret.hamilton@example.com", "Margaret Hamilton"]
            )),
            "PASSWORD_TOO_WEAK"
        );
        for strong in [
            "correct horse battery staple",
            "brand new passphrase",
            "yet another passphrase!",
            "another long passphrase entirely",
            "v8#Lq2!zR0w@Tm",
        ] {
            check_policy(strong, &options, &[]).unwrap_or_else(|e| panic!("{strong}: {e:?}"));
        }
        // Off when configured so.
        let off = PasswordOptions {
            min_strength: 0,
            ..PasswordOptions::default()
        };
        assert!(check_policy("aaaaaaaaaaaa", &off, &[]).is_ok());
    }

    #[test]
    fn user_details_are_rejected() {
        let options = PasswordOptions::default();
        let context = ["Margaret.Hamilton@example.com", "Margaret Hamilton"];
        for password in [
            "margaret.hamilton@example.com",
            "MARGARET.HAMILTON",
            "margaret hamilton",
        ] {
            let error = check_policy(password, &options, &context).expect_err(password);
            assert_eq!(error.reason(), "PASSWORD_TOO_COMMON", "{password}");
        }
        assert!(check_policy("margaret hamilton apollo 11", &options, &context).is_ok());
        // Empty context values never match.
        assert!(check_policy("an unremarkable phrase", &options, &["", "  "]).is_ok());
    }
}
