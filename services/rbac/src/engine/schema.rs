//! The authorization schema: resource types, the permissions of each, and
//! what the built-in roles, project access levels and team roles grant.
//!
//! Every permission is a bit position in one [`Perms`] word shared by all
//! types, so a role (a set of permissions) is one `u128` and a check is one
//! AND. A permission named on a type it does not belong to is refused
//! before it reaches the index.

use rustc_hash::FxHashMap as HashMap;
use tenantry_kit::names::BuiltInRole;
use tenantry_kit::permission::Permission;

/// A set of permissions: bit `i` is the permission with index `i`.
pub type Perms = u128;

/// The most distinct permissions a deployment can have (bits in [`Perms`]).
pub const MAX_PERMISSIONS: usize = 128;

/// A resource type's index.
pub type TypeId = u16;

/// The built-in resource types, in index order.
pub const ORGANIZATION: TypeId = 0;
pub const TEAM: TypeId = 1;
pub const PROJECT: TypeId = 2;

/// Permissions of organizations. Roles on an organization carry bits of
/// every type: what a role grants on projects and teams flows down from
/// the organization it is held on.
const ORGANIZATION_PERMISSIONS: &[Permission] = &[
    Permission::ORGANIZATION_READ,
    Permission::ORGANIZATION_SETTINGS_MANAGE,
    Permission::ORGANIZATION_MEMBERS_READ,
    Permission::ORGANIZATION_MEMBERS_INVITE,
    Permission::ORGANIZATION_MEMBERS_MANAGE,
    Permission::ORGANIZATION_TEAMS_CREATE,
    Permission::ORGANIZATION_DEPARTMENTS_CREATE,
    Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE,
    Permission::ORGANIZATION_API_KEYS_CREATE,
    Permission::ORGANIZATION_DELETE,
    Permission::ORGANIZATION_DEACTIVATE,
    Permission::ORGANIZATION_OWNERSHIP_TRANSFER,
    Permission::BILLING_READ,
    Permission::BILLING_MANAGE,
    Permission::PROJECT_CREATE,
    Permission::AUDIT_READ,
    Permission::AUTHZ_WRITE,
];

const TEAM_PERMISSIONS: &[Permission] = &[
    Permission::TEAM_READ,
    Permission::TEAM_MANAGE,
    Permission::TEAM_MEMBERS_MANAGE,
];

const PROJECT_PERMISSIONS: &[Permission] = &[
    Permission::PROJECT_READ,
    Permission::RESOURCES_USE,
    Permission::PROJECT_MANAGE,
    Permission::PROJECT_GRANTS_MANAGE,
    Permission::PROJECT_DELETE,
];

/// The built-in roles' names in the index's order ([`BuiltInRole::ALL`]).
pub const BUILT_IN_ROLES: &[&str] = &[
    BuiltInRole::Owner.name(),
    BuiltInRole::Admin.name(),
    BuiltInRole::Member.name(),
    BuiltInRole::Finance.name(),
];

const MEMBER: &[Permission] = &[
    Permission::ORGANIZATION_READ,
    Permission::TEAM_READ,
    Permission::PROJECT_READ,
    Permission::RESOURCES_USE,
];
const ADMIN_ADDS: &[Permission] = &[
    Permission::ORGANIZATION_SETTINGS_MANAGE,
    Permission::ORGANIZATION_MEMBERS_READ,
    Permission::ORGANIZATION_MEMBERS_INVITE,
    Permission::ORGANIZATION_MEMBERS_MANAGE,
    Permission::ORGANIZATION_TEAMS_CREATE,
    Permission::ORGANIZATION_DEPARTMENTS_CREATE,
    Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE,
    Permission::ORGANIZATION_API_KEYS_CREATE,
    Permission::PROJECT_CREATE,
    Permission::AUDIT_READ,
    Permission::AUTHZ_WRITE,
    Permission::TEAM_MANAGE,
    Permission::TEAM_MEMBERS_MANAGE,
    Permission::PROJECT_MANAGE,
    Permission::PROJECT_GRANTS_MANAGE,
    Permission::PROJECT_DELETE,
];
const OWNER_ADDS: &[Permission] = &[
    Permission::BILLING_READ,
    Permission::BILLING_MANAGE,
    Permission::ORGANIZATION_OWNERSHIP_TRANSFER,
    Permission::ORGANIZATION_DELETE,
    Permission::ORGANIZATION_DEACTIVATE,
];
const FINANCE: &[Permission] = &[
    Permission::ORGANIZATION_READ,
    Permission::BILLING_READ,
    Permission::BILLING_MANAGE,
];

