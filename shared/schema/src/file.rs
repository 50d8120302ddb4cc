//! The schema file: the resource types a service registers.
//!
//! ```yaml
//! types:
//!   - name: deployment
//!     display_name: Deployment
//!     description: A build of a project running in one environment.
//!     parent: project
//!     permissions:
//!       - name: deployment.read
//!         description: See the deployment, its status and its logs.
//!         granted_by:
//!           - parent_permission: project.read
//!       - name: deployment.deploy
//!         description: Roll out a new version.
//!         granted_by:
//!           - access_level: contributor
//!           - role: admin
//! ```

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostics, parse_yaml};

/// A whole schema file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    /// The registered types, parents before children or in any order.
    pub types: Vec<TypeSpec>,
}

/// One resource type as the file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSpec {
    /// The type name, such as `deployment`.
    pub name: Spanned<String>,
    /// What people call it; the name when left out.
    #[serde(default)]
    pub display_name: Option<Spanned<String>>,
    /// What its objects are.
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    /// The type of every object's parent: a built-in type (`organization`,
    /// `team`, `project`) or another registered type.
    pub parent: Spanned<String>,
    /// The relation naming the parent; only `parent` exists.
    #[serde(default)]
    pub parent_relation: Option<Spanned<String>>,
    /// The permissions that can be checked on its objects.
    pub permissions: Vec<PermissionSpec>,
}

/// One permission and what grants it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSpec {
    /// The full name: the type name, a dot and the action
    /// (`deployment.logs.read`).
    pub name: Spanned<String>,
    /// A sentence saying what it allows (shown in the permission catalog).
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    /// Who holds it; none means only custom roles that list it.
    #[serde(default)]
    pub granted_by: Vec<Spanned<GrantSpec>>,
}

/// One way to hold a permission, as `SchemaService`'s `PermissionGrant`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GrantSpec {
    /// A built-in role in the object's organization or above (`owner`,
    /// `admin`, `member`, `finance`, with or without `roles/`); a role
    /// grants what the roles below it grant.
    Role(String),
    /// A project access level on the object's project (`viewer`,
    /// `contributor`, `admin`); higher levels included.
    AccessLevel(Level),
    /// A team role on the object's team (`member`, `lead`); members
    /// include leads.
    TeamRole(TeamRoleSpec),
    /// A permission on the parent object that implies this one.
    ParentPermission(String),
}

/// A project access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Viewer,
    Contributor,
    Admin,
}

/// A team role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRoleSpec {
    Member,
    Lead,
}

impl SchemaFile {
    /// Reads a schema file's text; `file` names it in diagnostics.
    pub fn parse(file: &Path, text: &str) -> Result<SchemaFile, Diagnostics> {
        parse_yaml(file, text)
    }
}
