//! `Watch` and `WriteRelationships`: objects of registered types attached
//! to their parents by the services that own them, and the stream of
//! parent-link changes a watcher follows from a revision.

use std::collections::HashMap;

use tenantry_kit::error::{Error, Result};
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::Status;

use crate::engine::Change;
use crate::error::Error as Refusal;
use crate::live::token;
use crate::store::NodeRow;
use crate::{Caller, Core};

/// The most updates one write may carry.
pub const MAX_UPDATES: usize = 1000;

/// The most preconditions one write may carry.
pub const MAX_PRECONDITIONS: usize = 100;

/// The most relationships one `DeleteRelationships` deletes (its
/// contract's server limit), in one transaction.
pub const MAX_DELETIONS: usize = 10_000;

fn event_ref(object_type: &str, id: &str) -> Option<events::ObjectRef> {
    Some(events::ObjectRef {
        r#type: object_type.into(),
        id: id.into(),
    })
}

/// An object (type, id).
type Object = (String, String);

/// An object a write has attached: its parent and the organization that
/// holds it (empty when read from the index, not yet looked up).
#[derive(Debug, Clone)]
struct Attached {
    parent: Object,
    organization: String,
}

/// What one write has done to an object so far: attached it to `parent`,
/// or deleted it (`None`), in `organization`.
#[derive(Debug, Clone)]
struct Touched {
    parent: Option<Object>,
    organization: String,
}

/// What one write has done to each object it touched so far.
type Batch = HashMap<Object, Touched>;

/// A row change of one write, in the updates' order.
enum Stored {
    Upsert(NodeRow),
    Delete(Object),
}

impl Core {
    /// Whether the caller may attach objects inside the organization that
    /// holds (type, id): NOT_FOUND when they may not even read it.
    async fn may_write_under(
        &self,
        caller: &Caller,
        object_type: &str,
        id: &str,
        field: &str,
    ) -> Result<String> {
        let organization = self
            .index
            .read()
            .organization_of(object_type, id)
            .map(str::to_string)
            .ok_or_else(|| Refusal::ObjectNotFound {
                field: field.to_string(),
            })?;
        // A service account writes inside the organization its token is for.
        if !self.serves(caller, &organization) {
            self.authorize(
                caller,
                ("organization", &organization),
                Permission::AUTHZ_WRITE,
                Permission::ORGANIZATION_READ,
                "organization",
            )
            .await?;
        }
        Ok(organization)
    }

    /// Checks preconditions against the stored parent links the caller may
    /// see (its organizations'): another tenant's links neither satisfy
    /// nor break them.
    async fn preconditions_hold(
        &self,
        caller: &Caller,
        preconditions: &[pb::Precondition],
    ) -> Result<()> {
        if preconditions.len() > MAX_PRECONDITIONS {
            return Err(Error::invalid_field(
                "optional_preconditions",
                format!("at most {MAX_PRECONDITIONS}"),
            ));
        }
        let scope = self.relationship_scope(caller);
        for (i, p) in preconditions.iter().enumerate() {
            let filter = p.filter.as_ref().ok_or_else(|| {
                Error::invalid_field(format!("optional_preconditions[{i}].filter"), "is required")
            })?;
            let parent = filter
                .optional_subject_filter
                .as_ref()
                .map(|s| s.optional_subject_id.as_str())
                .unwrap_or_default();
            let found = !self
                .store
                .parent_links(
                    &filter.resource_type,
                    &filter.optional_resource_id,
                    parent,
                    scope.as_deref(),
                    None,
                    1,
                )
                .await?
                .is_empty();
            let holds = match pb::precondition::Operation::try_from(p.operation) {
                Ok(pb::precondition::Operation::MustMatch) => found,
                Ok(pb::precondition::Operation::MustNotMatch) => !found,
                _ => {
                    return Err(Error::invalid_field(
                        format!("optional_preconditions[{i}].operation"),
                        "is required",
                    ));
                }
            };
            if !holds {
                return Err(Refusal::PreconditionFailed { index: i }.into());
            }
        }
        Ok(())
    }