/// Project access levels: viewer ⊆ contributor ⊆ admin.
const VIEWER: &[Permission] = &[Permission::PROJECT_READ];
const CONTRIBUTOR_ADDS: &[Permission] = &[Permission::RESOURCES_USE];
const PROJECT_ADMIN_ADDS: &[Permission] = &[
    Permission::PROJECT_MANAGE,
    Permission::PROJECT_GRANTS_MANAGE,
];

/// Team roles: a lead manages the team's members (and only them).
const TEAM_MEMBER: &[Permission] = &[Permission::TEAM_READ];
const TEAM_LEAD_ADDS: &[Permission] = &[Permission::TEAM_MEMBERS_MANAGE];

/// What grants a registered permission.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Grantor {
    /// A built-in role (and every role above it).
    Role(String),
    /// A project access level (and every level above it).
    AccessLevel(AccessLevel),
    /// A team role: `false` for members (leads included), `true` for leads.
    TeamRole(bool),
    /// Whoever holds this permission on the parent holds it here.
    ParentPermission(String),
}

/// A permission of a registered type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PermissionDefinition {
    pub name: String,
    pub description: String,
    pub granted_by: Vec<Grantor>,
}

/// A type registered by an internal service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypeDefinition {
    pub name: String,
    pub parent_type: String,
    pub permissions: Vec<PermissionDefinition>,
    /// What people call it; the name when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Why a type cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "`{0}` is not a valid type name (lowercase letters, digits and `_`, starting with a letter)"
    )]
    BadName(String),
    #[error("`{0}` is built in")]
    BuiltIn(String),
    #[error("unknown parent type `{0}`")]
    UnknownParent(String),
    #[error("a registered type keeps its parent type (`{0}`)")]
    ParentChanged(String),
    #[error("`{0}` must be named `<type>.<action>` after its type")]
    BadPermission(String),
    #[error("`{0}` is not a built-in role")]
    UnknownRole(String),
    #[error("`{0}` is not a permission of the parent type")]
    UnknownParentPermission(String),
    #[error("the deployment has no room for more permissions (at most 128)")]
    Full,
    #[error(
        "`{0}` is not a valid type name: 3 to 64 characters, lowercase letters, digits and `_`, starting with a letter and not ending with `_`"
    )]
    NameOutsideContract(String),
    #[error("permission `{0}` needs a `description` (the permission catalog shows it)")]
    NoDescription(String),
    #[error("`{kind}` is not under a {needs}, so no {needs} {grantor} can grant `{permission}`")]
    GrantOutOfScope {
        kind: String,
        permission: String,
        needs: &'static str,
        grantor: &'static str,
    },
}

/// A resource type.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub name: String,
    /// The type of its parent, if it has one.
    pub parent: Option<TypeId>,
    /// The permissions that can be checked on it.
    pub permissions: Perms,
    /// The definition it was registered with; `None` for built-in types.
    pub definition: Option<TypeDefinition>,
}

/// The permission and type registry.
#[derive(Debug, Clone)]
pub struct Schema {
    names: Vec<String>,
    descriptions: Vec<String>,
    by_name: HashMap<String, u8>,
    types: Vec<ResourceType>,
    type_ids: HashMap<String, TypeId>,
    built_in_roles: [Perms; 4],
    access_levels: [Perms; 3],
    team_roles: [Perms; 2],
    /// (permission, what it implies): registered permissions granted by a
    /// parent permission.
    implications: Vec<(Perms, Perms)>,
}

/// A project access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessLevel {
    Viewer = 0,
    Contributor = 1,
    Admin = 2,
}

