//! The audit log's resource names, parsed once at the top of a handler and
//! printed with `Display`. Kit's `OrganizationName` holds one organization;
//! the log's names also say `organizations/instance` (the chain of events of
//! no organization) and `organizations/-` (every organization), so its kinds
//! live here. Kit's `AuditEventName` and `AuditCheckpointName` name one
//! organization's objects only, and their parse errors differ from the ones
//! callers get here (the pattern spelled `{}` instead of `{organization}`,
//! "is required" for an empty name, only canonical UUIDs as ids), so the
//! log keeps its own.

use std::fmt;

use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::OrganizationName;

use crate::record::INSTANCE;

/// Whose events a request reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parent {
    /// `organizations/{organization}`: one organization's chain.
    Organization(String),
    /// `organizations/-`: every organization.
    Everywhere,
    /// `organizations/instance`: events of no organization.
    Instance,
}

impl Parent {
    /// Parses the parent in request field `field`.
    pub(crate) fn parse(field: &str, name: &str) -> Result<Parent> {
        match name {
            "organizations/-" => Ok(Parent::Everywhere),
            "organizations/instance" => Ok(Parent::Instance),
            _ => Ok(Parent::Organization(
                OrganizationName::parse(field, name)?.id,
            )),
        }
    }

    /// The parent of the events of chain `scope`.
    pub(crate) fn of_chain(scope: &str) -> Parent {
        match scope {
            INSTANCE => Parent::Instance,
            organization => Parent::Organization(organization.to_string()),
        }
    }

    /// The chain it reads; `None` for every chain.
    pub(crate) fn scope(&self) -> Option<&str> {
        match self {
            Parent::Organization(id) => Some(id),
            Parent::Instance => Some(INSTANCE),
            Parent::Everywhere => None,
        }
    }

    /// The chain as the log's own events name it: its scope, `-` for every
    /// chain.
    pub(crate) fn key(&self) -> &str {
        self.scope().unwrap_or("-")
    }
}

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parent::Organization(id) => OrganizationName::new(id.as_str()).fmt(f),
            Parent::Everywhere => f.write_str("organizations/-"),
            Parent::Instance => f.write_str("organizations/instance"),
        }
    }
}

/// `organizations/{organization}/auditEvents/{audit_event}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditEventName {
    /// Where the event is looked for (every chain for `organizations/-`).
    pub parent: Parent,
    /// The event's id.
    pub id: String,
}

impl AuditEventName {
    /// Parses the name in request field `field`.
    pub(crate) fn parse(field: &str, name: &str) -> Result<AuditEventName> {
        let (parent, id) = name.rsplit_once("/auditEvents/").ok_or_else(|| {
            Error::invalid_field(
                field,
                "must look like `organizations/{organization}/auditEvents/{audit_event}`",
            )
        })?;
        let parent = Parent::parse(field, parent)?;
        tenantry_kit::id::parse_id(field, id)?;
        Ok(AuditEventName {
            parent,
            id: id.to_string(),
        })
    }

    /// The name of an event of chain `scope`.
    pub(crate) fn in_chain(scope: &str, id: &str) -> AuditEventName {
        AuditEventName {
            parent: Parent::of_chain(scope),
            id: id.to_string(),
        }
    }
}

impl fmt::Display for AuditEventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/auditEvents/{}", self.parent, self.id)
    }
}

/// `organizations/{organization}/auditCheckpoints/{audit_checkpoint}`: a
/// checkpoint of one chain (never `organizations/-`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditCheckpointName {
    /// The chain's parent.
    pub parent: Parent,
    /// The checkpoint's id.
    pub id: String,
}

impl AuditCheckpointName {
    /// Parses the name in request field `field`.
    pub(crate) fn parse(field: &str, name: &str) -> Result<AuditCheckpointName> {
        let (parent, id) = name.rsplit_once("/auditCheckpoints/").ok_or_else(|| {
            Error::invalid_field(
                field,
                "must look like `organizations/{organization}/auditCheckpoints/{audit_checkpoint}`",
            )
        })?;
        let parent = Parent::parse(field, parent)?;
        if parent == Parent::Everywhere {
            return Err(Error::invalid_field(field, "must name one organization"));
        }
        tenantry_kit::id::parse_id(field, id)?;
        Ok(AuditCheckpointName {
            parent,
            id: id.to_string(),
        })
    }

    /// The name of a checkpoint of chain `scope`.
    pub(crate) fn in_chain(scope: &str, id: &str) -> AuditCheckpointName {
        AuditCheckpointName {
            parent: Parent::of_chain(scope),
            id: id.to_string(),
        }
    }

    /// The chain of the checkpoint.
    pub(crate) fn scope(&self) -> &str {
        self.parent.scope().unwrap_or(INSTANCE)
    }
}

impl fmt::Display for AuditCheckpointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/auditCheckpoints/{}", self.parent, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "0190a0b0-0000-7000-8000-000000000001";
    const ID: &str = "0190a0b0-0000-7000-8000-000000000002";

    #[test]
    fn names_parse_and_print_back() {
        for parent in [
            format!("organizations/{ORG}"),
            "organizations/instance".into(),
        ] {
            let text = format!("{parent}/auditEvents/{ID}");
            assert_eq!(
                AuditEventName::parse("name", &text).unwrap().to_string(),
                text
            );
            let text = format!("{parent}/auditCheckpoints/{ID}");
            assert_eq!(
                AuditCheckpointName::parse("name", &text)
                    .unwrap()
                    .to_string(),
                text
            );
        }
        let every = format!("organizations/-/auditEvents/{ID}");
        let name = AuditEventName::parse("name", &every).unwrap();
        assert_eq!((name.parent.scope(), name.to_string()), (None, every));
        assert_eq!(
            AuditEventName::in_chain(INSTANCE, ID).to_string(),
            format!("organizations/instance/auditEvents/{ID}")
        );
    }

    #[test]
    fn a_checkpoint_names_one_chain() {
        let error =
            AuditCheckpointName::parse("name", "organizations/-/auditCheckpoints/x").unwrap_err();
        assert!(
            error.message().contains("must name one organization"),
            "{}",
            error.message()
        );
        assert!(AuditCheckpointName::parse("name", "organizations/-").is_err());
    }
}
