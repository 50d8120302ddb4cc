//! Type definitions as `tenantry.authz.v1` messages, and the shape of a
//! type that a plan compares (the same whichever side it comes from).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tenantry_proto::tenantry::authz::v1 as pb;
use tenantry_rbac::engine::{AccessLevel, Grantor, TypeDefinition};

/// The `ResourceType` that registers `definition`.
pub fn to_proto(definition: &TypeDefinition) -> pb::ResourceType {
    pb::ResourceType {
        name: format!("resourceTypes/{}", definition.name),
        display_name: definition.display_name.clone(),
        description: definition.description.clone(),
        parent_type: definition.parent_type.clone(),
        parent_relation: "parent".into(),
        permissions: definition
            .permissions
            .iter()
            .map(|p| pb::PermissionDefinition {
                name: p.name.clone(),
                description: p.description.clone(),
                granted_by: p.granted_by.iter().map(grant_to_proto).collect(),
            })
            .collect(),
        ..Default::default()
    }
}

fn grant_to_proto(grantor: &Grantor) -> pb::PermissionGrant {
    use pb::permission_grant::Grantor as G;
    pb::PermissionGrant {
        grantor: Some(match grantor {
            Grantor::Role(role) => G::Role(role.clone()),
            Grantor::AccessLevel(level) => G::ProjectAccessLevel(match level {
                AccessLevel::Viewer => pb::ProjectAccessLevel::Viewer,
                AccessLevel::Contributor => pb::ProjectAccessLevel::Contributor,
                AccessLevel::Admin => pb::ProjectAccessLevel::Admin,
            } as i32),
            Grantor::TeamRole(lead) => G::TeamRole(match lead {
                true => pb::TeamRole::Lead,
                false => pb::TeamRole::Member,
            } as i32),
            Grantor::ParentPermission(p) => G::ParentPermission(p.clone()),
        }),
    }
}

/// One grantor as text, the way the schema file spells it:
/// `role: roles/admin`, `access_level: contributor`, `team_role: lead`,
/// `parent_permission: project.read`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant(pub String);

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission as a plan compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionShape {
    pub description: String,
    pub granted_by: BTreeSet<Grant>,
}

/// A type as a plan compares it: what `RegisterResourceType` can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub parent: String,
    pub display_name: String,
    pub description: String,
    pub permissions: BTreeMap<String, PermissionShape>,
}

impl Shape {
    /// The shape of a definition from a file. An empty display name is
    /// shown as the type name, as the server does.
    pub fn of_definition(definition: &TypeDefinition) -> Shape {
        Shape::of_proto(&to_proto(definition))
    }

    /// The shape of a type as the server answers it.
    pub fn of_proto(resource_type: &pb::ResourceType) -> Shape {
        let name = resource_type
            .name
            .strip_prefix("resourceTypes/")
            .unwrap_or(&resource_type.name);
        let display_name = match resource_type.display_name.trim() {
            "" => name.to_string(),
            shown => shown.to_string(),
        };
        Shape {
            parent: resource_type.parent_type.clone(),
            display_name,
            description: resource_type.description.clone(),
            permissions: resource_type
                .permissions
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        PermissionShape {
                            description: p.description.clone(),
                            granted_by: p.granted_by.iter().filter_map(grant_text).collect(),
                        },
                    )
                })
                .collect(),
        }
    }
}

fn grant_text(grant: &pb::PermissionGrant) -> Option<Grant> {
    use pb::permission_grant::Grantor as G;
    let text = match grant.grantor.as_ref()? {
        G::Role(role) => format!("role: {role}"),
        G::ProjectAccessLevel(level) => {
            let level = match pb::ProjectAccessLevel::try_from(*level).ok()? {
                pb::ProjectAccessLevel::Viewer => "viewer",
                pb::ProjectAccessLevel::Contributor => "contributor",
                pb::ProjectAccessLevel::Admin => "admin",
                pb::ProjectAccessLevel::Unspecified => return None,
            };
            format!("access_level: {level}")
        }
        G::TeamRole(role) => {
            let role = match pb::TeamRole::try_from(*role).ok()? {
                pb::TeamRole::Lead => "lead",
                pb::TeamRole::Member => "member",
                pb::TeamRole::Unspecified => return None,
            };
            format!("team_role: {role}")
        }
        G::ParentPermission(p) => format!("parent_permission: {p}"),
    };
    Some(Grant(text))
}
