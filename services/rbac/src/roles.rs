//! `RoleService`: the built-in roles and an organization's custom roles
//! (a name and a set of permissions). A custom role someone holds cannot be
//! deleted unless its holders are reassigned to another role in the same
//! call.

use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::names::{CustomRoleName, OrganizationName};
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::custom_to_proto;
use crate::engine::schema::BUILT_IN_ROLES;
use crate::engine::{Change, GrantSubject};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::memberships::check_etag;
use crate::store::{GrantRow, RoleRow};
use crate::{Caller, Core, NAME};

/// The `RoleService` handler.
#[derive(Debug, Clone)]
pub struct RoleApi(pub Core);

impl Core {
    /// A role's name as people read it: `Member` for `roles/member`, a
    /// custom role's display name; the resource name if it is gone.
    pub(crate) async fn role_display_name(
        &self,
        organization_id: &str,
        name: &str,
    ) -> Result<String> {
        if let Some(role) = self.built_in_to_proto(name) {
            return Ok(role.display_name);
        }
        let custom = match CustomRoleName::parse("role", name) {
            Ok(role) => self.store.role(organization_id, &role.id).await?,
            Err(_) => None,
        };
        Ok(custom.map_or_else(|| name.to_string(), |role| role.display_name))
    }

    fn valid_permissions(&self, permissions: &[String]) -> Result<()> {
        let index = self.index.read();
        for (i, permission) in permissions.iter().enumerate() {
            if index.schema().permission(permission).is_none() {
                return Err(Error::invalid_field(
                    format!("role.permissions[{i}]"),
                    format!("no registered type defines the permission `{permission}`"),
                ));
            }
        }
        Ok(())
    }

    fn validate_role(&self, role: &pb::Role) -> Result<()> {
        let name = role.display_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid_field(
                "role.display_name",
                "must be 1 to 100 characters",
            ));
        }
        if role.description.chars().count() > 1000 {
            return Err(Error::invalid_field(
                "role.description",
                "must be at most 1000 characters",
            ));
        }
        self.valid_permissions(&role.permissions)
    }

    async fn custom_role(
        &self,
        caller: &Caller,
        name: &str,
        permission: Permission,
    ) -> Result<RoleRow> {
        let CustomRoleName {
            organization: organization_id,
            id,
        } = CustomRoleName::parse("name", name)?;
        self.authorize(
            caller,
            ("organization", &organization_id),
            permission,
            Permission::ORGANIZATION_READ,
            "role",
        )
        .await?;
        self.store
            .role(&organization_id, &id)
            .await?
            .ok_or_else(|| Error::not_found("role").with_domain(NAME))
    }

    async fn holders(&self, role: &RoleRow) -> Result<i32> {
        let mut tx = self.store.begin().await?;
        let holders = self
            .store
            .role_holders(&mut tx, &role.organization_id, &role.name())
            .await?;
        Ok(holders.len() as i32)
    }

    async fn role_event<M: tenantry_proto::EventType>(
        &self,
        caller: &Caller,
        role: &RoleRow,
        payload: &M,
    ) -> tenantry_kit::outbox::NewEvent {
        self.event(caller, ("role", &role.id), &role.organization_id, payload)
            .await
    }
}

#[tonic::async_trait]
impl pb::role_service_server::RoleService for RoleApi {
    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let organization_id = OrganizationName::parse("parent", &r.parent)?.id;
        let input = r
            .role
            .ok_or_else(|| Error::invalid_field("role", "is required"))?;
        self.0
            .authorize(
                &caller,
                ("organization", &organization_id),
                Permission::ORGANIZATION_MEMBERS_MANAGE,
                Permission::ORGANIZATION_READ,
                "organization",
            )
            .await?;
        if let Some(id) = self
            .0
            .store
            .replayed(&caller.principal.id, "CreateRole", &r.request_id)
            .await?
            && let Some(role) = self.0.store.role(&organization_id, &id).await?
        {
            return Ok(Response::new(pb::CreateRoleResponse {
                role: Some(custom_to_proto(&role, self.0.holders(&role).await?)),
                written_at: Some(token(self.0.index.applied())),
            }));
        }
        self.0.validate_role(&input)?;
        // Custom roles are a paid feature: a downgraded organization keeps
        // (and may change or delete) the ones it has, and makes no more.
        self.0
            .peers
            .ensure_feature(&caller, &organization_id, "custom_roles", "custom roles")
            .await?;
        let now = now_micros();
        let role = RoleRow {
            id: new_id().to_string(),
            organization_id: organization_id.clone(),
            display_name: input.display_name.trim().to_string(),
            description: input.description.clone(),
            permissions: input.permissions.clone(),
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.0.store.begin().await?;
        self.0
            .store
            .upsert_role(&mut tx, &role)
            .await
            .map_err(Refusal::RoleNameTaken.on_conflict())?;
        self.0
            .store
            .remember(
                &mut tx,
                &caller.principal.id,
                "CreateRole",
                &r.request_id,
                &role.id,
            )
            .await?;
        let event = self
            .0
            .role_event(
                &caller,
                &role,
                &events::RoleCreated {
                    role_id: role.id.clone(),
                    organization_id: organization_id.clone(),
                    name: role.display_name.clone(),
                    permissions: role.permissions.clone(),
                },
            )
            .await;
        let revision = self
            .0
            .write(
                tx,
                &[Change::Role {
                    name: role.name(),
                    permissions: role.permissions.clone(),
                }],
                vec![event],
            )
            .await?;
        Ok(Response::new(pb::CreateRoleResponse {
            role: Some(custom_to_proto(&role, 0)),
            written_at: Some(token(revision)),
        }))
    }

