//! Ids and AIP-122 resource names.
//!
//! Every object id is a UUIDv7: time-ordered (so primary-key indexes stay
//! append-mostly and ids sort by creation) and unguessable enough in its
//! random part that an id alone never grants anything.

use uuid::Uuid;

use crate::error::{Error, Result};

/// A fresh UUIDv7.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses a canonical UUID from a request field, naming the field when it is
/// not one.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid> {
    if value.is_empty() {
        return Err(Error::invalid_field(field, "is required"));
    }
    Uuid::try_parse(value).map_err(|_| Error::invalid_field(field, "must be a UUID"))
}

/// Parses an AIP-122 resource name against a pattern such as
/// `organizations/{}/projects/{}` and returns the ids in order.
///
/// The pattern's literal segments must match exactly and every `{}` must be a
/// canonical UUID, so names with traversal (`..`), extra segments or other
/// tricks are rejected before they reach storage.
pub fn parse_name(field: &str, pattern: &str, name: &str) -> Result<Vec<Uuid>> {
    if name.is_empty() {
        return Err(Error::invalid_field(field, "is required"));
    }
    let bad = || Error::invalid_field(field, format!("must look like `{pattern}`"));
    let expected: Vec<&str> = pattern.split('/').collect();
    let actual: Vec<&str> = name.split('/').collect();
    if expected.len() != actual.len() {
        return Err(bad());
    }
    let mut ids = Vec::new();
    for (want, got) in expected.iter().zip(&actual) {
        if *want == "{}" {
            let id = Uuid::try_parse(got).map_err(|_| bad())?;
            // Only the canonical lowercase hyphenated form is a name; other
            // spellings of the same UUID would make two names for one object.
            if id.hyphenated().to_string() != *got {
                return Err(bad());
            }
            ids.push(id);
        } else if want != got {
            return Err(bad());
        }
    }
    Ok(ids)
}

/// Formats a resource name from a pattern and ids, the inverse of
/// [`parse_name`].
pub fn format_name(pattern: &str, ids: &[Uuid]) -> String {
    let mut ids = ids.iter();
    pattern
        .split('/')
        .map(|segment| match segment {
            "{}" => ids.next().map(|id| id.to_string()).unwrap_or_default(),
            literal => literal.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_ordered() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }

    #[test]
    fn names_round_trip() {
        let org = new_id();
        let project = new_id();
        let name = format_name("organizations/{}/projects/{}", &[org, project]);
        let ids = parse_name("name", "organizations/{}/projects/{}", &name).unwrap();
        assert_eq!(ids, vec![org, project]);
    }

    #[test]
    fn malformed_names_are_rejected_with_the_field() {
        let org = new_id();
        for bad in [
            String::new(),
            format!("organizations/{org}/.."),
            format!("organizations/../{org}"),
            format!("organisations/{org}"),
            format!("organizations/{}", org.simple()),
            format!("organizations/{}", org.to_string().to_uppercase()),
            format!("organizations/{org}/extra"),
            "organizations/%2e%2e".to_string(),
        ] {
            let error = parse_name("parent", "organizations/{}", &bad).unwrap_err();
            assert_eq!(error.code(), crate::error::Code::InvalidArgument, "{bad}");
        }
    }
}
