//! `ReadRelationships`, `DeleteRelationships` and `Watch`: the parent links
//! of registered types' objects, read, deleted by filter, and followed.

use tenantry_kit::names::OrganizationName;
use tenantry_kit::page_token::page_size;
use tenantry_kit::permission::Permission;

use super::*;
use crate::Caller;

impl AuthorizationApi {
    /// The organization whose relationships a request reads or follows: the
    /// one it names or, unset, the one the caller's token is for. Nobody
    /// reads another tenant's relationships: the caller serves it, or may
    /// read it.
    async fn readable_organization(&self, caller: &Caller, named: &str) -> Result<String> {
        let organization = if named.is_empty() {
            caller.principal.organization.clone().ok_or_else(|| {
                Error::invalid_field(
                    "organization",
                    "is required when the token acts in no organization",
                )
            })?
        } else {
            OrganizationName::parse("organization", named)?.id
        };
        if !self.0.serves(caller, &organization) {
            self.0
                .authorize(
                    caller,
                    ("organization", &organization),
                    Permission::ORGANIZATION_READ,
                    Permission::ORGANIZATION_READ,
                    "organization",
                )
                .await?;
        }
        Ok(organization)
    }

    pub(super) async fn read_relationships_page(
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
        let organization = self.readable_organization(&caller, &r.organization).await?;
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

    pub(super) async fn delete_relationships_matching(
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

    pub(super) async fn watch_changes(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::WatchResponse>>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let organization = if r.organization.is_empty() && caller.is_internal() {
            None
        } else {
            Some(self.readable_organization(&caller, &r.organization).await?)
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
