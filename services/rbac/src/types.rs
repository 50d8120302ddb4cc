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

use crate::convert::{definition_from, type_view};
use crate::engine::{Change, SchemaError};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::memberships::check_etag;
use crate::{Caller, Core, NAME};

/// The `SchemaService` handler.
#[derive(Debug, Clone)]
pub struct SchemaApi(pub Core);

impl Core {
    async fn stored_type(&self, name: &str) -> Result<Option<(String, i64, i64, i64)>> {
        Ok(self
            .store
            .resource_type(name)
            .await?
            .map(|(_, by, created, updated, version)| (by, created, updated, version)))
    }
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
        probe
            .check_contract(&definition)
            .and_then(|()| probe.register(&definition))
            .map_err(|e| match e {
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
