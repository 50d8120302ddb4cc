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

resource_name!(
    /// `organizations/{organization}/roles/{role}`: an organization's
    /// custom role.
    CustomRoleName = "organizations/{}/roles/{}" { organization, id }
);

/// The built-in roles, from most to least powerful: owner ⊇ admin ⊇
/// member; finance stands apart (billing only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltInRole {
    /// `roles/owner`: everything, and the one who may transfer ownership.
    Owner,
    /// `roles/admin`: runs the organization.
    Admin,
    /// `roles/member`: reads and uses.
    Member,
    /// `roles/finance`: billing.
    Finance,
}

impl BuiltInRole {
    /// Every built-in role, most powerful first (the index's role ids).
    pub const ALL: [BuiltInRole; 4] = [
        BuiltInRole::Owner,
        BuiltInRole::Admin,
        BuiltInRole::Member,
        BuiltInRole::Finance,
    ];

    /// The role's resource name, `roles/{role}`.
    pub const fn name(self) -> &'static str {
        match self {
            BuiltInRole::Owner => "roles/owner",
            BuiltInRole::Admin => "roles/admin",
            BuiltInRole::Member => "roles/member",
            BuiltInRole::Finance => "roles/finance",
        }
    }

    /// The built-in role named `name`, if it is one.
    pub fn of(name: &str) -> Option<BuiltInRole> {
        BuiltInRole::ALL
            .into_iter()
            .find(|role| role.name() == name)
    }

    /// Whether `name` is this role's name.
    pub fn is(self, name: &str) -> bool {
        self.name() == name
    }
}

impl fmt::Display for BuiltInRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A role a membership or grant names: built in, or an organization's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoleName {
    /// `roles/{role}`.
    BuiltIn(BuiltInRole),
    /// `organizations/{organization}/roles/{role}`.
    Custom(CustomRoleName),
}

impl RoleName {
    /// Parses the role name in request field `field`; INVALID_ARGUMENT
    /// naming the field and both shapes otherwise.
    pub fn parse(field: &str, name: &str) -> Result<RoleName> {
        if let Some(role) = BuiltInRole::of(name) {
            return Ok(RoleName::BuiltIn(role));
        }
        CustomRoleName::parse(field, name)
            .map(RoleName::Custom)
            .map_err(|_| {
                Error::invalid_field(
                    field,
                    "must be a built-in role (`roles/owner`, `roles/admin`, `roles/member`, \
                     `roles/finance`) or `organizations/{organization}/roles/{role}`",
                )
            })
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleName::BuiltIn(role) => role.fmt(f),
            RoleName::Custom(name) => name.fmt(f),
        }
    }
}

impl FromStr for RoleName {
    type Err = Error;

    fn from_str(name: &str) -> Result<RoleName> {
        RoleName::parse("role", name)
    }
}

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
    fn a_role_is_built_in_or_an_organizations_own() {
        for role in BuiltInRole::ALL {
            assert_eq!(BuiltInRole::of(role.name()), Some(role));
            assert_eq!(
                RoleName::parse("role", role.name()).unwrap(),
                RoleName::BuiltIn(role)
            );
        }
        let text = format!("organizations/{ORG}/roles/{PRJ}");
        let custom = RoleName::parse("role", &text).unwrap();
        assert_eq!(custom, RoleName::Custom(CustomRoleName::new(ORG, PRJ)));
        assert_eq!(custom.to_string(), text);
        for bad in ["roles/pilot", "roles/", "owner", "organizations/x/roles/y"] {
            let error = RoleName::parse("membership.roles[0]", bad).unwrap_err();
            assert!(error.message().contains("`membership.roles[0]`"), "{bad}");
        }
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
