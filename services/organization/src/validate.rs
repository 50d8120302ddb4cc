//! Checks on client input that need no storage: slugs, names, metadata,
//! email domains, request ids, etags and update masks. Each failure names
//! the field, so clients get a `BadRequest` field violation.

use std::collections::BTreeMap;

use tenantry_kit::error::{Error, Result};

/// The deepest an organization tree may be.
pub const MAX_DEPTH: i64 = 10;
/// The most metadata entries an organization may carry.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// The longest metadata value.
pub const MAX_METADATA_VALUE_CHARS: usize = 512;
/// The most allowed email domains of an organization.
pub const MAX_EMAIL_DOMAINS: usize = 50;
/// The longest description of a team or project.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// An organization slug: 3 to 63 characters of `a-z`, `0-9` and `-`,
/// starting with a letter and not ending with a hyphen.
pub fn organization_slug(field: &str, slug: &str) -> Result<()> {
    slug_rule(field, slug, 3)
}

/// A team, project or environment slug: as an organization slug, from one
/// character.
pub fn short_slug(field: &str, slug: &str) -> Result<()> {
    slug_rule(field, slug, 1)
}

fn slug_rule(field: &str, slug: &str, min: usize) -> Result<()> {
    let ok = (min..=63).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && !slug.ends_with('-')
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field(
            field,
            format!(
                "must be {min} to 63 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
            ),
        ))
    }
}

/// A slug derived from a display name: lowercase ASCII letters and digits,
/// other runs turned into one hyphen, at least `min` characters (padded
/// with `prefix`), at most 50 so a suffix still fits.
pub fn slug_from(display_name: &str, prefix: &str, min: usize) -> String {
    let mut slug = String::new();
    for c in display_name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(50);
    let mut slug = slug.trim_matches('-').to_string();
    if !slug.starts_with(|c: char| c.is_ascii_lowercase()) || slug.len() < min {
        slug = if slug.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}-{slug}")
        };
        slug.truncate(50);
    }
    slug.trim_end_matches('-').to_string()
}

/// A display name: 1 to 200 characters, not only whitespace, no control
/// characters.
pub fn display_name(field: &str, name: &str) -> Result<()> {
    let length = name.chars().count();
    if name.trim().is_empty() || length > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            field,
            "must be 1 to 200 characters without control characters",
        ));
    }
    Ok(())
}

/// A description: at most 2000 characters.
pub fn description(field: &str, text: &str) -> Result<()> {
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid_field(
            field,
            "must be at most 2000 characters",
        ));
    }
    Ok(())
}

/// Organization metadata: at most 64 entries, keys of 1 to 63 characters
/// of `a-z`, `0-9`, `_`, `-`, `.`, values of at most 512 characters.
pub fn metadata(field: &str, metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid_field(field, "must have at most 64 entries"));
    }
    for (key, value) in metadata {
        let key_ok = (1..=63).contains(&key.len())
            && key.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
            });
        if !key_ok {
            return Err(Error::invalid_field(
                format!("{field}[{}]", key.chars().take(63).collect::<String>()),
                "keys must be 1 to 63 characters of lowercase letters, digits, `_`, `-` and `.`",
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(Error::invalid_field(
                format!("{field}[{key}]"),
                "values must be at most 512 characters",
            ));
        }
    }
    Ok(())
}

/// Allowed email domains, normalized to lowercase and deduplicated: each a
/// DNS name with at least two labels.
pub fn email_domains(field: &str, domains: &[String]) -> Result<Vec<String>> {
    if domains.len() > MAX_EMAIL_DOMAINS {
        return Err(Error::invalid_field(field, "must have at most 50 entries"));
    }
    let mut normalized: Vec<String> = Vec::with_capacity(domains.len());
    for (i, domain) in domains.iter().enumerate() {
        let domain = domain.trim().to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let ok = domain.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        if !ok {
            return Err(Error::invalid_field(
                format!("{field}[{i}]"),
                "must be a domain name such as example.com",
            ));
        }
        if !normalized.contains(&domain) {
            normalized.push(domain);
        }
    }
    Ok(normalized)
}

/// A message field the request must carry; INVALID_ARGUMENT naming
/// `field` when it is missing.
pub fn present<T>(field: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::invalid_field(field, "is required"))
}

pub use tenantry_kit::request::{check_etag, etag, request_id, update_mask};

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_kit::error::Code;

    #[test]
    fn slugs_follow_the_rule() {
        for good in ["acme", "a-1", "abc", "x".repeat(63).as_str()] {
            organization_slug("slug", good).unwrap();
        }
        for bad in [
            "ab",
            "Acme",
            "1abc",
            "abc-",
            "a_b",
            "ab c",
            "é-abc",
            &"x".repeat(64),
        ] {
            assert!(organization_slug("slug", bad).is_err(), "{bad}");
        }
        short_slug("slug", "a").unwrap();
        assert!(short_slug("slug", "").is_err());
    }

    #[test]
    fn derived_slugs_are_valid() {
        for name in [
            "Acme Corp",
            "  ",
            "42 Things",
            "Ünïcode ☃",
            "a",
            &"Long ".repeat(40),
        ] {
            let slug = slug_from(name, "org", 3);
            organization_slug("slug", &slug).unwrap_or_else(|_| panic!("{name:?} -> {slug:?}"));
        }
        assert_eq!(slug_from("Acme Corp!", "org", 3), "acme-corp");
        assert_eq!(slug_from("42", "team", 1), "team-42");
    }

    #[test]
    fn metadata_is_bounded() {
        let mut map = BTreeMap::new();
        map.insert("env.tier".to_string(), "gold".to_string());
        metadata("metadata", &map).unwrap();
        map.insert("Bad Key".to_string(), String::new());
        assert!(metadata("metadata", &map).is_err());
        let big: BTreeMap<_, _> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(metadata("metadata", &big).is_err());
        let long: BTreeMap<_, _> = [("k".to_string(), "v".repeat(513))].into();
        assert!(metadata("metadata", &long).is_err());
    }

    #[test]
    fn email_domains_are_normalized() {
        let domains = email_domains("d", &["Example.COM".into(), "example.com".into()]).unwrap();
        assert_eq!(domains, vec!["example.com"]);
        for bad in ["localhost", "-a.com", "a..com", "a b.com", "@x.com"] {
            assert!(email_domains("d", &[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn masks_name_known_fields_once() {
        let mask = prost_types::FieldMask {
            paths: vec!["display_name".into()],
        };
        assert_eq!(
            update_mask(Some(&mask), &["display_name"]).unwrap(),
            vec!["display_name"]
        );
        assert!(update_mask(None, &["display_name"]).is_err());
        let unknown = prost_types::FieldMask {
            paths: vec!["owner".into()],
        };
        assert!(update_mask(Some(&unknown), &["display_name"]).is_err());
    }

    #[test]
    fn etags_compare_exactly() {
        check_etag("", 3).unwrap();
        check_etag(&etag(3), 3).unwrap();
        assert_eq!(check_etag("\"2\"", 3).unwrap_err().code(), Code::Aborted);
    }
}