    /// Applies parent-link updates of registered types, all or nothing.
    /// Applies `updates` (at most `max`) in one transaction once every
    /// precondition holds.
    pub(crate) async fn write_relationships(
        &self,
        caller: &Caller,
        updates: &[pb::RelationshipUpdate],
        preconditions: &[pb::Precondition],
        max: usize,
    ) -> Result<i64> {
        if updates.is_empty() || updates.len() > max {
            return Err(Error::invalid_field(
                "updates",
                format!("must hold 1 to {max} updates"),
            ));
        }
        let mut changes = Vec::with_capacity(updates.len());
        let mut stored = Vec::new();
        let mut written = Vec::new();
        // What this write has done so far to each object it touched: its
        // parent and organization, or `None` once deleted. A later update
        // sees it as the index will, so a parent and its child may come in
        // one write (an import), in that order.
        let mut batch: Batch = HashMap::new();
        for (i, update) in updates.iter().enumerate() {
            let field = format!("updates[{i}]");
            let relationship = update
                .relationship
                .as_ref()
                .ok_or_else(|| Error::invalid_field(&field, "needs a relationship"))?;
            let resource = relationship
                .resource
                .as_ref()
                .filter(|o| !o.object_type.is_empty() && !o.object_id.is_empty())
                .ok_or_else(|| {
                    Error::invalid_field(
                        format!("{field}.relationship.resource"),
                        "needs a type and an id",
                    )
                })?;
            let subject = relationship
                .subject
                .as_ref()
                .and_then(|s| s.object.as_ref())
                .filter(|o| !o.object_type.is_empty() && !o.object_id.is_empty())
                .ok_or_else(|| {
                    Error::invalid_field(
                        format!("{field}.relationship.subject"),
                        "needs a type and an id",
                    )
                })?;
            if relationship.relation != "parent" {
                return Err(Error::invalid_field(
                    format!("{field}.relationship.relation"),
                    "must be `parent`, the only relation objects have",
                ));
            }
            let parent_type = {
                let index = self.index.read();
                let schema = index.schema();
                let kind = schema.type_id(&resource.object_type).ok_or_else(|| {
                    Error::invalid_field(
                        format!("{field}.relationship.resource.object_type"),
                        "is not a known type",
                    )
                })?;
                let t = schema.resource_type(kind);
                if t.definition.is_none() {
                    return Err(Error::invalid_field(
                        format!("{field}.relationship.resource.object_type"),
                        "built-in objects are written by the organization service",
                    ));
                }
                schema
                    .resource_type(t.parent.expect("registered types have parents"))
                    .name
                    .clone()
            };
            if subject.object_type != parent_type {
                return Err(Error::invalid_field(
                    format!("{field}.relationship.subject.object_type"),
                    format!(
                        "must be `{parent_type}`, the parent type of `{}`",
                        resource.object_type
                    ),
                ));
            }
            let operation = pb::relationship_update::Operation::try_from(update.operation)
                .ok()
                .filter(|o| *o != pb::relationship_update::Operation::Unspecified)
                .ok_or_else(|| Error::invalid_field(format!("{field}.operation"), "is required"))?;
            // Both where it goes and where it is now must be the caller's.
            let parent = (subject.object_type.clone(), subject.object_id.clone());
            let deleting = operation == pb::relationship_update::Operation::Delete;
            let organization = match batch.get(&parent) {
                // A child may still be deleted under a parent this write
                // deleted before it; nothing is attached to one.
                Some(earlier) if earlier.parent.is_some() || deleting => {
                    earlier.organization.clone()
                }
                Some(_) => {
                    return Err(Refusal::ObjectNotFound {
                        field: "the parent".into(),
                    }
                    .into());
                }
                None => {
                    self.may_write_under(caller, &parent.0, &parent.1, "the parent")
                        .await?
                }
            };
            let key = (resource.object_type.clone(), resource.object_id.clone());
            let existing = match batch.get(&key) {
                Some(earlier) => earlier.parent.clone().map(|parent| Attached {
                    parent,
                    organization: earlier.organization.clone(),
                }),
                None => {
                    let index = self.index.read();
                    let found = index.parent_of(&key.0, &key.1);
                    found.map(|(t, id)| Attached {
                        parent: (t.to_string(), id.to_string()),
                        organization: String::new(),
                    })
                }
            };
            if let Some(Attached {
                parent: (old_type, old_parent),
                organization: known,
            }) = &existing
            {
                let old_organization = if known.is_empty() {
                    self.may_write_under(caller, old_type, old_parent, "the current parent")
                        .await?
                } else {
                    known.clone()
                };
                let index = self.index.read();
                if index.root_of(&old_organization) != index.root_of(&organization) {
                    return Err(Refusal::CrossTenantMove.into());
                }
            }
            match operation {
                pb::relationship_update::Operation::Create if existing.is_some() => {
                    return Err(Refusal::RelationshipExists {
                        field: field.to_string(),
                    }
                    .into());
                }
                pb::relationship_update::Operation::Delete => {
                    if existing.is_some() {
                        stored.push(Stored::Delete(key.clone()));
                        changes.push(Change::RemoveNode {
                            object_type: resource.object_type.clone(),
                            id: resource.object_id.clone(),
                        });
                    }
                    let touched = Touched {
                        parent: None,
                        organization: organization.clone(),
                    };
                    batch.insert(key, touched);
                }
                _ => {
                    let touched = Touched {
                        parent: Some(parent),
                        organization: organization.clone(),
                    };
                    batch.insert(key, touched);
                    stored.push(Stored::Upsert(NodeRow {
                        object_type: resource.object_type.clone(),
                        id: resource.object_id.clone(),
                        parent_id: Some(subject.object_id.clone()),
                        organization_id: organization.clone(),
                        inherit: true,
                        live: true,
                    }));
                    changes.push(Change::Node {
                        object_type: resource.object_type.clone(),
                        id: resource.object_id.clone(),
                        parent: Some(subject.object_id.clone()),
                        inherit: true,
                    });
                }
            }
            written.push(events::RelationshipUpdate {
                operation: if operation == pb::relationship_update::Operation::Delete {
                    events::relationship_update::Operation::Delete
                } else {
                    events::relationship_update::Operation::Touch
                } as i32,
                relationship: Some(events::RelationshipTuple {
                    resource: event_ref(&resource.object_type, &resource.object_id),
                    relation: "parent".into(),
                    subject: event_ref(&subject.object_type, &subject.object_id),
                    subject_relation: String::new(),
                }),
            });
        }
        self.preconditions_hold(caller, preconditions).await?;
        let mut tx = self.store.begin().await?;
        // In the updates' order, as the index applies them.
        for row in &stored {
            match row {
                Stored::Upsert(row) => self.store.upsert_node(&mut tx, row).await?,
                Stored::Delete((object_type, id)) => {
                    self.store.delete_node(&mut tx, object_type, id).await?
                }
            }
        }
        let organization = stored
            .iter()
            .find_map(|row| match row {
                Stored::Upsert(row) => Some(row.organization_id.clone()),
                Stored::Delete(_) => None,
            })
            .unwrap_or_default();
        let mut event = tenantry_kit::outbox::NewEvent::new(
            "relationships",
            organization.clone(),
            caller.actor(),
            &events::RelationshipsWritten {
                revision: String::new(),
                updates: written,
            },
        )
        .with_request(caller.request.clone());
        if !organization.is_empty() {
            event = event.in_organization(&organization, self.root_of(&organization));
        }
        self.write(tx, &changes, vec![event]).await
    }
}