impl Default for Schema {
    fn default() -> Self {
        Schema::built_in()
    }
}

impl Schema {
    /// The built-in types, permissions and roles.
    pub fn built_in() -> Schema {
        let mut schema = Schema {
            names: Vec::new(),
            descriptions: Vec::new(),
            by_name: HashMap::default(),
            types: Vec::new(),
            type_ids: HashMap::default(),
            built_in_roles: [0; 4],
            access_levels: [0; 3],
            team_roles: [0; 2],
            implications: Vec::new(),
        };
        for (name, parent, permissions) in [
            ("organization", None, ORGANIZATION_PERMISSIONS),
            ("team", Some(ORGANIZATION), TEAM_PERMISSIONS),
            ("project", Some(ORGANIZATION), PROJECT_PERMISSIONS),
        ] {
            let mut mask = 0;
            for permission in permissions {
                mask |= schema.define(permission.as_str(), permission.description());
            }
            schema
                .type_ids
                .insert(name.to_string(), schema.types.len() as TypeId);
            schema.types.push(ResourceType {
                name: name.to_string(),
                parent,
                permissions: mask,
                definition: None,
            });
        }
        let member = schema.perms_of(MEMBER);
        let admin = member | schema.perms_of(ADMIN_ADDS);
        let owner = admin | schema.perms_of(OWNER_ADDS);
        schema.built_in_roles = [owner, admin, member, schema.perms_of(FINANCE)];
        let viewer = schema.perms_of(VIEWER);
        let contributor = viewer | schema.perms_of(CONTRIBUTOR_ADDS);
        schema.access_levels = [
            viewer,
            contributor,
            contributor | schema.perms_of(PROJECT_ADMIN_ADDS),
        ];
        let team_member = schema.perms_of(TEAM_MEMBER);
        schema.team_roles = [team_member, team_member | schema.perms_of(TEAM_LEAD_ADDS)];
        schema
    }

    /// The contract's rules for a new registration that [`Schema::register`]
    /// leaves alone, because types stored before a rule existed must still
    /// load: the name's pattern, a description for every permission, and
    /// access levels only under a project, team roles only under a team
    /// (nobody could hold them elsewhere). Call it before `register` for
    /// what a client sends.
    pub fn check_contract(&self, definition: &TypeDefinition) -> Result<(), SchemaError> {
        let name = definition.name.as_str();
        let bytes = name.as_bytes();
        let valid = (3..=64).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            && bytes.last() != Some(&b'_');
        if !valid {
            return Err(SchemaError::NameOutsideContract(name.to_string()));
        }
        let above = self.ancestors_of(&definition.parent_type);
        for permission in &definition.permissions {
            if permission.description.trim().is_empty() {
                return Err(SchemaError::NoDescription(permission.name.clone()));
            }
            for grantor in &permission.granted_by {
                let (needs, grantor, kind) = match grantor {
                    Grantor::AccessLevel(_) => ("project", "access level", PROJECT),
                    Grantor::TeamRole(_) => ("team", "role", TEAM),
                    _ => continue,
                };
                // An unknown parent is `register`'s refusal, said better.
                if !above.is_empty() && !above.contains(&kind) {
                    return Err(SchemaError::GrantOutOfScope {
                        kind: name.to_string(),
                        permission: permission.name.clone(),
                        needs,
                        grantor,
                    });
                }
            }
        }
        Ok(())
    }

    /// The type `parent` and every type above it (empty if unknown).
    fn ancestors_of(&self, parent: &str) -> Vec<TypeId> {
        let mut found = Vec::new();
        let mut at = self.type_id(parent);
        while let Some(id) = at.filter(|id| !found.contains(id)) {
            found.push(id);
            at = self.types[id as usize].parent;
        }
        found
    }

