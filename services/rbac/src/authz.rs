//! `AuthorizationService`: checks, bulk checks and lookups answered from
//! this replica's index, at the freshness the caller asks for.
//!
//! Who may ask: a user about themselves; an API key about itself (within
//! its organization and its permissions); another Tenantry service about
//! anyone. Anything else is PERMISSION_DENIED. Denied and unknown objects
//! answer the same: DENIED.

use std::time::Instant;
use tenantry_kit::permission::Permission;

use serde::{Deserialize, Serialize};
use tenantry_kit::auth::{Principal, PrincipalKind};
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::OrganizationName;
use tenantry_kit::page_token::page_size;
use tenantry_proto::tenantry::authz::v1 as pb;
use tonic::{Request, Response, Status};

use crate::engine::{Index, IndexError};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::{Core, NAME};

/// The most checks one bulk call may carry.
pub const MAX_BULK: usize = 1000;

/// The `AuthorizationService` handler.
#[derive(Debug, Clone)]
pub struct AuthorizationApi(pub Core);

/// An unknown type or permission, or a permission of another type, named
/// by its own reason so callers (identity, checking an API key's
/// permissions) can tell them apart.
fn index_error(error: IndexError) -> Error {
    Refusal::Index(error).into()
}

fn permissionship(allowed: bool) -> pb::Permissionship {
    if allowed {
        pb::Permissionship::Allowed
    } else {
        pb::Permissionship::Denied
    }
}

/// The subject a caller may ask about, as (type, id).
fn subject(reference: Option<&pb::SubjectReference>) -> Result<(&str, &str)> {
    let object = reference
        .and_then(|s| s.object.as_ref())
        .ok_or_else(|| Error::invalid_field("subject", "is required"))?;
    if object.object_id.is_empty() {
        return Err(Error::invalid_field(
            "subject.object.object_id",
            "is required",
        ));
    }
    match object.object_type.as_str() {
        "user" | "api_key" | "service_account" => Ok((&object.object_type, &object.object_id)),
        _ => Err(Error::invalid_field(
            "subject.object.object_type",
            "must be `user`, `api_key` or `service_account`",
        )),
    }
}

/// Refuses questions the caller may not ask: a user or API key asks about
/// itself; a service account about anyone, on objects of the organization
/// its token is for; Tenantry's own services about anything.
fn may_ask(
    principal: &Principal,
    index: &Index,
    subject_type: &str,
    subject_id: &str,
    object: Option<(&str, &str)>,
) -> Result<()> {
    if principal.internal_service().is_some() {
        return Ok(());
    }
    let own = principal.kind.as_str() == subject_type && principal.id == subject_id;
    let served = principal.kind == PrincipalKind::ServiceAccount
        && principal.organization.as_deref().is_some_and(|org| {
            object.is_some_and(|(object_type, id)| index.within(object_type, id, org))
        });
    if own || served {
        Ok(())
    } else {
        Err(Error::permission_denied("authz.check")
            .with_domain(NAME)
            .with_metadata(
                "reason",
                "a caller may only ask about itself, or a service account about its organization",
            ))
    }
}

/// Whether the asker's sign-in session still stands: the access tokens of
/// an ended session (logout, revocation, password change) hold nothing,
/// from the moment identity's write returns.
pub(crate) fn session_live(index: &Index, principal: &Principal) -> bool {
    principal
        .session_id
        .as_deref()
        .is_none_or(|session| index.session_live(session))
}

fn object<'a>(
    reference: Option<&'a pb::ObjectReference>,
    field: &str,
) -> Result<(&'a str, &'a str)> {
    let object = reference.ok_or_else(|| Error::invalid_field(field, "is required"))?;
    if object.object_type.is_empty() || object.object_id.is_empty() {
        return Err(Error::invalid_field(field, "needs a type and an id"));
    }
    Ok((&object.object_type, &object.object_id))
}

impl Core {
    /// One check, under an index already locked for reading.
    fn decide(
        &self,
        index: &Index,
        principal: &Principal,
        subject: (&str, &str),
        object: (&str, &str),
        permission: &str,
    ) -> Result<bool> {
        let allowed = self.decide_for(index, principal, subject, object, permission)?;
        Ok(allowed && session_live(index, principal))
    }

