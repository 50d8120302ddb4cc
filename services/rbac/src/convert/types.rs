//! Resource types: a registration a request carries, read into a type
//! definition, and a registered type as clients see it.

use tenantry_kit::error::{Error, Result};
use tenantry_proto::tenantry::authz::v1 as pb;

use crate::engine::{AccessLevel, Grantor, PermissionDefinition, TypeDefinition};
use crate::memberships::etag;
use crate::{Core, timestamp};

/// What grants a permission, as a registration names it at `field`.
pub(crate) fn grantor_from(grant: &pb::PermissionGrant, field: &str) -> Result<Grantor> {
    use pb::permission_grant::Grantor as G;
    match &grant.grantor {
        Some(G::Role(role)) => Ok(Grantor::Role(role.clone())),
        Some(G::ProjectAccessLevel(level)) => match pb::ProjectAccessLevel::try_from(*level) {
            Ok(pb::ProjectAccessLevel::Viewer) => Ok(Grantor::AccessLevel(AccessLevel::Viewer)),
            Ok(pb::ProjectAccessLevel::Contributor) => {
                Ok(Grantor::AccessLevel(AccessLevel::Contributor))
            }
            Ok(pb::ProjectAccessLevel::Admin) => Ok(Grantor::AccessLevel(AccessLevel::Admin)),
            _ => Err(Error::invalid_field(field, "is not a project access level")),
        },
        Some(G::TeamRole(role)) => match pb::TeamRole::try_from(*role) {
            Ok(pb::TeamRole::Lead) => Ok(Grantor::TeamRole(true)),
            Ok(pb::TeamRole::Member) => Ok(Grantor::TeamRole(false)),
            _ => Err(Error::invalid_field(field, "is not a team role")),
        },
        Some(G::ParentPermission(permission)) => Ok(Grantor::ParentPermission(permission.clone())),
        None => Err(Error::invalid_field(field, "names no grantor")),
    }
}

/// What grants a permission, as the API spells it.
pub(crate) fn grantor_to(grantor: &Grantor) -> pb::PermissionGrant {
    use pb::permission_grant::Grantor as G;
    pb::PermissionGrant {
        grantor: Some(match grantor {
            Grantor::Role(role) => G::Role(role.clone()),
            Grantor::AccessLevel(level) => G::ProjectAccessLevel(match level {
                AccessLevel::Viewer => pb::ProjectAccessLevel::Viewer,
                AccessLevel::Contributor => pb::ProjectAccessLevel::Contributor,
                AccessLevel::Admin => pb::ProjectAccessLevel::Admin,
            } as i32),
            Grantor::TeamRole(lead) => G::TeamRole(if *lead {
                pb::TeamRole::Lead
            } else {
                pb::TeamRole::Member
            } as i32),
            Grantor::ParentPermission(p) => G::ParentPermission(p.clone()),
        }),
    }
}

/// A registration's resource type, read and checked into a type definition.
pub(crate) fn definition_from(input: &pb::ResourceType) -> Result<TypeDefinition> {
    let name = input
        .name
        .strip_prefix("resourceTypes/")
        .unwrap_or(&input.name)
        .to_string();
    let mut permissions = Vec::new();
    for (i, p) in input.permissions.iter().enumerate() {
        let granted_by = p
            .granted_by
            .iter()
            .enumerate()
            .map(|(j, g)| {
                grantor_from(
                    g,
                    &format!("resource_type.permissions[{i}].granted_by[{j}]"),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        permissions.push(PermissionDefinition {
            name: p.name.clone(),
            description: p.description.clone(),
            granted_by,
        });
    }
    if permissions.is_empty() {
        return Err(Error::invalid_field(
            "resource_type.permissions",
            "must define at least one permission",
        ));
    }
    if !input.parent_relation.is_empty() && input.parent_relation != "parent" {
        return Err(Error::invalid_field(
            "resource_type.parent_relation",
            "must be `parent`",
        ));
    }
    if input.display_name.chars().count() > 200 {
        return Err(Error::invalid_field(
            "resource_type.display_name",
            "must be at most 200 characters",
        ));
    }
    if input.description.chars().count() > 1000 {
        return Err(Error::invalid_field(
            "resource_type.description",
            "must be at most 1000 characters",
        ));
    }
    Ok(TypeDefinition {
        name,
        parent_type: input.parent_type.clone(),
        permissions,
        display_name: input.display_name.trim().to_string(),
        description: input.description.clone(),
    })
}

impl Core {
    /// The registered type `name` as clients see it, with what the store
    /// keeps of it (registered by, created, updated, version).
    pub(crate) fn type_to_proto(
        &self,
        name: &str,
        stored: Option<(String, i64, i64, i64)>,
    ) -> Option<pb::ResourceType> {
        type_view(self.index.read().schema(), name, stored)
    }
}

/// The API view of a type as `schema` has it (the live index's, or a
/// candidate schema when a registration is only validated).
pub(crate) fn type_view(
    schema: &crate::engine::Schema,
    name: &str,
    stored: Option<(String, i64, i64, i64)>,
) -> Option<pb::ResourceType> {
    let t = schema.resource_type(schema.type_id(name)?);
    let parent = t
        .parent
        .map(|p| schema.resource_type(p).name.clone())
        .unwrap_or_default();
    let permissions = match &t.definition {
        Some(definition) => definition
            .permissions
            .iter()
            .map(|p| pb::PermissionDefinition {
                name: p.name.clone(),
                description: p.description.clone(),
                granted_by: p.granted_by.iter().map(grantor_to).collect(),
            })
            .collect(),
        None => schema
            .all_permissions()
            .into_iter()
            .filter(|(_, _, owner)| *owner == name)
            .map(|(permission, description, _)| pb::PermissionDefinition {
                name: permission.into(),
                description: description.into(),
                granted_by: Vec::new(),
            })
            .collect(),
    };
    let (registered_by, created, updated, version) = stored.unwrap_or_default();
    Some(pb::ResourceType {
        name: format!("resourceTypes/{name}"),
        display_name: t
            .definition
            .as_ref()
            .map(|d| d.display_name.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.to_string()),
        description: t
            .definition
            .as_ref()
            .map(|d| d.description.clone())
            .unwrap_or_default(),
        parent_type: parent.clone(),
        parent_relation: if parent.is_empty() {
            String::new()
        } else {
            "parent".into()
        },
        permissions,
        relations: if parent.is_empty() {
            Vec::new()
        } else {
            vec![pb::RelationDefinition {
                name: "parent".into(),
                allowed_subject_types: vec![parent],
                single_valued: true,
            }]
        },
        built_in: t.definition.is_none(),
        registered_by,
        create_time: (created > 0).then(|| timestamp(created)),
        update_time: (updated > 0).then(|| timestamp(updated)),
        etag: if version > 0 {
            etag(version)
        } else {
            String::new()
        },
    })
}
