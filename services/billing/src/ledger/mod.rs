//! The usage counters and how a change reaches them.
//!
//! A count made at an organization counts at that organization (`own`) and
//! in the `subtree` count of the organization and every ancestor, and in
//! the workspace's pool. A soft-deleted organization takes its subtree out
//! of everything above it (its allocation counts: live projects, members…;
//! metered usage already happened and stays counted), and a move takes the
//! subtree's counts from the old ancestors to the new ones. So "the usage of
//! X's subtree" is always one row, and a quota check reads at most eleven.

use tenantry_kit::error::Result;

use crate::metric::Metric;
use crate::store::{self, NodeRow, Tx};

/// The pool scope of a workspace (SINGLE and POOLED workspaces share one).
pub fn pool_scope(workspace_id: &str) -> String {
    format!("workspace:{workspace_id}")
}

/// The scopes a count at `node` reaches: the node itself when
/// `include_self`, then its ancestors up to and including the first
/// soft-deleted one, or up to the root and then the workspace pool.
async fn reach(tx: &mut Tx, node: &NodeRow, include_self: bool) -> Result<Vec<String>> {
    let ids = node.upward();
    if include_self && node.deleted {
        return Ok(vec![node.id.clone()]);
    }
    let known = store::nodes(&mut **tx, &ids[1..]).await?;
    let mut scopes = Vec::with_capacity(ids.len() + 1);
    if include_self {
        scopes.push(node.id.clone());
    }
    for id in &ids[1..] {
        scopes.push(id.to_string());
        if known.get(*id).is_some_and(|n| n.deleted) {
            return Ok(scopes);
        }
    }
    scopes.push(pool_scope(&node.workspace_id));
    Ok(scopes)
}

/// Adds `delta` of `metric` in `period_us` at `node`.
pub async fn count(
    tx: &mut Tx,
    node: &NodeRow,
    metric: Metric,
    period_us: i64,
    delta: i64,
) -> Result<()> {
    let scopes = reach(tx, node, true).await?;
    let deltas: Vec<(&str, i64, i64)> = scopes
        .iter()
        .enumerate()
        .map(|(i, scope)| (scope.as_str(), if i == 0 { delta } else { 0 }, delta))
        .collect();
    store::add_counters(tx, metric.as_str_name(), period_us, &deltas).await
}

/// Which of a subtree's counts move when it is detached or attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    /// Allocation counts only: a delete or undelete.
    Allocation,
    /// Every count: a move.
    All,
}

/// Adds (`sign` 1) or removes (`sign` -1) the subtree counts of `node` to
/// or from everything above it.
pub async fn shift(tx: &mut Tx, node: &NodeRow, sign: i64, counts: Counts) -> Result<()> {
    let above = reach(tx, node, false).await?;
    for (metric, period, subtree) in store::scope_counters(tx, &node.id).await? {
        if subtree == 0 || (counts == Counts::Allocation && period != 0) {
            continue;
        }
        let deltas: Vec<(&str, i64, i64)> = above
            .iter()
            .map(|scope| (scope.as_str(), 0, sign * subtree))
            .collect();
        store::add_counters(tx, &metric, period, &deltas).await?;
    }
    Ok(())
}

/// Marks an allocation item (a project, a membership, a pending
/// invitation…) as counting or not, and counts the difference once.
/// `organization_id` is used when the item is new; an item stays counted
/// where it was first seen.
pub async fn set_item(
    tx: &mut Tx,
    metric: Metric,
    item_id: &str,
    organization_id: &str,
    live: bool,
) -> Result<()> {
    set_item_at(tx, metric, item_id, organization_id, live, None).await
}

/// [`set_item`] by the item's own event at position `version` of its
/// history (`None`: a change that is not one of the item's events). The
/// same event reaches billing by two paths (its writer and the bus), and
/// writers on several replicas hand theirs over independently, so an
/// older event of an item can arrive after a newer one: it changes
/// nothing then (a project's late `created` must not count it again after
/// its `deleted`).
pub async fn set_item_at(
    tx: &mut Tx,
    metric: Metric,
    item_id: &str,
    organization_id: &str,
    live: bool,
    version: Option<i64>,
) -> Result<()> {
    let name = metric.as_str_name();
    // An item stays where it was first seen; whoever is adding that
    // organization right now must see this item, or this must see it added.
    let home = store::item(tx, name, item_id)
        .await?
        .map(|item| item.organization_id);
    store::lock_organization(tx, home.as_deref().unwrap_or(organization_id)).await?;
    let current = store::item(tx, name, item_id).await?;
    let known = current.as_ref().map_or(0, |item| item.version);
    if version.is_some_and(|v| v <= known) {
        return Ok(());
    }
    // The item is counted from now on: what its create reserved ends here,
    // in the same transaction, so usage never counts it twice or not at all.
    store::settle(tx, name, item_id).await?;
    let was_live = current.as_ref().is_some_and(|item| item.live);
    let organization = current
        .map(|item| item.organization_id)
        .unwrap_or_else(|| organization_id.to_string());
    store::put_item(
        tx,
        name,
        item_id,
        &organization,
        (live, version.unwrap_or(known)),
    )
    .await?;
    if was_live != live
        && let Some(node) = store::node(&mut **tx, &organization).await?
    {
        count(tx, &node, metric, 0, if live { 1 } else { -1 }).await?;
    }
    Ok(())
}