    async fn get_role(
        &self,
        request: Request<pb::GetRoleRequest>,
    ) -> Result<Response<pb::GetRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let name = &request.get_ref().name;
        if let Some(role) = self.0.built_in_to_proto(name) {
            return Ok(Response::new(pb::GetRoleResponse { role: Some(role) }));
        }
        let role = self
            .0
            .custom_role(&caller, name, Permission::ORGANIZATION_READ)
            .await?;
        Ok(Response::new(pb::GetRoleResponse {
            role: Some(custom_to_proto(&role, self.0.holders(&role).await?)),
        }))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let organization_id = OrganizationName::parse("parent", &r.parent)?.id;
        self.0
            .authorize(
                &caller,
                ("organization", &organization_id),
                Permission::ORGANIZATION_READ,
                Permission::ORGANIZATION_READ,
                "organization",
            )
            .await?;
        // Built-in roles first, then the custom ones; their holders are
        // counted for the page only.
        enum Listed {
            BuiltIn(pb::Role),
            Custom(RoleRow),
        }
        let mut all: Vec<Listed> = Vec::new();
        if r.kind() != pb::list_roles_request::RoleKind::Custom {
            all.extend(
                BUILT_IN_ROLES
                    .iter()
                    .filter_map(|n| self.0.built_in_to_proto(n))
                    .map(Listed::BuiltIn),
            );
        }
        if r.kind() != pb::list_roles_request::RoleKind::BuiltIn {
            let custom = self.0.store.roles(&organization_id).await?;
            all.extend(custom.into_iter().map(Listed::Custom));
        }
        let query = format!("roles|{organization_id}|{}", r.kind);
        let (page, next_page_token) =
            self.0
                .page_of(all, &query, r.page_size, &r.page_token, 50)?;
        let mut roles = Vec::with_capacity(page.len());
        for role in page {
            roles.push(match role {
                Listed::BuiltIn(built_in) => built_in,
                Listed::Custom(custom) => {
                    let holders = self.0.holders(&custom).await?;
                    custom_to_proto(&custom, holders)
                }
            });
        }
        Ok(Response::new(pb::ListRolesResponse {
            roles,
            next_page_token,
        }))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let input = r
            .role
            .ok_or_else(|| Error::invalid_field("role", "is required"))?;
        if BUILT_IN_ROLES.contains(&input.name.as_str()) {
            return Err(Refusal::BuiltInRoleChanged.into());
        }
        let paths: Vec<String> = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid_field("update_mask", "must name at least one field").into());
        }
        let current = self
            .0
            .custom_role(
                &caller,
                &input.name,
                Permission::ORGANIZATION_MEMBERS_MANAGE,
            )
            .await?;
        check_etag(&input.etag, current.version)?;
        let mut next = current.clone();
        for (i, path) in paths.iter().enumerate() {
            match path.as_str() {
                "display_name" => next.display_name = input.display_name.trim().to_string(),
                "description" => next.description = input.description.clone(),
                "permissions" => next.permissions = input.permissions.clone(),
                other => {
                    return Err(Error::invalid_field(
                        format!("update_mask.paths[{i}]"),
                        format!("`{other}` cannot be updated"),
                    )
                    .into());
                }
            }
        }
        self.0.validate_role(&pb::Role {
            display_name: next.display_name.clone(),
            description: next.description.clone(),
            permissions: next.permissions.clone(),
            ..Default::default()
        })?;
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.0.store.begin().await?;
        self.0
            .store
            .upsert_role(&mut tx, &next)
            .await
            .map_err(Refusal::RoleNameTaken.on_conflict())?;
        let event = self
            .0
            .role_event(
                &caller,
                &next,
                &events::RoleUpdated {
                    role_id: next.id.clone(),
                    organization_id: next.organization_id.clone(),
                    name: next.display_name.clone(),
                    old_permissions: current.permissions.clone(),
                    new_permissions: next.permissions.clone(),
                },
            )
            .await;
        let revision = self
            .0
            .write(
                tx,
                &[Change::Role {
                    name: next.name(),
                    permissions: next.permissions.clone(),
                }],
                vec![event],
            )
            .await?;
        let holders = self.0.holders(&next).await?;
        Ok(Response::new(pb::UpdateRoleResponse {
            role: Some(custom_to_proto(&next, holders)),
            written_at: Some(token(revision)),
        }))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        if BUILT_IN_ROLES.contains(&r.name.as_str()) {
            return Err(Refusal::BuiltInRoleDeleted.into());
        }
        let role = self
            .0
            .custom_role(&caller, &r.name, Permission::ORGANIZATION_MEMBERS_MANAGE)
            .await?;
        check_etag(&r.etag, role.version)?;
        let name = role.name();
        if !r.reassign_to.is_empty() {
            if r.reassign_to == name {
                return Err(Error::invalid_field("reassign_to", "must be another role").into());
            }
            self.0
                .valid_roles(
                    &role.organization_id,
                    std::slice::from_ref(&r.reassign_to),
                    "reassign_to",
                )
                .await?;
        }
        let mut tx = self.0.store.begin().await?;
        let holders = self
            .0
            .store
            .role_holders(&mut tx, &role.organization_id, &name)
            .await?;
        let grants = self
            .0
            .store
            .grants_to(&mut tx, &GrantSubject::Role(name.clone()))
            .await?;
        if (!holders.is_empty() || !grants.is_empty()) && r.reassign_to.is_empty() {
            return Err(Refusal::RoleInUse {
                holders: holders.len(),
                grants: grants.len(),
            }
            .into());
        }
        let mut changes = Vec::new();
        let now = now_micros();
        for mut m in holders {
            m.roles.retain(|r| *r != name);
            if !m.roles.contains(&r.reassign_to) {
                m.roles.push(r.reassign_to.clone());
            }
            m.updated_at_us = now;
            m.version += 1;
            self.0.store.upsert_membership(&mut tx, &m).await?;
            changes.push(Change::Membership {
                organization: m.organization_id.clone(),
                user: m.user_id.clone(),
                roles: m.roles.clone(),
            });
        }
        // Projects granted to the role are granted to its replacement, at
        // the higher level where the replacement already had a grant: no
        // one loses access by the deletion.
        let replacement = GrantSubject::Role(r.reassign_to.clone());
        for grant in grants {
            self.0.store.delete_grant(&mut tx, &grant.id).await?;
            changes.push(Change::ProjectGrant {
                project: grant.project_id.clone(),
                subject: grant.subject.clone(),
                level: None,
            });
            let existing = self
                .0
                .store
                .project_grants_in(&mut tx, &grant.project_id)
                .await?
                .into_iter()
                .find(|g| g.subject == replacement);
            let moved = match existing {
                Some(mut kept) if kept.level < grant.level => {
                    kept.level = grant.level;
                    kept.updated_at_us = now;
                    kept.version += 1;
                    self.0.store.update_grant_level(&mut tx, &kept).await?;
                    kept
                }
                Some(kept) => kept,
                None => {
                    let row = GrantRow {
                        id: new_id().to_string(),
                        subject: replacement.clone(),
                        created_at_us: now,
                        updated_at_us: now,
                        version: 1,
                        ..grant
                    };
                    self.0.store.insert_grant(&mut tx, &row).await?;
                    row
                }
            };
            changes.push(Change::ProjectGrant {
                project: moved.project_id,
                subject: moved.subject,
                level: Some(moved.level),
            });
        }
        self.0.store.delete_role(&mut tx, &role.id).await?;
        changes.push(Change::RemoveRole { name });
        let event = self
            .0
            .role_event(
                &caller,
                &role,
                &events::RoleDeleted {
                    role_id: role.id.clone(),
                    organization_id: role.organization_id.clone(),
                    name: role.display_name.clone(),
                },
            )
            .await;
        let revision = self.0.write(tx, &changes, vec![event]).await?;
        Ok(Response::new(pb::DeleteRoleResponse {
            written_at: Some(token(revision)),
        }))
    }

    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        let _caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let size = tenantry_kit::page_token::page_size(r.page_size, 100, 1000)? as usize;
        let query = format!("permissions|{}", r.resource_type);
        let after: String = self
            .0
            .page_tokens
            .decode(query.as_bytes(), &r.page_token)?
            .unwrap_or_default();
        let index = self.0.index.read();
        let schema = index.schema();
        let mut permissions: Vec<pb::Permission> = schema
            .all_permissions()
            .into_iter()
            .filter(|(_, _, t)| r.resource_type.is_empty() || *t == r.resource_type)
            .map(|(name, description, resource_type)| {
                let bit = schema.permission(name).unwrap_or(0);
                let registered = schema
                    .type_id(resource_type)
                    .is_some_and(|t| schema.resource_type(t).definition.is_some());
                pb::Permission {
                    permission: name.to_string(),
                    description: description.to_string(),
                    resource_type: resource_type.to_string(),
                    built_in_roles: BUILT_IN_ROLES
                        .iter()
                        .filter(|role| schema.built_in_role(role).is_some_and(|p| p & bit != 0))
                        .map(|r| r.to_string())
                        .collect(),
                    registered,
                }
            })
            .collect();
        permissions.sort_by(|a, b| a.permission.cmp(&b.permission));
        permissions.retain(|p| p.permission > after);
        let more = permissions.len() > size;
        permissions.truncate(size);
        let next_page_token = match (more, permissions.last()) {
            (true, Some(last)) => self
                .0
                .page_tokens
                .encode(query.as_bytes(), &last.permission),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListPermissionsResponse {
            permissions,
            next_page_token,
        }))
    }
}
