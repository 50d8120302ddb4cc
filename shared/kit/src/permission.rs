//! The built-in permissions, named once for every service: the
//! authorization schema defines them (with their types, descriptions and
//! the roles that grant them), and every service that asks about one names
//! it through a constant here, so a misspelled permission does not compile
//! instead of being denied at run time.
//!
//! Permissions of types that services register at run time are not here:
//! they are data, checked by the schema when they are named.

use std::fmt;

/// A built-in permission, such as [`Permission::PROJECT_CREATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(&'static str);

/// Defines the constants, [`Permission::ALL`] and the descriptions from
/// one list: name, then what it allows.
macro_rules! permissions {
    ($($name:ident = $text:literal: $description:literal;)*) => {
        impl Permission {
            $(#[doc = $description] pub const $name: Permission = Permission($text);)*

            /// Every built-in permission.
            pub const ALL: &'static [Permission] = &[$(Permission::$name),*];

            /// What it allows, in words (`ListPermissions` shows it).
            pub fn description(self) -> &'static str {
                match self.0 {
                    $($text => $description,)*
                    _ => unreachable!("a Permission is one of the constants"),
                }
            }
        }
    };
}

permissions! {
    ORGANIZATION_READ = "organization.read": "see the organization, its settings and its teams";
    ORGANIZATION_SETTINGS_MANAGE = "organization.settings.manage": "change names, settings, metadata and moves";
    ORGANIZATION_MEMBERS_READ = "organization.members.read": "list the members and their roles";
    ORGANIZATION_MEMBERS_INVITE = "organization.members.invite": "invite people";
    ORGANIZATION_MEMBERS_MANAGE = "organization.members.manage": "change and remove members, manage custom roles";
    ORGANIZATION_TEAMS_CREATE = "organization.teams.create": "create teams";
    ORGANIZATION_DEPARTMENTS_CREATE = "organization.departments.create": "create departments";
    ORGANIZATION_SUBORGANIZATIONS_CREATE = "organization.suborganizations.create": "create child organizations";
    ORGANIZATION_API_KEYS_CREATE = "organization.api_keys.create": "create API keys";
    ORGANIZATION_DELETE = "organization.delete": "delete and restore the organization";
    ORGANIZATION_DEACTIVATE = "organization.deactivate": "deactivate and reactivate the organization";
    ORGANIZATION_OWNERSHIP_TRANSFER = "organization.ownership.transfer": "hand the organization to another member";
    BILLING_READ = "billing.read": "see plans, usage and invoices";
    BILLING_MANAGE = "billing.manage": "change the plan and billing details";
    PROJECT_CREATE = "project.create": "create projects";
    AUDIT_READ = "audit.read": "read the audit log";
    AUTHZ_WRITE = "authz.write": "attach objects of registered types inside the organization";
    TEAM_READ = "team.read": "see the team and its members";
    TEAM_MANAGE = "team.manage": "rename, describe, delete and restore the team";
    TEAM_MEMBERS_MANAGE = "team.members.manage": "add, change and remove the team's members";
    PROJECT_READ = "project.read": "see the project, its environments and resources";
    RESOURCES_USE = "resources.use": "use and change the resources in the project";
    PROJECT_MANAGE = "project.manage": "change the project and its environments";
    PROJECT_GRANTS_MANAGE = "project.grants.manage": "grant and revoke access to the project";
    PROJECT_DELETE = "project.delete": "delete, restore and purge the project";
}

impl Permission {
    /// Its name, as the contracts spell it (`project.create`).
    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The built-in permission named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.0 == name)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl AsRef<str> for Permission {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl PartialEq<str> for Permission {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Permission {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_has_one_distinct_name_that_finds_it() {
        let mut names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len(), "a name is used twice");
        for permission in Permission::ALL {
            assert_eq!(
                Permission::from_name(permission.as_str()),
                Some(*permission)
            );
            let (prefix, action) = permission.as_str().split_once('.').unwrap();
            assert!(!prefix.is_empty() && !action.is_empty(), "{permission}");
        }
        assert_eq!(Permission::from_name("deployment.create"), None);
    }
}