/// Counts the seat of an organization's first owner as soon as billing
/// knows the organization: the owner's membership is a consequence of the
/// creation, and its own event (from rbac) may come later than the creates
/// that must already see the seat taken. Only when the seat is not known
/// yet: a late creation event never revives a seat that was given up.
pub async fn owner_seat(tx: &mut Tx, organization_id: &str, owner_id: &str) -> Result<()> {
    if owner_id.is_empty() {
        return Ok(());
    }
    let item_id = format!("membership:{organization_id}/{owner_id}");
    if store::item(tx, Metric::Members.as_str_name(), &item_id)
        .await?
        .is_none()
    {
        set_item(tx, Metric::Members, &item_id, organization_id, true).await?;
    }
    Ok(())
}

/// Forgets an item for good, uncounting it if it counted.
pub async fn drop_item(tx: &mut Tx, metric: Metric, item_id: &str) -> Result<()> {
    set_item(tx, metric, item_id, "", false).await?;
    store::delete_item(tx, metric.as_str_name(), item_id).await
}

/// Adds a node billing has not seen before, counting the items that
/// arrived ahead of it (events from different services are not ordered
/// with each other). Returns false when the node was known.
pub async fn add_node(tx: &mut Tx, node: &NodeRow) -> Result<bool> {
    store::lock_organization(tx, &node.id).await?;
    if !store::insert_node(tx, node).await? {
        return Ok(false);
    }
    for (metric, n) in store::live_items(tx, &node.id).await? {
        if let Some(metric) = crate::metric::from_name(&metric) {
            count(tx, node, metric, 0, n).await?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;

/// One change of an item's standing, for [`set_items`].
#[derive(Debug, Clone)]
pub struct ItemChange {
    pub metric: Metric,
    pub item_id: String,
    /// Where a new item counts.
    pub organization_id: String,
    pub live: bool,
    /// The change's position in the item's own history (see
    /// [`set_item_at`]).
    pub version: Option<i64>,
}

/// [`set_item_at`] for a run of changes, in order, with the same outcome,
/// in a few statements per metric rather than several per change: the
/// items read at once (after locking every organization a count may land
/// in), settled and written at once, and each organization's counters
/// moved once by the sum of its changes (an import's thousand new members
/// of ten organizations move ten counts, not a thousand).
pub async fn set_items(tx: &mut Tx, changes: Vec<ItemChange>) -> Result<()> {
    if let [only] = changes.as_slice() {
        return set_item_at(
            tx,
            only.metric,
            &only.item_id,
            &only.organization_id,
            only.live,
            only.version,
        )
        .await;
    }
    let mut by_metric: std::collections::BTreeMap<&'static str, Vec<&ItemChange>> =
        std::collections::BTreeMap::new();
    for change in &changes {
        by_metric
            .entry(change.metric.as_str_name())
            .or_default()
            .push(change);
    }
    for (name, changes) in by_metric {
        let ids: Vec<&str> = changes.iter().map(|c| c.item_id.as_str()).collect();
        // Lock every organization where a count may land, in one order,
        // then read the items as they stand under the locks.
        let homes = store::items_of(tx, name, &ids).await?;
        let mut organizations: std::collections::BTreeSet<&str> =
            changes.iter().map(|c| c.organization_id.as_str()).collect();
        organizations.extend(homes.values().map(|item| item.organization_id.as_str()));
        for organization in organizations {
            store::lock_organization(tx, organization).await?;
        }
        let mut current = store::items_of(tx, name, &ids).await?;
        let mut settled = Vec::new();
        let mut written: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
        let mut deltas: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for change in &changes {
            let item = current.get(&change.item_id);
            let known = item.map_or(0, |item| item.version);
            if change.version.is_some_and(|v| v <= known) {
                continue;
            }
            let was_live = item.is_some_and(|item| item.live);
            let organization = item.map_or_else(
                || change.organization_id.clone(),
                |item| item.organization_id.clone(),
            );
            if was_live != change.live {
                *deltas.entry(organization.clone()).or_default() +=
                    if change.live { 1 } else { -1 };
            }
            settled.push(change.item_id.as_str());
            written.insert(change.item_id.as_str());
            current.insert(
                change.item_id.clone(),
                store::ItemRow {
                    organization_id: organization,
                    live: change.live,
                    version: change.version.unwrap_or(known),
                },
            );
        }
        store::settle_all(tx, name, &settled).await?;
        let rows: Vec<(&str, &store::ItemRow)> = written
            .iter()
            .filter_map(|id| current.get(*id).map(|item| (*id, item)))
            .collect();
        store::put_items(tx, name, &rows).await?;
        let metric = changes[0].metric;
        for (organization, delta) in deltas {
            if delta != 0
                && let Some(node) = store::node(&mut **tx, &organization).await?
            {
                count(tx, &node, metric, 0, delta).await?;
            }
        }
    }
    Ok(())
}
