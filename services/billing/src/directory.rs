//! What billing learns from other services' events: the organization tree
//! and workspaces' billing modes (organization), and the allocation
//! counts: projects, teams and sub-organizations (organization), seats as
//! members plus pending invitations (rbac), API keys (identity). Also who
//! the platform administrators are (identity), for plan administration.
//!
//! One durable consumer, idempotent by event id: each event is applied in
//! its own transaction together with its claim and any event billing emits
//! in turn (a root organization's FREE subscription).

use prost::Name;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::follow::BILLING_FOLLOWS;
use tenantry_kit::outbox::{claim_events, run_consumer, subject_for};
use tenantry_kit::service::ServiceContext;
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::events::v1 as events;

use crate::ledger::{self, Counts};
use crate::metric::Metric;
use crate::store::{self, NodeRow, Tx};
use crate::subscriptions::{State, free_subscription, state_at};
use crate::{Core, system_actor};

const CONSUMER: &str = "billing-directory";

/// Starts the consumer.
pub fn spawn(ctx: &ServiceContext, core: Core) {
    let bus = ctx.bus.clone();
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        // Exactly what writers hand billing directly (`BillingFeedService`).
        let filters: Vec<String> = BILLING_FOLLOWS
            .iter()
            .map(|(source, prefix)| match prefix {
                // A prefix of whole tokens takes everything under it; a
                // full type only itself.
                p if p.is_empty() || p.ends_with('.') => subject_for(source, &format!("{p}>")),
                p => subject_for(source, p),
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
                "the billing directory consumer stopped"
            );
        }
    });
}

fn decode<M: Name + Default>(event: &events::Event) -> Option<M> {
    event.payload.as_ref()?.to_msg().ok()
}

fn mode(mode: events::WorkspaceBillingMode) -> &'static str {
    match mode {
        events::WorkspaceBillingMode::Assigned => "assigned",
        events::WorkspaceBillingMode::Pooled => "pooled",
        _ => "single",
    }
}

impl Core {
    /// Applies `events`, in order, in one transaction (a writer's batch:
    /// one commit instead of one per event). Either all of them apply or
    /// none does, and the batch comes again.
    pub async fn apply_events(&self, events: Vec<events::Event>) -> Result<()> {
        // Events come from every tenant; what they say was authorized where
        // they were written.
        tenantry_kit::tenancy::system(async {
            let mut tx = self.begin().await?;
            // Claimed together: an event another path counted first is
            // skipped, the others counted in this transaction.
            let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
            let mut claimed = claim_events(&mut tx, CONSUMER, &ids).await?;
            let mut pending = Vec::new();
            for event in events {
                if claimed.remove(&event.id) {
                    self.apply_claimed(&mut tx, event, &mut pending).await?;
                }
            }
            ledger::set_items(&mut tx, pending).await?;
            self.commit(tx).await
        })
        .await
    }