    /// Registers (or updates) a type: its permissions get bits, and the
    /// roles, levels and team roles named as their grantors carry them from
    /// now on. Re-registering adds permissions and grantors; it never moves
    /// the type or takes a permission away.
    pub fn register(&mut self, definition: &TypeDefinition) -> Result<TypeId, SchemaError> {
        let name = definition.name.as_str();
        let valid = (1..=63).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(SchemaError::BadName(name.to_string()));
        }
        let existing = self.type_id(name);
        if let Some(id) = existing
            && self.types[id as usize].definition.is_none()
        {
            return Err(SchemaError::BuiltIn(name.to_string()));
        }
        let parent = self
            .type_id(&definition.parent_type)
            .filter(|p| Some(*p) != existing)
            .ok_or_else(|| SchemaError::UnknownParent(definition.parent_type.clone()))?;
        if let Some(id) = existing
            && self.types[id as usize].parent != Some(parent)
        {
            return Err(SchemaError::ParentChanged(definition.parent_type.clone()));
        }
        let new_bits = definition
            .permissions
            .iter()
            .filter(|p| self.permission(&p.name).is_none())
            .count();
        if self.names.len() + new_bits > MAX_PERMISSIONS {
            return Err(SchemaError::Full);
        }
        let parent_permissions = self.types[parent as usize].permissions;
        for permission in &definition.permissions {
            if permission
                .name
                .split_once('.')
                .is_none_or(|(t, a)| t != name || a.is_empty())
            {
                return Err(SchemaError::BadPermission(permission.name.clone()));
            }
            for grantor in &permission.granted_by {
                match grantor {
                    Grantor::Role(role) if !BUILT_IN_ROLES.contains(&role.as_str()) => {
                        return Err(SchemaError::UnknownRole(role.clone()));
                    }
                    Grantor::ParentPermission(q)
                        if self
                            .permission(q)
                            .is_none_or(|bit| bit & parent_permissions == 0) =>
                    {
                        return Err(SchemaError::UnknownParentPermission(q.clone()));
                    }
                    _ => {}
                }
            }
        }
        let mut mask = existing
            .map(|id| self.types[id as usize].permissions)
            .unwrap_or(0);
        for permission in &definition.permissions {
            let bit = self.define(&permission.name, &permission.description);
            mask |= bit;
            for grantor in &permission.granted_by {
                match grantor {
                    Grantor::Role(role) => {
                        // A role carries what the roles below it carry.
                        let rank = BUILT_IN_ROLES
                            .iter()
                            .position(|r| r == role)
                            .expect("checked above");
                        let holders: &[usize] = match rank {
                            0 => &[0],
                            1 => &[0, 1],
                            2 => &[0, 1, 2],
                            _ => &[3],
                        };
                        for &h in holders {
                            self.built_in_roles[h] |= bit;
                        }
                    }
                    Grantor::AccessLevel(level) => {
                        for l in (*level as usize)..3 {
                            self.access_levels[l] |= bit;
                        }
                    }
                    Grantor::TeamRole(lead) => {
                        self.team_roles[1] |= bit;
                        if !lead {
                            self.team_roles[0] |= bit;
                        }
                    }
                    Grantor::ParentPermission(q) => {
                        let q = self.permission(q).expect("checked above");
                        self.implications.push((q, bit));
                    }
                }
            }
        }
        // Every grant that carries an implying permission carries the
        // implied one.
        self.built_in_roles = self.built_in_roles.map(|p| self.close(p));
        self.access_levels = self.access_levels.map(|p| self.close(p));
        self.team_roles = self.team_roles.map(|p| self.close(p));
        let resource_type = ResourceType {
            name: name.to_string(),
            parent: Some(parent),
            permissions: mask,
            definition: Some(definition.clone()),
        };
        Ok(match existing {
            Some(id) => {
                self.types[id as usize] = resource_type;
                id
            }
            None => {
                let id = self.types.len() as TypeId;
                self.type_ids.insert(name.to_string(), id);
                self.types.push(resource_type);
                id
            }
        })
    }

    /// Forgets a registered type's name (its permission bits stay taken).
    pub fn unregister(&mut self, name: &str) -> bool {
        match self.type_id(name) {
            Some(id) if self.types[id as usize].definition.is_some() => {
                self.type_ids.remove(name);
                true
            }
            _ => false,
        }
    }

    /// `perms` with everything they imply.
    pub fn close(&self, mut perms: Perms) -> Perms {
        loop {
            let before = perms;
            for (q, p) in &self.implications {
                if perms & q != 0 {
                    perms |= p;
                }
            }
            if perms == before {
                return perms;
            }
        }
    }

    /// The permissions of projects and of every type below them: what an
    /// organization that shows members only their granted projects takes
    /// out of the member role.
    pub fn project_scoped(&self) -> Perms {
        let below_project = |mut t: TypeId| loop {
            if t == PROJECT {
                return true;
            }
            match self.types[t as usize].parent {
                Some(parent) => t = parent,
                None => return false,
            }
        };
        (0..self.types.len() as TypeId)
            .filter(|t| below_project(*t))
            .fold(0, |perms, t| perms | self.types[t as usize].permissions)
    }

    /// Every type, built-in first.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    fn define(&mut self, name: &str, description: &str) -> Perms {
        if let Some(&bit) = self.by_name.get(name) {
            return 1 << bit;
        }
        assert!(
            self.names.len() < MAX_PERMISSIONS,
            "at most {MAX_PERMISSIONS} permissions"
        );
        let bit = self.names.len() as u8;
        self.names.push(name.to_string());
        self.descriptions.push(description.to_string());
        self.by_name.insert(name.to_string(), bit);
        1 << bit
    }

    fn perms_of(&self, permissions: &[Permission]) -> Perms {
        permissions
            .iter()
            .map(|p| {
                self.permission(p.as_str())
                    .expect("built-in permissions are defined")
            })
            .fold(0, |a, b| a | b)
    }

    /// The bit of a permission, if it exists.
    pub fn permission(&self, name: &str) -> Option<Perms> {
        self.by_name.get(name).map(|&bit| 1u128 << bit)
    }

    /// The bits of a list of permission names; `Err(name)` names the first
    /// unknown one.
    pub fn permissions<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Perms, &'a str> {
        names.into_iter().try_fold(0, |acc, name| {
            self.permission(name).map(|p| acc | p).ok_or(name)
        })
    }

    /// The names of the permissions in `perms`, in index order.
    pub fn names(&self, perms: Perms) -> Vec<&str> {
        (0..self.names.len())
            .filter(|i| perms & (1u128 << i) != 0)
            .map(|i| self.names[i].as_str())
            .collect()
    }

    /// Every permission: (name, description, type name).
    pub fn all_permissions(&self) -> Vec<(&str, &str, &str)> {
        (0..self.names.len())
            .map(|i| {
                let bit = 1u128 << i;
                let owner = self
                    .types
                    .iter()
                    .find(|t| t.permissions & bit != 0)
                    .map(|t| t.name.as_str())
                    .unwrap_or_default();
                (self.names[i].as_str(), self.descriptions[i].as_str(), owner)
            })
            .collect()
    }

    /// A type's index by name.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.type_ids.get(name).copied()
    }

    /// A type by index.
    pub fn resource_type(&self, id: TypeId) -> &ResourceType {
        &self.types[id as usize]
    }

    /// What a built-in role grants, by its name (`roles/admin`).
    pub fn built_in_role(&self, name: &str) -> Option<Perms> {
        BUILT_IN_ROLES
            .iter()
            .position(|r| *r == name)
            .map(|i| self.built_in_roles[i])
    }

    /// What a project access level grants on the project.
    pub fn access_level(&self, level: AccessLevel) -> Perms {
        self.access_levels[level as usize]
    }

    /// What a team role grants on the team.
    pub fn team_role(&self, lead: bool) -> Perms {
        self.team_roles[usize::from(lead)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_roles_follow_the_matrix() {
        let schema = Schema::built_in();
        let role = |name| schema.built_in_role(name).unwrap();
        let has = |role: Perms, permission| role & schema.permission(permission).unwrap() != 0;
        let (owner, admin, member, finance) = (
            role(BuiltInRole::Owner.name()),
            role(BuiltInRole::Admin.name()),
            role(BuiltInRole::Member.name()),
            role(BuiltInRole::Finance.name()),
        );
        assert_eq!(owner & admin, admin, "owner includes admin");
        assert_eq!(admin & member, member, "admin includes member");
        // Every built-in permission, once: owner, admin, finance, member
        // (the README's matrix).
        const O_A: [bool; 4] = [true, true, false, false];
        const O_F: [bool; 4] = [true, false, true, false];
        const O: [bool; 4] = [true, false, false, false];
        const ALL_BUT_F: [bool; 4] = [true, true, false, true];
        let matrix: &[(Permission, [bool; 4])] = &[
            (Permission::ORGANIZATION_READ, [true; 4]),
            (Permission::ORGANIZATION_SETTINGS_MANAGE, O_A),
            (Permission::ORGANIZATION_MEMBERS_READ, O_A),
            (Permission::ORGANIZATION_MEMBERS_INVITE, O_A),
            (Permission::ORGANIZATION_MEMBERS_MANAGE, O_A),
            (Permission::ORGANIZATION_TEAMS_CREATE, O_A),
            (Permission::ORGANIZATION_DEPARTMENTS_CREATE, O_A),
            (Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE, O_A),
            (Permission::ORGANIZATION_API_KEYS_CREATE, O_A),
            (Permission::ORGANIZATION_DELETE, O),
            (Permission::ORGANIZATION_DEACTIVATE, O),
            (Permission::ORGANIZATION_OWNERSHIP_TRANSFER, O),
            (Permission::BILLING_READ, O_F),
            (Permission::BILLING_MANAGE, O_F),
            (Permission::PROJECT_CREATE, O_A),
            (Permission::AUDIT_READ, O_A),
            (Permission::AUTHZ_WRITE, O_A),
            (Permission::TEAM_READ, ALL_BUT_F),
            (Permission::TEAM_MANAGE, O_A),
            (Permission::TEAM_MEMBERS_MANAGE, O_A),
            (Permission::PROJECT_READ, ALL_BUT_F),
            (Permission::RESOURCES_USE, ALL_BUT_F),
            (Permission::PROJECT_MANAGE, O_A),
            (Permission::PROJECT_GRANTS_MANAGE, O_A),
            (Permission::PROJECT_DELETE, O_A),
        ];
        let mut rows: Vec<Permission> = matrix.iter().map(|(p, _)| *p).collect();
        rows.sort_unstable();
        let mut all = Permission::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(rows, all, "every permission has one row in the matrix");
        for (permission, [o, a, f, m]) in matrix {
            let permission = permission.as_str();
            assert_eq!(has(owner, permission), *o, "owner {permission}");
            assert_eq!(has(admin, permission), *a, "admin {permission}");
            assert_eq!(has(finance, permission), *f, "finance {permission}");
            assert_eq!(has(member, permission), *m, "member {permission}");
        }
    }

    #[test]
    fn the_schema_defines_exactly_the_shared_permissions_with_their_words() {
        let schema = Schema::built_in();
        let types = [ORGANIZATION, TEAM, PROJECT].map(|t| schema.resource_type(t).permissions);
        for permission in Permission::ALL {
            let bit = schema
                .permission(permission.as_str())
                .unwrap_or_else(|| panic!("{permission} is not in the schema"));
            assert_eq!(
                types.iter().filter(|mask| *mask & bit != 0).count(),
                1,
                "{permission} belongs to one type"
            );
        }
        assert_eq!(schema.names.len(), Permission::ALL.len());
        for (name, description) in schema.names.iter().zip(&schema.descriptions) {
            let permission = Permission::from_name(name).unwrap();
            assert_eq!(description, permission.description());
        }
    }

    #[test]
    fn permissions_belong_to_one_type() {
        let schema = Schema::built_in();
        let org = schema.resource_type(ORGANIZATION).permissions;
        let team = schema.resource_type(TEAM).permissions;
        let project = schema.resource_type(PROJECT).permissions;
        assert_eq!(org & team, 0);
        assert_eq!(org & project, 0);
        assert_eq!(team & project, 0);
        assert_eq!(schema.permissions(["project.read", "nope"]), Err("nope"));
    }
}
