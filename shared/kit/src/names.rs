//! Typed resource names (AIP-122): `OrganizationName`, `ProjectName`, ….
//! A handler parses each name it is given once, at the top, into its type
//! (the error names the field and the expected shape), and passes the type
//! on; a name goes back out through `Display`. The ids inside are the
//! canonical UUID text the stores use.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::id::parse_name;

/// Defines a name type for one pattern, with one field per `{}`.
macro_rules! resource_name {
    ($(#[$doc:meta])* $name:ident = $pattern:literal { $($field:ident),+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            $(#[doc = concat!("The `", stringify!($field), "` id.")] pub $field: String,)+
        }

        impl $name {
            /// The AIP-122 pattern.
            pub const PATTERN: &'static str = $pattern;

            /// The name of the object with these ids.
            pub fn new($($field: impl Into<String>),+) -> $name {
                $name { $($field: $field.into()),+ }
            }

            /// Parses the name in request field `field`; INVALID_ARGUMENT
            /// naming the field and the pattern otherwise.
            pub fn parse(field: &str, name: &str) -> Result<$name> {
                let mut ids = parse_name(field, $pattern, name)?
                    .into_iter()
                    .map(|id| id.to_string());
                Ok($name {
                    $($field: ids.next().expect("one id per field of the pattern"),)+
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut ids = [$(self.$field.as_str()),+].into_iter();
                let mut first = true;
                for segment in $pattern.split('/') {
                    if !first {
                        f.write_str("/")?;
                    }
                    first = false;
                    match segment {
                        "{}" => f.write_str(ids.next().unwrap_or_default())?,
                        literal => f.write_str(literal)?,
                    }
                }
                Ok(())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(name: &str) -> Result<$name> {
                $name::parse("name", name)
            }
        }
    };
}

resource_name!(
    /// `organizations/{organization}`.
    OrganizationName = "organizations/{}" { id }
);
resource_name!(
    /// `organizations/{organization}/teams/{team}`.
    TeamName = "organizations/{}/teams/{}" { organization, id }
);
resource_name!(
    /// `organizations/{organization}/projects/{project}`.
    ProjectName = "organizations/{}/projects/{}" { organization, id }
);
resource_name!(
    /// `organizations/{organization}/projects/{project}/environments/{environment}`.
    EnvironmentName = "organizations/{}/projects/{}/environments/{}" { organization, project, id }
);
resource_name!(
    /// `organizations/{organization}/ownershipTransfers/{transfer}`.
    OwnershipTransferName = "organizations/{}/ownershipTransfers/{}" { organization, id }
);
resource_name!(
    /// `users/{user}`.
    UserName = "users/{}" { id }
);
resource_name!(
    /// `workspaces/{workspace}`.
    WorkspaceName = "workspaces/{}" { id }
);
resource_name!(
    /// `users/{user}/sessions/{session}`.
    SessionName = "users/{}/sessions/{}" { user, id }
);
resource_name!(
    /// `organizations/{organization}/apiKeys/{key}`.
    ApiKeyName = "organizations/{}/apiKeys/{}" { organization, id }
);
resource_name!(
    /// `serviceAccounts/{account}`.
    ServiceAccountName = "serviceAccounts/{}" { id }
);
resource_name!(
    /// `serviceAccounts/{account}/credentials/{credential}`.
    CredentialName = "serviceAccounts/{}/credentials/{}" { service_account, id }
);
resource_name!(
    /// `organizations/{organization}/memberships/{user}`.
    MembershipName = "organizations/{}/memberships/{}" { organization, user }
);
resource_name!(
    /// `organizations/{organization}/teams/{team}/members/{user}`.
    TeamMemberName = "organizations/{}/teams/{}/members/{}" { organization, team, user }
);
resource_name!(
    /// `organizations/{organization}/invitations/{invitation}`.
    InvitationName = "organizations/{}/invitations/{}" { organization, id }
);
resource_name!(
    /// `organizations/{organization}/projects/{project}/grants/{grant}`.
    ProjectGrantName = "organizations/{}/projects/{}/grants/{}" { organization, project, id }
);
resource_name!(
    /// `organizations/{organization}/usageRecords/{record}`.
    UsageRecordName = "organizations/{}/usageRecords/{}" { organization, id }
);
resource_name!(
    /// `organizations/{organization}/subscription`: an organization's one
    /// subscription.
    SubscriptionName = "organizations/{}/subscription" { organization }
);
resource_name!(
    /// `workspaces/{workspace}/billingAccounts/{account}`.
    BillingAccountName = "workspaces/{}/billingAccounts/{}" { workspace, id }
);
resource_name!(
    /// `organizations/{organization}/auditEvents/{event}`.
    AuditEventName = "organizations/{}/auditEvents/{}" { organization, id }
);
resource_name!(
    /// `organizations/{organization}/auditCheckpoints/{checkpoint}`.
    AuditCheckpointName = "organizations/{}/auditCheckpoints/{}" { organization, id }
);

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "0190a0b0-0000-7000-8000-000000000001";
    const PRJ: &str = "0190a0b0-0000-7000-8000-000000000002";

    #[test]
    fn a_name_parses_into_its_ids_and_prints_back() {
        let text = format!("organizations/{ORG}/projects/{PRJ}");
        let name = ProjectName::parse("project.name", &text).unwrap();
        assert_eq!((name.organization.as_str(), name.id.as_str()), (ORG, PRJ));
        assert_eq!(name.to_string(), text);
        assert_eq!(text.parse::<ProjectName>().unwrap(), name);
        assert_eq!(
            OrganizationName { id: ORG.into() }.to_string(),
            format!("organizations/{ORG}")
        );
    }

    #[test]
    fn a_singleton_name_ends_in_its_literal() {
        let text = format!("organizations/{ORG}/subscription");
        let name = SubscriptionName::parse("name", &text).unwrap();
        assert_eq!(name.organization, ORG);
        assert_eq!(name.to_string(), text);
    }

    #[test]
    fn a_wrong_name_names_the_field_and_the_shape() {
        for bad in [
            String::new(),
            format!("organizations/{ORG}"),
            format!("organizations/{ORG}/teams/{PRJ}"),
            format!("organizations/{}/projects/{PRJ}", ORG.to_uppercase()),
            format!("organizations/{ORG}/projects/../{PRJ}"),
        ] {
            let error = ProjectName::parse("parent", &bad).unwrap_err();
            assert_eq!(error.code(), crate::error::Code::InvalidArgument, "{bad}");
            assert!(error.message().contains("`parent`"), "{}", error.message());
        }
    }
}