/// The parent-link changes after `start`, as they are logged, filtered by
/// type and organization; polls the change log.
pub fn stream(
    core: Core,
    start: i64,
    types: Vec<String>,
    organization: Option<String>,
) -> impl futures::Stream<Item = std::result::Result<pb::WatchResponse, Status>> + Send {
    async_stream(core, start, types, organization)
}

fn async_stream(
    core: Core,
    start: i64,
    types: Vec<String>,
    organization: Option<String>,
) -> impl futures::Stream<Item = std::result::Result<pb::WatchResponse, Status>> + Send {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut cursor = start;
        loop {
            // A watcher that fell behind the compacted history cannot be
            // served without a gap: it must resynchronise.
            match core.store.floor().await {
                Ok(floor) if floor > cursor => {
                    let _ = sender.send(Err(Refusal::WatchCompacted.into())).await;
                    return;
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = sender.send(Err(error.into_status())).await;
                    return;
                }
            }
            let batch = match core.store.changes_after(cursor, 1000).await {
                Ok(batch) => batch,
                Err(error) => {
                    let _ = sender.send(Err(error.into_status())).await;
                    return;
                }
            };
            let Some(&(last, _)) = batch.last() else {
                tokio::select! {
                    _ = sender.closed() => return,
                    // A shutdown ends the stream; the client resumes from
                    // its last `changes_through` elsewhere.
                    _ = core.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => continue,
                }
            };
            // The organization filter reads the index: it must have applied
            // these revisions first, or a change seen in the log but not yet
            // in the index would be filtered out and skipped for good.
            if core.index.wait_for(last).await.is_err() {
                continue;
            }
            let updates: Vec<pb::RelationshipUpdate> = {
                let index = core.index.read();
                batch
                    .iter()
                    .filter_map(|(_, change)| {
                        let (object_type, id, relation, subject_type, subject_id, delete) =
                            as_relationship(&index, change)?;
                        if !types.is_empty() && !types.contains(&object_type) {
                            return None;
                        }
                        if let Some(org) = &organization {
                            // A removed object's tenant is no longer known:
                            // only unscoped watchers (services) see it.
                            if relation == "parent" && delete {
                                return None;
                            }
                            if !index.under(&object_type, &id, org) {
                                return None;
                            }
                        }
                        Some(pb::RelationshipUpdate {
                            operation: if delete {
                                pb::relationship_update::Operation::Delete
                            } else {
                                pb::relationship_update::Operation::Touch
                            } as i32,
                            relationship: Some(pb::Relationship {
                                resource: Some(pb::ObjectReference {
                                    object_type,
                                    object_id: id,
                                }),
                                relation,
                                subject: Some(pb::SubjectReference {
                                    object: Some(pb::ObjectReference {
                                        object_type: subject_type,
                                        object_id: subject_id,
                                    }),
                                    optional_relation: String::new(),
                                }),
                            }),
                        })
                    })
                    .collect()
            };
            // Only whole revisions are reported.
            let complete = batch.len() < 1000;
            cursor = if complete { last } else { last - 1 };
            if !updates.is_empty()
                && sender
                    .send(Ok(pb::WatchResponse {
                        updates,
                        changes_through: Some(token(cursor)),
                    }))
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// A logged change as a relationship: (resource type, resource id,
/// relation, subject type, subject id, deleted?). Parent links, memberships
/// (`organization#member@user`), team roles (`team#member` or
/// `team#lead`) and project grants (`project#viewer|contributor|admin` of
/// a user, a team or a role); roles and liveness are not relationships.
fn as_relationship(
    index: &crate::engine::Index,
    change: &Change,
) -> Option<(String, String, String, String, String, bool)> {
    use crate::engine::{AccessLevel, GrantSubject};
    let level_name = |level: &Option<AccessLevel>| match level {
        Some(AccessLevel::Viewer) | None => "viewer",
        Some(AccessLevel::Contributor) => "contributor",
        Some(AccessLevel::Admin) => "admin",
    };
    Some(match change {
        Change::Node {
            object_type,
            id,
            parent: Some(parent),
            ..
        } => {
            let parent_type = index
                .schema()
                .type_id(object_type)
                .and_then(|t| index.schema().resource_type(t).parent)
                .map(|p| index.schema().resource_type(p).name.clone())
                .unwrap_or_default();
            (
                object_type.clone(),
                id.clone(),
                "parent".into(),
                parent_type,
                parent.clone(),
                false,
            )
        }
        Change::RemoveNode { object_type, id } => (
            object_type.clone(),
            id.clone(),
            "parent".into(),
            String::new(),
            String::new(),
            true,
        ),
        Change::Membership {
            organization,
            user,
            roles,
        } => (
            "organization".into(),
            organization.clone(),
            "member".into(),
            "user".into(),
            user.clone(),
            roles.is_empty(),
        ),
        Change::TeamMember { team, user, lead } => (
            "team".into(),
            team.clone(),
            if *lead == Some(true) {
                "lead"
            } else {
                "member"
            }
            .into(),
            "user".into(),
            user.clone(),
            lead.is_none(),
        ),
        Change::ProjectGrant {
            project,
            subject,
            level,
        } => {
            let (subject_type, subject_id) = match subject {
                GrantSubject::User(u) => ("user", u.clone()),
                GrantSubject::Team(t) => ("team", t.clone()),
                GrantSubject::Role(r) => ("role", r.clone()),
            };
            (
                "project".into(),
                project.clone(),
                // A removal names no level: it ends whatever access the
                // subject had.
                if level.is_some() {
                    level_name(level)
                } else {
                    "access"
                }
                .into(),
                subject_type.into(),
                subject_id,
                level.is_none(),
            )
        }
        _ => return None,
    })
}
