//! Email addresses: the one normalized form in which they are stored,
//! compared and kept unique.
//!
//! We accept the addresses people actually have, in a strict subset of RFC
//! 5321/5322: an ASCII dot-atom local part and an ASCII hostname. Anything
//! rarer (quoted local parts, comments, address literals, raw Unicode) is
//! refused rather than interpreted, because every other form is a way for
//! two different strings to name one mailbox or to look like another.

use tenantry_kit::Error;
use unicode_normalization::UnicodeNormalization;

/// The ErrorInfo domain of every error from this module.
const DOMAIN: &str = "identity";

/// RFC 5321's limit on a forward path (256) less the angle brackets.
const MAX_LENGTH: usize = 254;

/// RFC 5321's limit on a local part.
const MAX_LOCAL_LENGTH: usize = 64;

/// RFC 1035's limit on one DNS label.
const MAX_LABEL_LENGTH: usize = 63;

/// Characters of an RFC 5322 atom besides ASCII letters and digits.
const ATOM_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Normalizes an email address, or rejects it naming `field`.
///
/// Surrounding whitespace is trimmed and the address NFKC-normalized (so a
/// full-width `ｕｓｅｒ＠ｅｘａｍｐｌｅ.ｃｏｍ` is `user@example.com`), then
/// lowercased whole. Lowercasing the local part is not what RFC 5321 says
/// (it lets a server treat `Bob` and `bob` as two mailboxes), but no mail
/// provider in use does, and treating them as two accounts would let anyone
/// register a look-alike of an existing user and would lock people out who
/// type their address capitalized differently.
pub fn normalize_email(field: &str, input: &str) -> Result<String, Error> {
    let invalid = |description: &str| Error::invalid_field(field, description).with_domain(DOMAIN);

    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(invalid("must not be empty"));
    }
    // NFKC shortens or lengthens a string by a bounded factor; an input far
    // past the limit is rejected before paying for its normalization.
    if trimmed.len() > 4 * MAX_LENGTH {
        return Err(invalid("must be at most 254 characters"));
    }
    let address: String = trimmed.nfkc().collect();
    if address.chars().count() > MAX_LENGTH {
        return Err(invalid("must be at most 254 characters"));
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    if address.starts_with('"') {
        return Err(invalid("quoted local parts are not accepted"));
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err(invalid("must contain an @"));
    };
    if domain.contains('@') {
        return Err(invalid("must contain exactly one @"));
    }

    check_local_part(local).map_err(invalid)?;
    check_domain(domain).map_err(invalid)?;
    Ok(address.to_ascii_lowercase())
}

/// The domain of a normalized address: the part after its `@` (empty when
/// there is none, which a normalized address always has).
pub fn email_domain(normalized: &str) -> &str {
    normalized.rsplit_once('@').map_or("", |(_, domain)| domain)
}