    /// Counts one claimed event. A change of an item's standing joins
    /// `pending`, counted with the changes next to it; any other effect
    /// counts what is pending first, so every event sees those before it.
    async fn apply_claimed(
        &self,
        tx: &mut Write,
        event: events::Event,
        pending: &mut Vec<ledger::ItemChange>,
    ) -> Result<()> {
        if !only_item_changes(&event) {
            ledger::set_items(tx, std::mem::take(pending)).await?;
        }
        let item = |metric: Metric, prefix: &str, id: &str| (metric, format!("{prefix}{id}"));
        store::PLATFORM_ADMINS.apply(tx, &event).await?;
        let mut change: Option<((Metric, String), String, bool)> = None;
        match event.r#type.as_str() {
            events::WorkspaceCreated::EVENT_TYPE => {
                if let Some(p) = decode::<events::WorkspaceCreated>(&event) {
                    store::insert_workspace(tx, &p.workspace_id, mode(p.billing_mode())).await?;
                }
            }
            events::OrganizationCreated::EVENT_TYPE => {
                if let Some(p) = decode::<events::OrganizationCreated>(&event) {
                    self.organization_created(tx, &p).await?;
                }
            }
            events::OrganizationMoved::EVENT_TYPE => {
                if let Some(p) = decode::<events::OrganizationMoved>(&event) {
                    moved(tx, &p.organization_id, &p.new_parent_id).await?;
                }
            }
            events::OrganizationDeleted::EVENT_TYPE => {
                if let Some(p) = decode::<events::OrganizationDeleted>(&event) {
                    set_deleted(tx, &p.organization_id, true).await?;
                }
            }
            events::OrganizationUndeleted::EVENT_TYPE => {
                if let Some(p) = decode::<events::OrganizationUndeleted>(&event) {
                    set_deleted(tx, &p.organization_id, false).await?;
                }
            }
            events::OrganizationPurged::EVENT_TYPE => {
                if let Some(p) = decode::<events::OrganizationPurged>(&event) {
                    self.organization_purged(tx, &p.organization_id).await?;
                }
            }
            events::TeamCreated::EVENT_TYPE
            | events::TeamUndeleted::EVENT_TYPE
            | events::TeamDeleted::EVENT_TYPE
            | events::TeamPurged::EVENT_TYPE => {
                let ids = match event.r#type.as_str() {
                    events::TeamCreated::EVENT_TYPE => decode::<events::TeamCreated>(&event)
                        .map(|p| (p.team_id, p.organization_id)),
                    events::TeamUndeleted::EVENT_TYPE => decode::<events::TeamUndeleted>(&event)
                        .map(|p| (p.team_id, p.organization_id)),
                    events::TeamDeleted::EVENT_TYPE => decode::<events::TeamDeleted>(&event)
                        .map(|p| (p.team_id, p.organization_id)),
                    _ => {
                        decode::<events::TeamPurged>(&event).map(|p| (p.team_id, p.organization_id))
                    }
                };
                if let Some((team, organization)) = ids {
                    let live = matches!(
                        event.r#type.as_str(),
                        events::TeamCreated::EVENT_TYPE | events::TeamUndeleted::EVENT_TYPE
                    );
                    change = Some((item(Metric::Teams, "", &team), organization, live));
                }
            }
            events::ProjectCreated::EVENT_TYPE
            | events::ProjectUndeleted::EVENT_TYPE
            | events::ProjectDeleted::EVENT_TYPE
            | events::ProjectPurged::EVENT_TYPE => {
                let ids = match event.r#type.as_str() {
                    events::ProjectCreated::EVENT_TYPE => decode::<events::ProjectCreated>(&event)
                        .map(|p| (p.project_id, p.organization_id)),
                    events::ProjectUndeleted::EVENT_TYPE => {
                        decode::<events::ProjectUndeleted>(&event)
                            .map(|p| (p.project_id, p.organization_id))
                    }
                    events::ProjectDeleted::EVENT_TYPE => decode::<events::ProjectDeleted>(&event)
                        .map(|p| (p.project_id, p.organization_id)),
                    _ => decode::<events::ProjectPurged>(&event)
                        .map(|p| (p.project_id, p.organization_id)),
                };
                if let Some((project, organization)) = ids {
                    let live = matches!(
                        event.r#type.as_str(),
                        events::ProjectCreated::EVENT_TYPE | events::ProjectUndeleted::EVENT_TYPE
                    );
                    change = Some((item(Metric::Projects, "", &project), organization, live));
                }
            }
            events::MembershipCreated::EVENT_TYPE => {
                if let Some(p) = decode::<events::MembershipCreated>(&event) {
                    if !p.invitation_id.is_empty() {
                        // The pending seat becomes a member's seat.
                        let (metric, item_id) =
                            item(Metric::Members, "invitation:", &p.invitation_id);
                        pending.push(ledger::ItemChange {
                            metric,
                            item_id,
                            organization_id: p.organization_id.clone(),
                            live: false,
                            version: None,
                        });
                    }
                    change = Some((
                        item(Metric::Members, "membership:", &p.membership_id),
                        p.organization_id,
                        true,
                    ));
                }
            }
            events::MembershipDeleted::EVENT_TYPE => {
                if let Some(p) = decode::<events::MembershipDeleted>(&event) {
                    change = Some((
                        item(Metric::Members, "membership:", &p.membership_id),
                        p.organization_id,
                        false,
                    ));
                }
            }
            events::InvitationCreated::EVENT_TYPE => {
                // An external user takes no seat.
                if let Some(p) = decode::<events::InvitationCreated>(&event)
                    && !p.external
                {
                    change = Some((
                        item(Metric::Members, "invitation:", &p.invitation_id),
                        p.organization_id,
                        true,
                    ));
                }
            }
            events::InvitationRevoked::EVENT_TYPE => {
                if let Some(p) = decode::<events::InvitationRevoked>(&event) {
                    change = Some((
                        item(Metric::Members, "invitation:", &p.invitation_id),
                        p.organization_id,
                        false,
                    ));
                }
            }
            events::InvitationExpired::EVENT_TYPE => {
                if let Some(p) = decode::<events::InvitationExpired>(&event) {
                    change = Some((
                        item(Metric::Members, "invitation:", &p.invitation_id),
                        p.organization_id,
                        false,
                    ));
                }
            }
            events::InvitationAccepted::EVENT_TYPE => {
                // A new member's seat replaces the pending one in the
                // transaction that counts the member (`member.added`, which
                // may come before or after this): freeing it here first
                // would leave a seat free for a moment, for another create
                // to take. It is freed here only when no such event comes:
                // the invitee was a member already, or joined as external.
                if let Some(p) = decode::<events::InvitationAccepted>(&event) {
                    let (metric, member) = item(Metric::Members, "membership:", &p.membership_id);
                    let counted = store::item(tx, metric.as_str_name(), &member)
                        .await?
                        .is_some_and(|item| item.live);
                    if p.membership_id.is_empty() || counted {
                        change = Some((
                            item(Metric::Members, "invitation:", &p.invitation_id),
                            p.organization_id,
                            false,
                        ));
                    }
                }
            }
            events::ApiKeyCreated::EVENT_TYPE => {
                if let Some(p) = decode::<events::ApiKeyCreated>(&event) {
                    change = Some((
                        item(Metric::ApiKeys, "", &p.api_key_id),
                        p.organization_id,
                        true,
                    ));
                }
            }
            events::ApiKeyRevoked::EVENT_TYPE => {
                if let Some(p) = decode::<events::ApiKeyRevoked>(&event) {
                    change = Some((
                        item(Metric::ApiKeys, "", &p.api_key_id),
                        p.organization_id,
                        false,
                    ));
                }
            }
            _ => {}
        }
        if let Some(((metric, id), organization, live)) = change {
            if event.r#type.ends_with(".purged") {
                ledger::drop_item(tx, metric, &id).await?;
            } else {
                // The item's own events are ordered by their sequence (a
                // membership's id is `<organization>/<user>`, its item
                // `membership:<organization>/<user>`).
                let own = id
                    .rsplit_once(':')
                    .map_or(id.as_str(), |(_, object)| object)
                    == event.aggregate_id;
                let version = own.then_some(event.sequence as i64);
                pending.push(ledger::ItemChange {
                    metric,
                    item_id: id,
                    organization_id: organization,
                    live,
                    version,
                });
            }
        }
        Ok(())
    }

    async fn organization_created(
        &self,
        tx: &mut Write,
        p: &events::OrganizationCreated,
    ) -> Result<()> {
        let parent = if p.parent_id.is_empty() {
            None
        } else {
            // The organization service announces a parent before its
            // children, so a missing parent is a delivery still to come:
            // failing makes the consumer retry this event later.
            Some(
                store::node(tx.connection(), &p.parent_id)
                    .await?
                    .ok_or_else(|| {
                        Error::unavailable(
                            "the parent organization",
                            anyhow::anyhow!("not seen yet"),
                        )
                    })?,
            )
        };
        let node = NodeRow {
            id: p.organization_id.clone(),
            parent_id: parent.as_ref().map(|n| n.id.clone()),
            root_id: p.root_id.clone(),
            workspace_id: p.workspace_id.clone(),
            path: format!(
                "{}{}/",
                parent.as_ref().map_or("/", |n| n.path.as_str()),
                p.organization_id
            ),
            deleted: false,
        };
        // Only the transaction that adds the node counts its owner's seat:
        // a quota check may be learning the same node at this moment.
        if ledger::add_node(tx, &node).await? {
            ledger::owner_seat(tx, &node.id, &p.owner_user_id).await?;
        }
        if let Some(parent) = &parent {
            ledger::set_item(tx, Metric::SubOrganizations, &node.id, &parent.id, true).await?;
            return Ok(());
        }
        self.start_on_free(tx, &node).await
    }

    /// Every root organization starts on the FREE plan: its subscription is
    /// made in the transaction that first records the root, whichever path
    /// learns of it first (its event here, or a caller's request before
    /// the event, see `access`), so a read right after the organization's
    /// creation finds it.
    pub(crate) async fn start_on_free(&self, tx: &mut Write, node: &NodeRow) -> Result<()> {
        if store::subscription(tx.connection(), &node.id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let s = free_subscription(node, now_micros());
        store::save_subscription(tx, &s).await?;
        self.emit_for_subscription(
            tx,
            system_actor(),
            None,
            &node.id,
            &events::SubscriptionCreated {
                organization_id: node.id.clone(),
                plan_id: s.plan_id.clone(),
                billing_account_id: String::new(),
                state: State::Active.to_event() as i32,
                trial_end_time: None,
                limits: self.free_plan().body.limits.to_events(),
            },
        )
        .await
    }

    async fn organization_purged(&self, tx: &mut Write, id: &str) -> Result<()> {
        let Some(node) = store::node(tx.connection(), id).await? else {
            return Ok(());
        };
        if !node.deleted {
            ledger::shift(tx, &node, -1, Counts::Allocation).await?;
        }
        ledger::drop_item(tx, Metric::SubOrganizations, id).await?;
        store::purge_node(tx, id).await?;
        if let Some(mut s) = store::subscription(tx.connection(), id).await?
            && state_at(&s, now_micros()) != State::Canceled
        {
            self.set_state(tx, &mut s, State::Canceled, "").await?;
        }
        Ok(())
    }
}

