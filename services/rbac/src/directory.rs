//! What rbac learns from other services' events: the organization tree
//! (organizations, departments, teams, projects, their parents, inherit
//! flags, deletions), owners (the owner membership of a new organization,
//! ownership transfers), and users' names and emails from identity.
//!
//! One durable consumer, idempotent by event id: each event is applied in
//! a transaction together with its claim, its change-log entry and any
//! event rbac emits in turn (a writer's `ApplyEvents` batch shares one).

use prost::Name;
use tenantry_kit::db::now_micros;
use tenantry_kit::names::BuiltInRole;
use tenantry_kit::outbox::{NewEvent, claim_events, run_consumer};
use tenantry_kit::service::ServiceContext;
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::events::v1 as events;

use crate::Core;
use crate::engine::{Change, KeyScope};
use crate::store::{InactiveReason, MembershipRow, NodeRow, UserRow};

/// How long after its session ends an access token may still be presented:
/// identity caps access tokens at an hour; five minutes cover clock skew.
const SESSION_TOKENS_OUTLIVE: std::time::Duration = std::time::Duration::from_secs(3900);

/// The consumer's name; its claims also record what `ApplyEvents` applied.
pub(crate) const CONSUMER: &str = "rbac-directory";

/// Starts the consumer.
pub fn spawn(ctx: &ServiceContext, core: Core) {
    let bus = ctx.bus.clone();
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        // Exactly what other services hand the index themselves.
        let filters = tenantry_kit::index::FOLLOWED
            .iter()
            .map(|(source, prefix)| {
                tenantry_kit::outbox::subject_for(source, &format!("{prefix}>"))
            })
            .collect();
        let result = run_consumer(bus, CONSUMER.into(), filters, shutdown, move |events| {
            let core = core.clone();
            async move {
                core.apply_events(events)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        })
        .await;
        if let Err(error) = result {
            tracing::error!(
                error = format!("{error:#}"),
                "the rbac directory consumer stopped"
            );
        }
    });
}

fn decode<M: Name + Default>(event: &events::Event) -> Option<M> {
    event.payload.as_ref()?.to_msg().ok()
}

fn system_actor() -> events::Actor {
    events::Actor {
        kind: events::actor::Kind::System as i32,
        id: crate::NAME.into(),
        display_name: String::new(),
    }
}

fn role(role_id: &str) -> events::Role {
    events::Role {
        role_id: role_id.trim_start_matches("roles/").to_string(),
        name: role_id.to_string(),
    }
}

/// What applying events changes: the index's changes and the events rbac
/// emits in turn, written together when the batch commits.
#[derive(Default)]
struct Effects {
    changes: Vec<Change>,
    emitted: Vec<NewEvent>,
}

impl Core {
    /// Applies `events` in order, in one transaction with their claims,
    /// their change-log entry and what rbac emits in turn: a writer's batch
    /// (an import hands a thousand at a time) costs one commit, not one per
    /// event. If one fails, none is applied, and the whole batch is tried
    /// again.
    pub async fn apply_events(
        &self,
        events: Vec<events::Event>,
    ) -> tenantry_kit::error::Result<()> {
        // Events come from every tenant; what they say was authorized where
        // they were written.
        tenancy::system(async {
            let mut tx = self.store.begin().await?;
            let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
            let mut claimed = claim_events(&mut tx, CONSUMER, &ids).await?;
            let mut effects = Effects::default();
            for event in events {
                if claimed.remove(&event.id) {
                    self.apply_in(&mut tx, event, &mut effects).await?;
                }
            }
            if effects.changes.is_empty() && effects.emitted.is_empty() {
                tx.commit().await?;
                return Ok(());
            }
            self.write(tx, &effects.changes, effects.emitted).await?;
            Ok(())
        })
        .await
    }

