//! `SchemaService`: resource types registered by internal services (a
//! deployment in a project, a tunnel in an environment…): the type, its
//! parent type, its permissions and what grants them. Only Tenantry's own
//! services register types; every caller may read them.

use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::authz::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::engine::{
    AccessLevel, Change, Grantor, PermissionDefinition, SchemaError, TypeDefinition,
};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::memberships::{check_etag, etag};
use crate::{Caller, Core, NAME, timestamp};

/// The `SchemaService` handler.
#[derive(Debug, Clone)]
pub struct SchemaApi(pub Core);

fn grantor_from(grant: &pb::PermissionGrant, field: &str) -> Result<Grantor> {
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

fn grantor_to(grantor: &Grantor) -> pb::PermissionGrant {
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

fn definition_from(input: &pb::ResourceType) -> Result<TypeDefinition> {
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
    fn type_to_proto(
        &self,
        name: &str,
        stored: Option<(String, i64, i64, i64)>,
    ) -> Option<pb::ResourceType> {
        type_view(self.index.read().schema(), name, stored)
    }
    async fn stored_type(&self, name: &str) -> Result<Option<(String, i64, i64, i64)>> {
        Ok(self
            .store
            .resource_type(name)
            .await?
            .map(|(_, by, created, updated, version)| (by, created, updated, version)))
    }
}

/// The API view of a type as `schema` has it (the live index's, or a
/// candidate schema when a registration is only validated).
fn type_view(
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

/// Types are deployment-wide: only machine identities register them —
/// Tenantry's own services, and service accounts (which platform
/// administrators create for the internal services that own the types).
fn only_services(caller: &Caller) -> Result<()> {
    if caller.is_internal()
        || caller.principal.kind == tenantry_kit::auth::PrincipalKind::ServiceAccount
    {
        Ok(())
    } else {
        Err(Error::permission_denied("authz.schema.write")
            .with_domain(NAME)
            .with_metadata("reason", "resource types are registered by services"))
    }
}

/// Whether the caller may change a stored type registered by
/// `registered_by`: the service account that registered it, or Tenantry's
/// own services. Another service must not redefine (or delete) a type it
/// does not own: it would change who may do what to the owner's objects.
fn owns(caller: &Caller, registered_by: &str) -> bool {
    caller.is_internal() || caller.principal.id == registered_by
}

#[tonic::async_trait]
impl pb::schema_service_server::SchemaService for SchemaApi {
    async fn register_resource_type(
        &self,
        request: Request<pb::RegisterResourceTypeRequest>,
    ) -> Result<Response<pb::RegisterResourceTypeResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        only_services(&caller)?;
        let r = request.into_inner();
        let input = r
            .resource_type
            .ok_or_else(|| Error::invalid_field("resource_type", "is required"))?;
        let definition = definition_from(&input)?;
        // Try it on a copy of the schema first: a bad definition writes
        // nothing.
        let mut probe = self.0.index.read().schema().clone();
        probe.register(&definition).map_err(|e| match e {
            SchemaError::BuiltIn(_) => Refusal::TypeBuiltIn(e).into(),
            SchemaError::ParentChanged(_) => Refusal::ParentChanged(e).into(),
            SchemaError::Full => Refusal::SchemaFull(e).into(),
            _ => Error::invalid_field("resource_type", e.to_string()),
        })?;
        let stored = self.0.stored_type(&definition.name).await?;
        if let Some((registered_by, _, _, version)) = &stored {
            if !owns(&caller, registered_by) {
                return Err(Refusal::TypeOwnedByAnother {
                    name: definition.name.clone(),
                }
                .into());
            }
            check_etag(&input.etag, *version)?;
        }
        if r.validate_only {
            // The type as it would be: from the candidate schema.
            let view = type_view(&probe, &definition.name, stored).unwrap_or_default();
            return Ok(Response::new(pb::RegisterResourceTypeResponse {
                resource_type: Some(view),
                written_at: Some(token(self.0.index.applied())),
            }));
        }
        let mut tx = self.0.store.begin().await?;
        self.0
            .store
            .upsert_type(
                &mut tx,
                &definition.name,
                &serde_json::to_string(&definition).expect("serializes"),
                &caller.principal.id,
                now_micros(),
            )
            .await?;
        let event = tenantry_kit::outbox::NewEvent::new(
            "resource_type",
            definition.name.clone(),
            caller.actor(),
            &events::SchemaChanged {
                revision: String::new(),
                changed_types: vec![definition.name.clone()],
                removed_types: Vec::new(),
                registered_by: caller.principal.id.clone(),
            },
        );
        let revision = self
            .0
            .write(
                tx,
                &[Change::RegisterType {
                    definition: definition.clone(),
                }],
                vec![event],
            )
            .await?;
        let stored = self.0.stored_type(&definition.name).await?;
        Ok(Response::new(pb::RegisterResourceTypeResponse {
            resource_type: self.0.type_to_proto(&definition.name, stored),
            written_at: Some(token(revision)),
        }))
    }

    async fn get_resource_type(
        &self,
        request: Request<pb::GetResourceTypeRequest>,
    ) -> Result<Response<pb::GetResourceTypeResponse>, Status> {
        let _caller = self.0.caller(&request).await?;
        let name = request
            .get_ref()
            .name
            .strip_prefix("resourceTypes/")
            .unwrap_or_default()
            .to_string();
        let stored = self.0.stored_type(&name).await?;
        let resource_type = self
            .0
            .type_to_proto(&name, stored)
            .ok_or_else(|| Error::not_found("resource type").with_domain(NAME))?;
        Ok(Response::new(pb::GetResourceTypeResponse {
            resource_type: Some(resource_type),
        }))
    }

    async fn list_resource_types(
        &self,
        request: Request<pb::ListResourceTypesRequest>,
    ) -> Result<Response<pb::ListResourceTypesResponse>, Status> {
        let _caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        // Built-in types first (in their order), then the registered ones
        // by name.
        let names: Vec<String> = {
            let index = self.0.index.read();
            let schema = index.schema();
            let live: Vec<&crate::engine::schema::ResourceType> = schema
                .types()
                .iter()
                .filter(|t| schema.type_id(&t.name).is_some())
                .collect();
            let mut registered: Vec<String> = live
                .iter()
                .filter(|t| t.definition.is_some())
                .map(|t| t.name.clone())
                .collect();
            registered.sort();
            live.iter()
                .filter(|t| t.definition.is_none())
                .map(|t| t.name.clone())
                .chain(registered)
                .collect()
        };
        let (page, next_page_token) =
            self.0
                .page_of(names, "resource_types", r.page_size, &r.page_token, 100)?;
        let mut resource_types = Vec::new();
        for name in page {
            let stored = self.0.stored_type(&name).await?;
            resource_types.extend(self.0.type_to_proto(&name, stored));
        }
        Ok(Response::new(pb::ListResourceTypesResponse {
            resource_types,
            next_page_token,
        }))
    }

    async fn delete_resource_type(
        &self,
        request: Request<pb::DeleteResourceTypeRequest>,
    ) -> Result<Response<pb::DeleteResourceTypeResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        only_services(&caller)?;
        let r = request.get_ref();
        let name = r
            .name
            .strip_prefix("resourceTypes/")
            .unwrap_or_default()
            .to_string();
        let built_in = {
            let index = self.0.index.read();
            let schema = index.schema();
            schema
                .type_id(&name)
                .is_some_and(|t| schema.resource_type(t).definition.is_none())
        };
        if built_in {
            return Err(Refusal::BuiltInTypeDeleted.into());
        }
        let Some((registered_by, _, _, version)) = self.0.stored_type(&name).await? else {
            return Err(Error::not_found("resource type").with_domain(NAME).into());
        };
        if !owns(&caller, &registered_by) {
            return Err(Error::permission_denied("authz.schema.write")
                .with_domain(NAME)
                .with_metadata("reason", "the type is registered by another service")
                .into());
        }
        check_etag(&r.etag, version)?;
        // A type's objects, and custom roles naming its permissions, may sit
        // in any tenant: the type is the deployment's, not one tenant's.
        let used = tenancy::system(self.0.store.count_nodes(&name)).await?;
        let children = {
            let index = self.0.index.read();
            let id = index.schema().type_id(&name);
            index
                .schema()
                .types()
                .iter()
                .any(|t| t.parent == id && index.schema().type_id(&t.name).is_some())
        };
        let roles = tenancy::system(self.0.store.roles_naming_type(&name)).await?;
        if used > 0 || children || roles > 0 {
            return Err(Refusal::TypeInUse {
                roles,
                objects: used,
            }
            .into());
        }
        let mut tx = self.0.store.begin().await?;
        self.0.store.delete_type(&mut tx, &name).await?;
        let event = tenantry_kit::outbox::NewEvent::new(
            "resource_type",
            name.clone(),
            caller.actor(),
            &events::SchemaChanged {
                revision: String::new(),
                changed_types: Vec::new(),
                removed_types: vec![name.clone()],
                registered_by: caller.principal.id.clone(),
            },
        );
        let revision = self
            .0
            .write(tx, &[Change::UnregisterType { name }], vec![event])
            .await?;
        Ok(Response::new(pb::DeleteResourceTypeResponse {
            written_at: Some(token(revision)),
        }))
    }
}