fn check_local_part(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("must have a part before the @");
    }
    // Only ASCII: this is what blocks Unicode confusables such as a
    // Cyrillic "а" (U+0430) in "аdmin@example.com", which NFKC leaves
    // alone and which would otherwise register a second account that looks
    // exactly like the first. SMTPUTF8 mailboxes are rare enough to refuse.
    if !local.is_ascii() {
        return Err(
            "the part before the @ must contain only ASCII letters, digits and . ! # $ % & ' * + - / = ? ^ _ ` { | } ~",
        );
    }
    if local.len() > MAX_LOCAL_LENGTH {
        return Err("the part before the @ must be at most 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(
            "the part before the @ must not start or end with a dot or contain two dots in a row",
        );
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || ATOM_SPECIALS.contains(c))
    {
        return Err(
            "the part before the @ must contain only ASCII letters, digits and . ! # $ % & ' * + - / = ? ^ _ ` { | } ~",
        );
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("must have a domain after the @");
    }
    // Internationalized domains arrive in their ASCII (punycode) form, the
    // one DNS and mail servers use; accepting Unicode here would need IDNA
    // mapping and its confusable rules, and two spellings of one domain.
    if !domain.is_ascii() {
        return Err(
            "the domain must be ASCII; write an internationalized domain in punycode (xn--…)",
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain must contain a dot, like example.com");
    }
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL_LENGTH {
            return Err("each dot-separated part of the domain must be 1 to 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("the domain may contain only letters, digits, hyphens and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("no part of the domain may start or end with a hyphen");
        }
    }
    // An all-numeric top-level domain is an IP address, not a hostname
    // (RFC 3696): mail to user@127.0.0.1 is not an address we verify.
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("the domain must be a hostname, not an IP address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_kit::Code;

    fn ok(input: &str) -> String {
        normalize_email("email", input).unwrap_or_else(|e| panic!("{input:?}: {e:?}"))
    }

    fn rejected(input: &str) {
        let error = normalize_email("user.email", input).expect_err(input);
        assert_eq!(error.code(), Code::InvalidArgument, "{input:?}");
        assert_eq!(error.reason(), "INVALID_ARGUMENT", "{input:?}");
        assert!(format!("{error:?}").contains("\"user.email\""), "{input:?}");
        // The encoded google.rpc details carry the ErrorInfo domain verbatim.
        let status = error.into_status();
        assert!(String::from_utf8_lossy(status.details()).contains("identity"));
    }

    /// An address of exactly `length` characters.
    fn address_of(length: usize) -> String {
        let local = "l".repeat(64);
        // 64 + "@" + 63 + "." + 63 + "." + rest + ".com"
        let rest = length - 64 - 1 - 64 - 64 - 4;
        format!(
            "{local}@{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(rest)
        )
    }

    #[test]
    fn plain_addresses_pass() {
        assert_eq!(ok("ada@example.com"), "ada@example.com");
        assert_eq!(
            ok("first.last+tag@mail.example.co.uk"),
            "first.last+tag@mail.example.co.uk"
        );
        assert_eq!(
            ok("o'brien_{x}@sub-domain.example"),
            "o'brien_{x}@sub-domain.example"
        );
        assert_eq!(ok("1@a1.io"), "1@a1.io");
    }

    #[test]
    fn mixed_case_is_lowercased() {
        assert_eq!(ok("Ada.Lovelace@Example.COM"), "ada.lovelace@example.com");
        assert_eq!(ok("ADA@EXAMPLE.COM"), ok("ada@example.com"));
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_inner_rejected() {
        assert_eq!(ok("  ada@example.com\t\n"), "ada@example.com");
        assert_eq!(ok("\u{a0}ada@example.com\u{3000}"), "ada@example.com");
        rejected("ada lovelace@example.com");
        rejected("ada@exa mple.com");
        rejected("ada\t@example.com");
        rejected("ada@example.com\u{0}");
        rejected("ada\u{7f}@example.com");
        rejected("ada\u{a0}@example.com");
    }

    #[test]
    fn empty_is_rejected() {
        rejected("");
        rejected("   ");
    }

    #[test]
    fn length_boundaries() {
        let longest = address_of(254);
        assert_eq!(longest.len(), 254);
        assert_eq!(ok(&longest), longest);
        rejected(&address_of(255));
        rejected(&"a".repeat(100_000));
    }

    #[test]
    fn at_signs() {
        rejected("ada.example.com");
        rejected("ada@@example.com");
        rejected("ada@lovelace@example.com");
        rejected("@example.com");
        rejected("ada@");
    }

    #[test]
    fn local_part_rules() {
        assert_eq!(
            ok(&format!("{}@example.com", "x".repeat(64))).len(),
            64 + 12
        );
        rejected(&format!("{}@example.com", "x".repeat(65)));
        rejected("\"ada\"@example.com");
        rejected("\"ada@lovelace\"@example.com");
        rejected(".ada@example.com");
        rejected("ada.@example.com");
        rejected("ada..lovelace@example.com");
        rejected("ada(comment)@example.com");
        rejected("ada,lovelace@example.com");
        rejected("ada\\lovelace@example.com");
        rejected("<ada>@example.com");
    }

    #[test]
    fn confusables_are_rejected() {
        // Cyrillic "а" (U+0430) looks like the Latin "a" of admin@example.com.
        rejected("\u{430}dmin@example.com");
        // Greek omicron for "o".
        rejected("r\u{3bf}ot@example.com");
        // Zero-width space: invisible, not whitespace to Unicode.
        rejected("ad\u{200b}min@example.com");
        rejected("admin@ex\u{430}mple.com");
    }

    #[test]
    fn compatibility_forms_are_normalized() {
        // Full-width forms are NFKC-equal to ASCII: the same address.
        assert_eq!(ok("ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｃｏｍ"), "user@example.com");
    }

    #[test]
    fn domain_rules() {
        assert_eq!(ok("ada@xn--bcher-kva.example"), "ada@xn--bcher-kva.example");
        let idn = normalize_email("email", "ada@bücher.example").expect_err("unicode domain");
        assert!(format!("{idn:?}").contains("punycode"));
        rejected("ada@localhost");
        rejected("ada@example.com.");
        rejected("ada@.example.com");
        rejected("ada@example..com");
        rejected("ada@-example.com");
        rejected("ada@example-.com");
        rejected("ada@exa_mple.com");
        rejected("ada@[127.0.0.1]");
        rejected("ada@127.0.0.1");
        rejected(&format!("ada@{}.com", "a".repeat(64)));
        assert_eq!(ok(&format!("ada@{}.com", "a".repeat(63))).len(), 4 + 63 + 4);
    }

    #[test]
    fn domain_of_a_normalized_address() {
        assert_eq!(email_domain("ada@example.com"), "example.com");
        assert_eq!(email_domain("not an address"), "");
    }
}