/// Takes a subtree's allocation counts out of (or back into) everything
/// above it, and its top's sub-organization seat at its parent.
pub(crate) async fn set_deleted(tx: &mut Tx, id: &str, deleted: bool) -> Result<()> {
    let Some(node) = store::node(&mut **tx, id).await? else {
        return Ok(());
    };
    if node.deleted == deleted {
        return Ok(());
    }
    if deleted {
        ledger::shift(tx, &node, -1, Counts::Allocation).await?;
        store::set_node_deleted(tx, id, true).await?;
    } else {
        store::set_node_deleted(tx, id, false).await?;
        ledger::shift(tx, &node, 1, Counts::Allocation).await?;
    }
    if let Some(parent) = &node.parent_id {
        ledger::set_item(tx, Metric::SubOrganizations, id, parent, !deleted).await?;
    }
    Ok(())
}

/// Moves a subtree's counts from its old ancestors to its new ones.
pub(crate) async fn moved(tx: &mut Tx, id: &str, new_parent_id: &str) -> Result<()> {
    let (Some(node), Some(parent)) = (
        store::node(&mut **tx, id).await?,
        store::node(&mut **tx, new_parent_id).await?,
    ) else {
        return Ok(());
    };
    if node.parent_id.as_deref() == Some(new_parent_id) {
        return Ok(());
    }
    let attached = !node.deleted;
    if attached {
        ledger::shift(tx, &node, -1, Counts::All).await?;
    }
    if let Some(old_parent) = &node.parent_id {
        ledger::set_item(tx, Metric::SubOrganizations, id, old_parent, false).await?;
        ledger::drop_item(tx, Metric::SubOrganizations, id).await?;
    }
    let new_path = format!("{}{id}/", parent.path);
    store::move_subtree(tx, id, new_parent_id, &node.path, &new_path).await?;
    let node = store::node(&mut **tx, id).await?.expect("the moved node");
    if attached {
        ledger::shift(tx, &node, 1, Counts::All).await?;
        ledger::set_item(tx, Metric::SubOrganizations, id, new_parent_id, true).await?;
    }
    Ok(())
}

/// Whether all `event` does here is change items' standing (which
/// [`ledger::set_items`] counts in a batch): no other row it writes or
/// reads depends on the items before it.
fn only_item_changes(event: &events::Event) -> bool {
    matches!(
        event.r#type.as_str(),
        events::TeamCreated::EVENT_TYPE
            | events::TeamUndeleted::EVENT_TYPE
            | events::TeamDeleted::EVENT_TYPE
            | events::ProjectCreated::EVENT_TYPE
            | events::ProjectUndeleted::EVENT_TYPE
            | events::ProjectDeleted::EVENT_TYPE
            | events::MembershipCreated::EVENT_TYPE
            | events::MembershipDeleted::EVENT_TYPE
            | events::InvitationCreated::EVENT_TYPE
            | events::InvitationRevoked::EVENT_TYPE
            | events::InvitationExpired::EVENT_TYPE
            | events::ApiKeyCreated::EVENT_TYPE
            | events::ApiKeyRevoked::EVENT_TYPE
    )
}