    fn decide_for(
        &self,
        index: &Index,
        principal: &Principal,
        subject: (&str, &str),
        object: (&str, &str),
        permission: &str,
    ) -> Result<bool> {
        match subject.0 {
            "user" => index
                .check_by_id(subject.1, object.0, object.1, permission)
                .map_err(index_error),
            // An API key: what it carries, inside its scope, while its
            // owner holds it there (the index knows live keys only).
            "api_key" => {
                let key = index
                    .check_key(subject.1, object.0, object.1, permission)
                    .map_err(index_error)?;
                Ok(key && principal.kind == PrincipalKind::ApiKey)
            }
            // Service accounts hold no grants in the index yet.
            _ => {
                index
                    .permission_bit(object.0, permission)
                    .map_err(index_error)?;
                Ok(false)
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct After(String);

#[tonic::async_trait]
impl pb::authorization_service_server::AuthorizationService for AuthorizationApi {
    async fn check_permission(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        // The hot path: no copy of the principal, no request context (it
        // only matters for events, and a check writes none).
        let principal = Principal::from_request(&request)?;
        let r = request.get_ref();
        let subject = subject(r.subject.as_ref())?;
        let resource = r
            .resource
            .as_ref()
            .ok_or_else(|| Error::invalid_field("resource", "is required"))?;
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let started = Instant::now();
        let index = self.0.index.read();
        may_ask(
            principal,
            &index,
            subject.0,
            subject.1,
            Some((&resource.object_type, &resource.object_id)),
        )?;
        let allowed = self.0.decide(
            &index,
            principal,
            subject,
            (&resource.object_type, &resource.object_id),
            &r.permission,
        )?;
        let debug_trace = if r.with_tracing && subject.0 == "user" {
            let (_, trace) = index
                .explain(
                    subject.1,
                    &resource.object_type,
                    &resource.object_id,
                    &r.permission,
                )
                .map_err(index_error)?;
            let explanation = trace
                .steps
                .iter()
                .map(|(t, id, held)| format!("{t}:{id} holds [{}]", held.join(", ")))
                .collect::<Vec<_>>()
                .join(" -> ");
            Some(pb::PermissionTrace {
                resource: Some(resource.clone()),
                permission: r.permission.clone(),
                subject: r.subject.clone(),
                source: pb::permission_trace::Source::Parent as i32,
                permissionship: permissionship(allowed) as i32,
                explanation: match trace.stopped {
                    Some(stop) => format!("{explanation}; stopped: {stop}"),
                    None => explanation,
                },
                sub_traces: Vec::new(),
                duration: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: started.elapsed().as_nanos().min(999_999_999) as i32,
                }),
            })
        } else {
            None
        };
        drop(index);
        Ok(Response::new(pb::CheckPermissionResponse {
            checked_at: Some(token(revision)),
            permissionship: permissionship(allowed) as i32,
            debug_trace,
        }))
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<pb::CheckBulkPermissionsRequest>,
    ) -> Result<Response<pb::CheckBulkPermissionsResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let r = request.into_inner();
        if r.items.is_empty() || r.items.len() > MAX_BULK {
            return Err(
                Error::invalid_field("items", format!("must hold 1 to {MAX_BULK} checks"))
                    .with_metadata("max_items", MAX_BULK)
                    .into(),
            );
        }
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let index = self.0.index.read();
        let pairs = r
            .items
            .into_iter()
            .map(|item| {
                let answer = subject(item.subject.as_ref()).and_then(|s| {
                    let resource = object(item.resource.as_ref(), "resource")?;
                    may_ask(&principal, &index, s.0, s.1, Some(resource))?;
                    self.0
                        .decide(&index, &principal, s, resource, &item.permission)
                });
                let response = match answer {
                    Ok(allowed) => pb::check_bulk_permissions_pair::Response::Item(
                        pb::CheckBulkPermissionsResponseItem {
                            permissionship: permissionship(allowed) as i32,
                        },
                    ),
                    Err(error) => {
                        let status = error.into_status();
                        pb::check_bulk_permissions_pair::Response::Error(
                            tenantry_proto::google::rpc::Status {
                                code: status.code() as i32,
                                message: status.message().to_string(),
                                details: Vec::new(),
                            },
                        )
                    }
                };
                pb::CheckBulkPermissionsPair {
                    request: Some(item),
                    response: Some(response),
                }
            })
            .collect();
        drop(index);
        Ok(Response::new(pb::CheckBulkPermissionsResponse {
            checked_at: Some(token(revision)),
            pairs,
        }))
    }

    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<pb::LookupResourcesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (subject_type, subject_id) = subject(r.subject.as_ref())?;
        // A lookup names no object: a service account's is its own
        // organization, the `organization` filter or, when that is unset,
        // the organization of its token.
        let scope = match r.organization.as_str() {
            "" if caller.principal.kind == PrincipalKind::ServiceAccount => {
                caller.principal.organization.clone()
            }
            "" => None,
            name => Some(OrganizationName::parse("organization", name)?.id),
        };
        may_ask(
            &caller.principal,
            &self.0.index.read(),
            subject_type,
            subject_id,
            scope.as_deref().map(|org| ("organization", org)),
        )?;
        if subject_type != "user" && subject_type != "api_key" {
            return Err(Error::invalid_field(
                "subject.object.object_type",
                "lookups are for users and API keys",
            )
            .into());
        }
        let size = page_size(r.page_size, 1000, 10_000)? as usize;
        let query = format!(
            "lookup|{}|{}|{subject_id}|{}",
            r.resource_type, r.permission, r.organization
        );
        let after = self
            .0
            .page_tokens
            .decode::<After>(query.as_bytes(), &r.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let organization = scope;
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let index = self.0.index.read();
        let mut ids = match subject_type {
            "api_key" => index.lookup_key(subject_id, &r.resource_type, &r.permission),
            _ => index.lookup(subject_id, &r.resource_type, &r.permission),
        }
        .map_err(index_error)?;
        if !session_live(&index, &caller.principal) {
            ids.clear();
        }
        let start = ids.partition_point(|id| *id <= after.as_str());
        let mut page = Vec::with_capacity(size.min(ids.len()));
        let mut last = None;
        for id in &ids[start..] {
            if page.len() == size {
                break;
            }
            last = Some(*id);
            if organization
                .as_deref()
                .is_none_or(|org| index.within(&r.resource_type, id, org))
            {
                page.push(id.to_string());
            }
        }
        let more = last.is_some_and(|l| ids.last().is_some_and(|end| *end != l));
        let next_page_token = match (more, last) {
            (true, Some(last)) => self
                .0
                .page_tokens
                .encode(query.as_bytes(), &After(last.to_string())),
            _ => String::new(),
        };
        drop(index);
        Ok(Response::new(pb::LookupResourcesResponse {
            looked_up_at: Some(token(revision)),
            resource_ids: page,
            next_page_token,
        }))
    }

    async fn lookup_subjects(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<pb::LookupSubjectsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (object_type, id) = object(r.resource.as_ref(), "resource")?;
        let (object_type, id) = (object_type.to_string(), id.to_string());
        if r.subject_type != "user" {
            return Err(Error::invalid_field("subject_type", "must be `user`").into());
        }
        // Who may do what on an object is for those who manage its members.
        self.0
            .index
            .read()
            .permission_bit(&object_type, &r.permission)
            .map_err(index_error)?;
        let organization = self
            .0
            .index
            .read()
            .organization_of(&object_type, &id)
            .map(str::to_string);
        let allowed = caller.is_internal()
            || organization.as_deref().is_some_and(|org| {
                self.0
                    .allows(
                        &caller,
                        "organization",
                        org,
                        Permission::ORGANIZATION_MEMBERS_READ,
                    )
                    .unwrap_or(false)
            });
        if !allowed {
            return Err(
                Error::permission_denied(Permission::ORGANIZATION_MEMBERS_READ)
                    .with_domain(NAME)
                    .into(),
            );
        }
        let size = page_size(r.page_size, 1000, 10_000)? as usize;
        let query = format!("subjects|{object_type}|{id}|{}", r.permission);
        let after = self
            .0
            .page_tokens
            .decode::<After>(query.as_bytes(), &r.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let index = self.0.index.read();
        let users = index
            .subjects_with(&object_type, &id, &r.permission)
            .map_err(index_error)?;
        let start = users.partition_point(|u| *u <= after.as_str());
        let page: Vec<&str> = users[start..].iter().take(size).copied().collect();
        let next_page_token = if start + page.len() < users.len() {
            self.0.page_tokens.encode(
                query.as_bytes(),
                &After(page.last().map(|s| s.to_string()).unwrap_or_default()),
            )
        } else {
            String::new()
        };
        let subjects = page
            .iter()
            .map(|user| pb::ResolvedSubject {
                subject_id: user.to_string(),
                external: organization
                    .as_deref()
                    .is_some_and(|org| index.roles_of(user, org).is_empty()),
            })
            .collect();
        drop(index);
        Ok(Response::new(pb::LookupSubjectsResponse {
            looked_up_at: Some(token(revision)),
            subjects,
            next_page_token,
        }))
    }

    async fn read_relationships(
        &self,
        request: Request<pb::ReadRelationshipsRequest>,
    ) -> Result<Response<pb::ReadRelationshipsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let filter = r
            .relationship_filter
            .as_ref()
            .ok_or_else(|| Error::invalid_field("relationship_filter", "is required"))?;
        let parent_id = filter
            .optional_subject_filter
            .as_ref()
            .map(|s| s.optional_subject_id.as_str())
            .unwrap_or_default();
        if filter.resource_type.is_empty() && parent_id.is_empty() {
            return Err(Error::invalid_field(
                "relationship_filter",
                "needs a resource type or a subject",
            )
            .into());
        }
        // Unset: the organization the caller's token is for.
        let organization = if r.organization.is_empty() {
            caller.principal.organization.clone().ok_or_else(|| {
                Error::invalid_field(
                    "organization",
                    "is required when the token acts in no organization",
                )
            })?
        } else {
            OrganizationName::parse("organization", &r.organization)?.id
        };
        // Nobody reads another tenant's relationships.
        if !self.0.serves(&caller, &organization) {
            self.0
                .authorize(
                    &caller,
                    ("organization", &organization),
                    Permission::ORGANIZATION_READ,
                    Permission::ORGANIZATION_READ,
                    "organization",
                )
                .await?;
        }
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        if !filter.optional_relation.is_empty() && filter.optional_relation != "parent" {
            // Parent links are the only relations objects have.
            return Ok(Response::new(pb::ReadRelationshipsResponse {
                read_at: Some(token(revision)),
                ..Default::default()
            }));
        }
        let size = page_size(r.page_size, 1000, 10_000)? as usize;
        // The page token holds the last (type, id) returned, bound to the
        // request it came from.
        let query = format!(
            "relationships|{organization}|{}|{}|{}|{}|{}",
            filter.resource_type,
            filter.optional_resource_id,
            filter.optional_relation,
            filter
                .optional_subject_filter
                .as_ref()
                .map(|s| s.subject_type.as_str())
                .unwrap_or_default(),
            parent_id
        );
        let mut cursor: Option<(String, String)> = self
            .0
            .page_tokens
            .decode::<(String, String)>(query.as_bytes(), &r.page_token)?;
        let under: Vec<String> = self
            .0
            .index
            .read()
            .organizations_under(&organization)
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut relationships: Vec<pb::Relationship> = Vec::new();
        let mut next_page_token = String::new();
        'pages: loop {
            let batch = (size + 1 - relationships.len()) as i64;
            let links = self
                .0
                .store
                .parent_links(
                    &filter.resource_type,
                    &filter.optional_resource_id,
                    parent_id,
                    Some(&under),
                    cursor.as_ref().map(|(t, i)| (t.as_str(), i.as_str())),
                    batch,
                )
                .await?;
            let exhausted = (links.len() as i64) < batch;
            let index = self.0.index.read();
            for (object_type, id, parent) in links {
                let last = (object_type.clone(), id.clone());
                let Some((parent_type, _)) = index.parent_of(&object_type, &id) else {
                    cursor = Some(last);
                    continue;
                };
                let subject_matches = filter.optional_subject_filter.as_ref().is_none_or(|s| {
                    (s.subject_type.is_empty() || s.subject_type == parent_type)
                        && (s.optional_subject_id.is_empty() || s.optional_subject_id == parent)
                });
                if !(subject_matches && index.under(&object_type, &id, &organization)) {
                    cursor = Some(last);
                    continue;
                }
                if relationships.len() == size {
                    // One more than the page holds: there is a next page,
                    // starting after the last one returned.
                    if let Some(after) = &cursor {
                        next_page_token = self.0.page_tokens.encode(query.as_bytes(), after);
                    }
                    break 'pages;
                }
                relationships.push(pb::Relationship {
                    resource: Some(pb::ObjectReference {
                        object_type: object_type.clone(),
                        object_id: id.clone(),
                    }),
                    relation: "parent".into(),
                    subject: Some(pb::SubjectReference {
                        object: Some(pb::ObjectReference {
                            object_type: parent_type.to_string(),
                            object_id: parent.clone(),
                        }),
                        optional_relation: String::new(),
                    }),
                });
                cursor = Some(last);
            }
            if exhausted {
                break;
            }
        }
        Ok(Response::new(pb::ReadRelationshipsResponse {
            read_at: Some(token(revision)),
            relationships,
            next_page_token,
        }))
    }