    /// Applies one claimed event in `tx`.
    async fn apply_in(
        &self,
        tx: &mut crate::store::Tx,
        event: events::Event,
        effects: &mut Effects,
    ) -> tenantry_kit::error::Result<()> {
        let Effects { changes, emitted } = effects;
        let node = |object_type: &str,
                    id: &str,
                    parent: Option<String>,
                    organization: &str,
                    inherit: bool| NodeRow {
            object_type: object_type.into(),
            id: id.into(),
            parent_id: parent,
            organization_id: organization.into(),
            inherit,
            live: true,
        };
        match event.r#type.as_str() {
            events::OrganizationCreated::EVENT_TYPE => {
                let Some(e) = decode::<events::OrganizationCreated>(&event) else {
                    return Ok(());
                };
                let parent = (!e.parent_id.is_empty()).then(|| e.parent_id.clone());
                let organization = node(
                    "organization",
                    &e.organization_id,
                    parent,
                    &e.organization_id,
                    e.inherit_access,
                );
                self.put_node(tx, changes, &organization).await?;
                if e.projects_granted_only {
                    self.store
                        .set_projects_granted_only(tx, &e.organization_id, true)
                        .await?;
                    changes.push(Change::ProjectVisibility {
                        organization: e.organization_id.clone(),
                        granted_only: true,
                    });
                }
                // The owner is a member with the owner role from the start.
                let now = now_micros();
                let membership = MembershipRow {
                    organization_id: e.organization_id.clone(),
                    user_id: e.owner_user_id.clone(),
                    roles: vec![BuiltInRole::Owner.name().into()],
                    invitation_id: None,
                    created_at_us: now,
                    updated_at_us: now,
                    version: 1,
                };
                self.store.upsert_membership(tx, &membership).await?;
                changes.push(Change::Membership {
                    organization: e.organization_id.clone(),
                    user: e.owner_user_id.clone(),
                    roles: membership.roles.clone(),
                });
                emitted.push(
                    NewEvent::new(
                        "membership",
                        format!("{}/{}", e.organization_id, e.owner_user_id),
                        system_actor(),
                        &events::MembershipCreated {
                            membership_id: format!("{}/{}", e.organization_id, e.owner_user_id),
                            organization_id: e.organization_id.clone(),
                            user_id: e.owner_user_id.clone(),
                            user_display_name: String::new(),
                            roles: vec![role(BuiltInRole::Owner.name())],
                            invitation_id: String::new(),
                        },
                    )
                    .in_organization(&e.organization_id, &e.root_id),
                );
            }
            events::OrganizationUpdated::EVENT_TYPE => {
                let Some(e) = decode::<events::OrganizationUpdated>(&event) else {
                    return Ok(());
                };
                if let Some(mut current) = self
                    .store
                    .node(tx, "organization", &e.organization_id)
                    .await?
                    && current.inherit != e.inherit_access
                {
                    current.inherit = e.inherit_access;
                    self.put_node(tx, changes, &current).await?;
                }
                if self
                    .store
                    .set_projects_granted_only(tx, &e.organization_id, e.projects_granted_only)
                    .await?
                {
                    changes.push(Change::ProjectVisibility {
                        organization: e.organization_id.clone(),
                        granted_only: e.projects_granted_only,
                    });
                }
            }
            events::OrganizationMoved::EVENT_TYPE => {
                let Some(e) = decode::<events::OrganizationMoved>(&event) else {
                    return Ok(());
                };
                if let Some(mut current) = self
                    .store
                    .node(tx, "organization", &e.organization_id)
                    .await?
                {
                    current.parent_id = Some(e.new_parent_id.clone());
                    self.put_node(tx, changes, &current).await?;
                }
            }
            events::OrganizationDeleted::EVENT_TYPE | events::OrganizationUndeleted::EVENT_TYPE => {
                let live = event.r#type == events::OrganizationUndeleted::EVENT_TYPE;
                let (id, cascaded) = if live {
                    let Some(e) = decode::<events::OrganizationUndeleted>(&event) else {
                        return Ok(());
                    };
                    (e.organization_id, e.cascaded_organization_ids)
                } else {
                    let Some(e) = decode::<events::OrganizationDeleted>(&event) else {
                        return Ok(());
                    };
                    (e.organization_id, e.cascaded_organization_ids)
                };
                for id in std::iter::once(id).chain(cascaded) {
                    self.set_live(tx, changes, "organization", &id, live)
                        .await?;
                }
            }
            events::TeamCreated::EVENT_TYPE => {
                let Some(e) = decode::<events::TeamCreated>(&event) else {
                    return Ok(());
                };
                let team = node(
                    "team",
                    &e.team_id,
                    Some(e.organization_id.clone()),
                    &e.organization_id,
                    true,
                );
                self.put_node(tx, changes, &team).await?;
            }
            events::ProjectCreated::EVENT_TYPE => {
                let Some(e) = decode::<events::ProjectCreated>(&event) else {
                    return Ok(());
                };
                let project = node(
                    "project",
                    &e.project_id,
                    Some(e.organization_id.clone()),
                    &e.organization_id,
                    true,
                );
                self.put_node(tx, changes, &project).await?;
            }
            events::TeamDeleted::EVENT_TYPE | events::TeamUndeleted::EVENT_TYPE => {
                let id = if event.r#type == events::TeamDeleted::EVENT_TYPE {
                    decode::<events::TeamDeleted>(&event).map(|e| e.team_id)
                } else {
                    decode::<events::TeamUndeleted>(&event).map(|e| e.team_id)
                };
                let Some(id) = id else {
                    return Ok(());
                };
                self.set_live(
                    tx,
                    changes,
                    "team",
                    &id,
                    event.r#type == events::TeamUndeleted::EVENT_TYPE,
                )
                .await?;
            }
            events::ProjectDeleted::EVENT_TYPE | events::ProjectUndeleted::EVENT_TYPE => {
                let id = if event.r#type == events::ProjectDeleted::EVENT_TYPE {
                    decode::<events::ProjectDeleted>(&event).map(|e| e.project_id)
                } else {
                    decode::<events::ProjectUndeleted>(&event).map(|e| e.project_id)
                };
                let Some(id) = id else {
                    return Ok(());
                };
                self.set_live(
                    tx,
                    changes,
                    "project",
                    &id,
                    event.r#type == events::ProjectUndeleted::EVENT_TYPE,
                )
                .await?;
            }
            events::ProjectPurged::EVENT_TYPE => {
                let Some(e) = decode::<events::ProjectPurged>(&event) else {
                    return Ok(());
                };
                for grant in self.store.project_grants_in(tx, &e.project_id).await? {
                    self.store.delete_grant(tx, &grant.id).await?;
                }
                self.store.delete_node(tx, "project", &e.project_id).await?;
                changes.push(Change::RemoveNode {
                    object_type: "project".into(),
                    id: e.project_id,
                });
            }
            events::OrganizationPurged::EVENT_TYPE => {
                let Some(e) = decode::<events::OrganizationPurged>(&event) else {
                    return Ok(());
                };
                let org = e.organization_id;
                for member in self.store.memberships_in(tx, &org).await? {
                    self.store.delete_membership(tx, &org, &member).await?;
                    changes.push(Change::Membership {
                        organization: org.clone(),
                        user: member,
                        roles: Vec::new(),
                    });
                }
                for role in self.store.roles_in(tx, &org).await? {
                    self.store.delete_role(tx, &role.id).await?;
                    changes.push(Change::RemoveRole { name: role.name() });
                }
                self.store.delete_node(tx, "organization", &org).await?;
                changes.push(Change::RemoveNode {
                    object_type: "organization".into(),
                    id: org,
                });
            }
            events::TeamPurged::EVENT_TYPE => {
                let Some(e) = decode::<events::TeamPurged>(&event) else {
                    return Ok(());
                };
                for member in self.store.team_members_in(tx, &e.team_id).await? {
                    self.store
                        .delete_team_member(tx, &e.team_id, &member.user_id)
                        .await?;
                }
                for grant in self
                    .store
                    .grants_to(tx, &crate::engine::GrantSubject::Team(e.team_id.clone()))
                    .await?
                {
                    self.store.delete_grant(tx, &grant.id).await?;
                }
                self.store.delete_node(tx, "team", &e.team_id).await?;
                changes.push(Change::RemoveNode {
                    object_type: "team".into(),
                    id: e.team_id,
                });
            }
            events::OwnershipTransferred::EVENT_TYPE => {
                let Some(e) = decode::<events::OwnershipTransferred>(&event) else {
                    return Ok(());
                };
                let now = now_micros();
                for (user, from, to) in [
                    (
                        &e.old_owner_user_id,
                        BuiltInRole::Owner.name(),
                        BuiltInRole::Admin.name(),
                    ),
                    (&e.new_owner_user_id, "", BuiltInRole::Owner.name()),
                ] {
                    let mut membership = self
                        .store
                        .membership_in(tx, &e.organization_id, user)
                        .await?
                        .unwrap_or(MembershipRow {
                            organization_id: e.organization_id.clone(),
                            user_id: user.clone(),
                            roles: Vec::new(),
                            invitation_id: None,
                            created_at_us: now,
                            updated_at_us: now,
                            version: 0,
                        });
                    let old_roles = membership.roles.clone();
                    membership.roles.retain(|r| r != from && r != to);
                    // The owner role says it all; an owner keeps no other.
                    if BuiltInRole::Owner.is(to) {
                        membership.roles.clear();
                    }
                    membership.roles.insert(0, to.to_string());
                    membership.updated_at_us = now;
                    membership.version += 1;
                    self.store.upsert_membership(tx, &membership).await?;
                    changes.push(Change::Membership {
                        organization: e.organization_id.clone(),
                        user: user.clone(),
                        roles: membership.roles.clone(),
                    });
                    emitted.push(
                        NewEvent::new(
                            "membership",
                            format!("{}/{}", e.organization_id, user),
                            system_actor(),
                            &events::MembershipUpdated {
                                membership_id: format!("{}/{}", e.organization_id, user),
                                organization_id: e.organization_id.clone(),
                                user_id: user.clone(),
                                old_roles: old_roles.iter().map(|r| role(r)).collect(),
                                new_roles: membership.roles.iter().map(|r| role(r)).collect(),
                            },
                        )
                        .in_organization(&e.organization_id, &event.root_organization_id),
                    );
                }
            }
            // An API key acts only while it is live and its owner holds
            // what it uses: the index learns of it when it is made and
            // forgets it when it is revoked, before identity answers.
            events::ApiKeyCreated::EVENT_TYPE => {
                let Some(e) = decode::<events::ApiKeyCreated>(&event) else {
                    return Ok(());
                };
                let scope = if !e.project_id.is_empty() {
                    KeyScope::Project(e.project_id)
                } else if !e.team_id.is_empty() {
                    KeyScope::Team(e.team_id)
                } else {
                    KeyScope::Organization(e.organization_id.clone())
                };
                let key = Change::ApiKey {
                    id: e.api_key_id,
                    organization: e.organization_id,
                    owner: e.created_by,
                    scope,
                    permissions: e.permissions,
                };
                self.store.upsert_api_key(tx, &key).await?;
                changes.push(key);
            }
            events::ApiKeyRevoked::EVENT_TYPE => {
                let Some(e) = decode::<events::ApiKeyRevoked>(&event) else {
                    return Ok(());
                };
                self.store.delete_api_key(tx, &e.api_key_id).await?;
                changes.push(Change::RemoveApiKey { id: e.api_key_id });
            }
            // The access tokens of an ended session hold nothing from
            // now on; identity refuses them itself.
            events::SessionRevoked::EVENT_TYPE => {
                let Some(e) = decode::<events::SessionRevoked>(&event) else {
                    return Ok(());
                };
                let at_us = event.occurred_at.as_ref().map_or_else(now_micros, |t| {
                    t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
                });
                let until_us = at_us + SESSION_TOKENS_OUTLIVE.as_micros() as i64;
                self.store
                    .end_session(tx, &e.session_id, at_us, until_us)
                    .await?;
                changes.push(Change::SessionEnded {
                    id: e.session_id,
                    at_us,
                    until_us,
                });
            }
            events::UserSignedUp::EVENT_TYPE => {
                let Some(e) = decode::<events::UserSignedUp>(&event) else {
                    return Ok(());
                };
                self.store
                    .upsert_user(
                        tx,
                        &UserRow {
                            id: e.user_id,
                            email: e.email,
                            display_name: e.display_name,
                            email_verified: e.email_verified,
                            deleted: false,
                        },
                    )
                    .await?;
            }
            events::UserDisabled::EVENT_TYPE | events::UserEnabled::EVENT_TYPE => {
                let user_id = if event.r#type == events::UserDisabled::EVENT_TYPE {
                    decode::<events::UserDisabled>(&event).map(|e| e.user_id)
                } else {
                    decode::<events::UserEnabled>(&event).map(|e| e.user_id)
                };
                let Some(user_id) = user_id else {
                    return Ok(());
                };
                // A disabled user holds nothing at once, on every replica.
                let active = self
                    .store
                    .set_inactive(
                        tx,
                        &user_id,
                        InactiveReason::Disabled,
                        event.r#type == events::UserDisabled::EVENT_TYPE,
                    )
                    .await?;
                changes.push(Change::UserActive {
                    user: user_id,
                    active,
                });
            }
            events::UserEmailVerified::EVENT_TYPE
            | events::UserEmailChanged::EVENT_TYPE
            | events::UserUpdated::EVENT_TYPE
            | events::UserDeleted::EVENT_TYPE
            | events::UserUndeleted::EVENT_TYPE => {
                let user_id = match event.r#type.as_str() {
                    events::UserEmailVerified::EVENT_TYPE => {
                        decode::<events::UserEmailVerified>(&event).map(|e| e.user_id)
                    }
                    events::UserEmailChanged::EVENT_TYPE => {
                        decode::<events::UserEmailChanged>(&event).map(|e| e.user_id)
                    }
                    events::UserUpdated::EVENT_TYPE => {
                        decode::<events::UserUpdated>(&event).map(|e| e.user_id)
                    }
                    events::UserDeleted::EVENT_TYPE => {
                        decode::<events::UserDeleted>(&event).map(|e| e.user_id)
                    }
                    _ => decode::<events::UserUndeleted>(&event).map(|e| e.user_id),
                };
                let Some(user_id) = user_id else {
                    return Ok(());
                };
                let mut user = self.store.user_in(tx, &user_id).await?.unwrap_or(UserRow {
                    id: user_id.clone(),
                    ..UserRow::default()
                });
                match event.r#type.as_str() {
                    events::UserEmailVerified::EVENT_TYPE => {
                        if let Some(e) = decode::<events::UserEmailVerified>(&event) {
                            user.email = e.email;
                            user.email_verified = true;
                        }
                    }
                    events::UserEmailChanged::EVENT_TYPE => {
                        if let Some(e) = decode::<events::UserEmailChanged>(&event) {
                            user.email = e.new_email;
                        }
                    }
                    events::UserUpdated::EVENT_TYPE => {
                        if let Some(e) = decode::<events::UserUpdated>(&event)
                            && !e.display_name.is_empty()
                        {
                            user.display_name = e.display_name;
                        }
                    }
                    events::UserDeleted::EVENT_TYPE => user.deleted = true,
                    _ => user.deleted = false,
                }
                self.store.upsert_user(tx, &user).await?;
                if matches!(
                    event.r#type.as_str(),
                    events::UserDeleted::EVENT_TYPE | events::UserUndeleted::EVENT_TYPE
                ) {
                    let active = self
                        .store
                        .set_inactive(tx, &user.id, InactiveReason::Deleted, user.deleted)
                        .await?;
                    changes.push(Change::UserActive {
                        user: user.id.clone(),
                        active,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Mirrors a node (new, moved or changed) and records the change the
    /// index applies.
    async fn put_node(
        &self,
        tx: &mut crate::store::Tx,
        changes: &mut Vec<Change>,
        node: &NodeRow,
    ) -> tenantry_kit::error::Result<()> {
        self.store.upsert_node(tx, node).await?;
        changes.push(Change::Node {
            object_type: node.object_type.clone(),
            id: node.id.clone(),
            parent: node.parent_id.clone(),
            inherit: node.inherit,
        });
        Ok(())
    }

    async fn set_live(
        &self,
        tx: &mut crate::store::Tx,
        changes: &mut Vec<Change>,
        object_type: &str,
        id: &str,
        live: bool,
    ) -> tenantry_kit::error::Result<()> {
        if let Some(mut current) = self.store.node(tx, object_type, id).await? {
            current.live = live;
            self.store.upsert_node(tx, &current).await?;
        }
        changes.push(Change::Live {
            object_type: object_type.into(),
            id: id.into(),
            live,
        });
        Ok(())
    }
}