    async fn write_relationships(
        &self,
        request: Request<pb::WriteRelationshipsRequest>,
    ) -> Result<Response<pb::WriteRelationshipsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let revision = self
            .0
            .write_relationships(
                &caller,
                &r.updates,
                &r.optional_preconditions,
                crate::watch::MAX_UPDATES,
            )
            .await?;
        Ok(Response::new(pb::WriteRelationshipsResponse {
            written_at: Some(token(revision)),
        }))
    }

    async fn delete_relationships(
        &self,
        request: Request<pb::DeleteRelationshipsRequest>,
    ) -> Result<Response<pb::DeleteRelationshipsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let filter = r
            .relationship_filter
            .ok_or_else(|| Error::invalid_field("relationship_filter", "is required"))?;
        if filter.resource_type.is_empty() {
            return Err(
                Error::invalid_field("relationship_filter.resource_type", "is required").into(),
            );
        }
        let most = crate::watch::MAX_DELETIONS as u32;
        let limit = if r.optional_limit == 0 {
            most
        } else {
            r.optional_limit.min(most)
        } as i64;
        let parent_id = filter
            .optional_subject_filter
            .as_ref()
            .map(|s| s.optional_subject_id.clone())
            .unwrap_or_default();
        let scope = self.0.relationship_scope(&caller);
        let links = self
            .0
            .store
            .parent_links(
                &filter.resource_type,
                &filter.optional_resource_id,
                &parent_id,
                scope.as_deref(),
                None,
                limit + 1,
            )
            .await?;
        let partial = links.len() as i64 > limit;
        if partial && !r.optional_allow_partial_deletions {
            return Err(Refusal::TooManyRelationships { limit }.into());
        }
        let updates: Vec<pb::RelationshipUpdate> = links
            .into_iter()
            .take(limit as usize)
            .map(|(object_type, id, parent)| {
                let parent_type = self
                    .0
                    .index
                    .read()
                    .parent_of(&object_type, &id)
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_default();
                pb::RelationshipUpdate {
                    operation: pb::relationship_update::Operation::Delete as i32,
                    relationship: Some(pb::Relationship {
                        resource: Some(pb::ObjectReference {
                            object_type,
                            object_id: id,
                        }),
                        relation: "parent".into(),
                        subject: Some(pb::SubjectReference {
                            object: Some(pb::ObjectReference {
                                object_type: parent_type,
                                object_id: parent,
                            }),
                            optional_relation: String::new(),
                        }),
                    }),
                }
            })
            .collect();
        let count = updates.len() as u64;
        if updates.is_empty() {
            // Nothing matches: nothing to delete, and nothing written.
            return Ok(Response::new(pb::DeleteRelationshipsResponse {
                deleted_at: Some(token(self.0.index.applied())),
                deletion_progress: pb::delete_relationships_response::DeletionProgress::Complete
                    as i32,
                relationships_deleted_count: 0,
            }));
        }
        let revision = self
            .0
            .write_relationships(
                &caller,
                &updates,
                &r.optional_preconditions,
                crate::watch::MAX_DELETIONS,
            )
            .await?;
        Ok(Response::new(pb::DeleteRelationshipsResponse {
            deleted_at: Some(token(revision)),
            deletion_progress: if partial {
                pb::delete_relationships_response::DeletionProgress::Partial
            } else {
                pb::delete_relationships_response::DeletionProgress::Complete
            } as i32,
            relationships_deleted_count: count,
        }))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::WatchResponse>>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let organization = if r.organization.is_empty() && caller.is_internal() {
            None
        } else {
            // Unset: the organization the caller's token is for.
            let id = if r.organization.is_empty() {
                caller.principal.organization.clone().ok_or_else(|| {
                    Error::invalid_field(
                        "organization",
                        "is required when the token acts in no organization",
                    )
                })?
            } else {
                OrganizationName::parse("organization", &r.organization)?.id
            };
            if !self.0.serves(&caller, &id) {
                self.0
                    .authorize(
                        &caller,
                        ("organization", &id),
                        Permission::ORGANIZATION_READ,
                        Permission::ORGANIZATION_READ,
                        "organization",
                    )
                    .await?;
            }
            Some(id)
        };
        let start = match &r.optional_start_cursor {
            Some(cursor) => crate::live::parse_token_in("optional_start_cursor", &cursor.token)?,
            None => self.0.index.applied(),
        };
        if start < self.0.store.floor().await? {
            return Err(Refusal::StartCompacted.into());
        }
        if start > self.0.store.head().await? {
            return Err(Error::invalid_field("optional_start_cursor", "is from the future").into());
        }
        Ok(Response::new(Box::pin(crate::watch::stream(
            self.0.clone(),
            start,
            r.optional_object_types,
            organization,
        ))))
    }
}
