//! Effective limits and quota checks.
//!
//! The limit of a metric at an organization is chosen among candidates:
//! the limit set on the organization itself, those set on each ancestor,
//! and the plan's (at the root's subscription in ASSIGNED workspaces, or
//! the workspace pool's in SINGLE and POOLED ones). Each candidate bounds
//! the usage of its own subtree (or pool), so the one with the least
//! headroom decides. A check reads the node, its ancestors' limits and
//! counters, and the subscriptions behind the pool: a handful of indexed
//! reads, no scans.

use tenantry_kit::access::Caller;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::OrganizationName;
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::catalog::{Limits, Plan, plan_name};
use crate::ledger::pool_scope;
use crate::metric::{self, Metric};
use crate::store::{self, LimitRow, NodeRow, SubscriptionRow};
use crate::subscriptions::{State, state_at};
use crate::{Core, caller, timestamp};

/// One limit considered for an effective limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub source: pb::LimitSource,
    pub organization: String,
    pub plan: String,
    pub value: Option<i64>,
    pub used: i64,
}

impl Candidate {
    fn headroom(&self) -> Option<i64> {
        self.value.map(|v| v.saturating_sub(self.used))
    }

    fn to_pb(&self) -> pb::LimitCandidate {
        pb::LimitCandidate {
            source: self.source as i32,
            organization: OrganizationName::new(&self.organization).to_string(),
            plan: if self.plan.is_empty() {
                String::new()
            } else {
                plan_name(&self.plan)
            },
            value: self.value,
            used: self.used,
        }
    }
}

/// What limits a metric at one organization, and how much it uses.
#[derive(Debug, Clone)]
pub struct Entitlement {
    pub metric: Metric,
    /// The organization's own usage and its subtree's.
    pub own: i64,
    pub used: i64,
    /// From the organization up to the plan.
    pub candidates: Vec<Candidate>,
    /// Whether the subscription behind the organization is past due.
    pub past_due: bool,
}

impl Entitlement {
    /// The candidate with the least headroom, if any limits.
    fn deciding(&self) -> Option<&Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.value.is_some())
            .min_by_key(|c| c.headroom())
    }

    /// Whether `delta` more fits, and why.
    pub fn check(&self, delta: i64) -> pb::CheckQuotaResponse {
        use pb::check_quota_response::Reason;
        let deciding = self.deciding();
        let fits = self
            .candidates
            .iter()
            .all(|c| c.value.is_none_or(|v| c.used.saturating_add(delta) <= v));
        let reason = if self.past_due {
            Reason::SubscriptionPastDue
        } else if !fits {
            Reason::LimitExceeded
        } else if deciding.is_some() {
            Reason::WithinLimit
        } else {
            Reason::Unlimited
        };
        pb::CheckQuotaResponse {
            allowed: !self.past_due && fits,
            limit: deciding.and_then(|c| c.value),
            used: deciding.map_or(self.used, |c| c.used),
            remaining: deciding.and_then(|c| c.headroom()).map(|h| h.max(0)),
            reason: reason as i32,
            source: deciding.map_or(pb::LimitSource::None, |c| c.source) as i32,
            source_organization: deciding
                .map(|c| OrganizationName::new(&c.organization).to_string())
                .unwrap_or_default(),
        }
    }

    pub fn to_pb(&self) -> pb::EffectiveLimit {
        let deciding = self.deciding();
        pb::EffectiveLimit {
            metric: self.metric as i32,
            value: deciding.and_then(|c| c.value),
            source: deciding.map_or(pb::LimitSource::None, |c| c.source) as i32,
            source_organization: deciding
                .map(|c| OrganizationName::new(&c.organization).to_string())
                .unwrap_or_default(),
            used: self.used,
            remaining: deciding.and_then(|c| c.headroom()).map(|h| h.max(0)),
            candidates: self.candidates.iter().map(Candidate::to_pb).collect(),
        }
    }

    /// The effective value: the deciding candidate's.
    pub fn limit(&self) -> Option<i64> {
        self.deciding().and_then(|c| c.value)
    }
}

/// The plan limits that bound an organization's tree: its root's
/// subscription in an ASSIGNED workspace, the workspace pool otherwise.
#[derive(Debug, Clone)]
pub struct PlanBound {
    pub limits: Limits,
    /// Which metrics a subscription override (rather than the plan) sets.
    pub overridden: Limits,
    pub plan_id: String,
    /// The scope whose usage the plan bounds.
    pub scope: String,
    pub past_due: bool,
}

impl Core {
    /// The limits a subscription gives (the FREE plan's when there is
    /// none, or it ended): the plan's, with overrides and extra seats.
    pub(crate) async fn subscription_limits(
        &self,
        subscription: Option<&SubscriptionRow>,
        now_us: i64,
    ) -> Result<(Plan, Limits)> {
        let live = subscription.filter(|s| state_at(s, now_us) != State::Canceled);
        let Some(subscription) = live else {
            let free = self.free_plan().clone();
            let limits = free.body.limits.clone();
            return Ok((free, limits));
        };
        let plan = match self.plan(&subscription.plan_id).await? {
            Some(plan) => plan,
            None => self.free_plan().clone(),
        };
        let mut limits = plan
            .body
            .limits
            .overridden_by(&subscription.limit_overrides);
        if let Some(members) = limits.members {
            limits.members = Some(members.saturating_add(subscription.extra_seats));
        }
        Ok((plan, limits))
    }

    /// Whether the plan that applies at `node` includes `feature`, with the
    /// plan that decided: one that includes it, or else the one that
    /// applies. The subscriptions are those that bound its limits (see
    /// [`plan_bound`](Self::plan_bound)); their overrides count while they
    /// are not canceled.
    pub(crate) async fn feature(
        &self,
        node: &NodeRow,
        feature: &str,
        now_us: i64,
    ) -> Result<(bool, Plan)> {
        let pool = self.store.pool();
        let mode = self.workspace_mode(&node.workspace_id).await?;
        let subscriptions: Vec<SubscriptionRow> = if mode == "assigned" {
            store::subscription(pool, &node.root_id)
                .await?
                .into_iter()
                .collect()
        } else {
            store::subscriptions_by(pool, store::SubscriptionKey::Workspace, &node.workspace_id)
                .await?
                .into_iter()
                .filter(|s| s.billing_account_id.is_some())
                .collect()
        };
        let mut applies = None;
        for subscription in &subscriptions {
            let (plan, _) = self.subscription_limits(Some(subscription), now_us).await?;
            let mut included = plan.body.features.get(feature).copied().unwrap_or(false);
            if state_at(subscription, now_us) != State::Canceled
                && let Some(over) = subscription.feature_overrides.get(feature)
            {
                included = *over;
            }
            if included {
                return Ok((true, plan));
            }
            if subscription.organization_id == node.root_id || applies.is_none() {
                applies = Some(plan);
            }
        }
        Ok((false, applies.unwrap_or_else(|| self.free_plan().clone())))
    }

    /// The scope whose usage a node's plan bounds: its root in an ASSIGNED
    /// workspace, the workspace's pool otherwise.
    pub(crate) fn plan_scope(node: &NodeRow, mode: &str) -> String {
        if mode == "assigned" {
            node.root_id.clone()
        } else {
            pool_scope(&node.workspace_id)
        }
    }

    /// The plan bound of `node`'s tree (in a workspace of `mode`).
    pub(crate) async fn plan_bound(
        &self,
        node: &NodeRow,
        mode: &str,
        now_us: i64,
    ) -> Result<PlanBound> {
        let pool = self.store.pool();
        // One read: the root's subscription, or every subscription of the
        // pool (the root's among them).
        let subscriptions = if mode == "assigned" {
            store::subscription(pool, &node.root_id)
                .await?
                .into_iter()
                .collect()
        } else {
            store::subscriptions_by(pool, store::SubscriptionKey::Workspace, &node.workspace_id)
                .await?
        };
        let root = subscriptions
            .iter()
            .find(|s| s.organization_id == node.root_id);
        let past_due = root.is_some_and(|s| state_at(s, now_us) == State::PastDue);
        let (root_plan, root_limits) = self.subscription_limits(root, now_us).await?;
        let scope = Self::plan_scope(node, mode);
        if mode == "assigned" {
            return Ok(PlanBound {
                limits: root_limits,
                overridden: root.map(|s| s.limit_overrides.clone()).unwrap_or_default(),
                plan_id: root_plan.id,
                scope,
                past_due,
            });
        }
        // SINGLE and POOLED: the pool is what the paying accounts' live
        // subscriptions add up to; with none, the FREE plan's limits.
        let mut pooled: Option<Limits> = None;
        let mut overridden = Limits::default();
        for subscription in &subscriptions {
            if subscription.billing_account_id.is_none()
                || state_at(subscription, now_us) == State::Canceled
            {
                continue;
            }
            overridden = overridden.overridden_by(&subscription.limit_overrides);
            let (_, limits) = self.subscription_limits(Some(subscription), now_us).await?;
            pooled = Some(match pooled {
                Some(sum) => sum.plus(&limits),
                None => limits,
            });
        }
        Ok(PlanBound {
            limits: pooled.unwrap_or_else(|| self.free_plan().body.limits.clone()),
            overridden,
            plan_id: root_plan.id,
            scope,
            past_due,
        })
    }

    /// The counters and set limits of `metric` at `node`, its ancestors
    /// and its plan scope, counted in the period that contains `at_us`:
    /// one read.
    async fn readings(
        &self,
        node: &NodeRow,
        scope: &str,
        metric: Metric,
        at_us: i64,
    ) -> Result<store::Readings> {
        let upward = node.upward();
        let mut scopes = upward.clone();
        scopes.push(scope);
        let period = metric::period_of(metric, at_us);
        store::readings(
            self.store.pool(),
            &scopes,
            &upward,
            metric.as_str_name(),
            period,
        )
        .await
    }

    /// The entitlement of `metric` at `node` from its readings.
    fn entitlement(
        node: &NodeRow,
        bound: &PlanBound,
        metric: Metric,
        readings: &store::Readings,
    ) -> Entitlement {
        // A scope's usage: what its counter holds and what creates in flight
        // reserved there.
        let subtree = |scope: &str| {
            readings.counters.get(scope).map_or(0, |c| c.1)
                + readings.reserved.get(scope).copied().unwrap_or(0)
        };
        let mut candidates: Vec<Candidate> = node
            .upward()
            .iter()
            .filter_map(|id| {
                readings.limits.get(*id).map(|value| Candidate {
                    source: if *id == node.id {
                        pb::LimitSource::Organization
                    } else {
                        pb::LimitSource::Ancestor
                    },
                    organization: id.to_string(),
                    plan: String::new(),
                    value: Some(*value),
                    used: subtree(id),
                })
            })
            .collect();
        candidates.push(Candidate {
            source: if bound.overridden.get(metric).is_some() {
                pb::LimitSource::SubscriptionOverride
            } else {
                pb::LimitSource::Plan
            },
            organization: node.root_id.clone(),
            plan: bound.plan_id.clone(),
            value: bound.limits.get(metric),
            used: subtree(&bound.scope),
        });
        Entitlement {
            metric,
            // Like `used`, what creates in flight reserved here counts.
            own: readings.counters.get(node.id.as_str()).map_or(0, |c| c.0) + readings.reserved_own,
            used: subtree(&node.id),
            candidates,
            past_due: bound.past_due,
        }
    }

    /// Checks the quota of `metric` at `node` for `delta` more and, when it
    /// allows, reserves that much under `id` (the object about to be
    /// created) until its event is counted, it is released, or
    /// [`RESERVATION_TTL`] passes. Reservations of one tree (or pool) and
    /// metric are taken one at a time, so two creates racing for the last
    /// unit cannot both get it. Asking again for a live reservation, or for
    /// an object already counted, allows without reserving twice.
    pub(crate) async fn reserve(
        &self,
        node: &NodeRow,
        metric: Metric,
        delta: i64,
        id: &str,
    ) -> Result<pb::CheckQuotaResponse> {
        let name = metric.as_str_name();
        let now = now_micros();
        let mode = self.workspace_mode(&node.workspace_id).await?;
        let scope = Self::plan_scope(node, &mode);
        let bound = self.plan_bound(node, &mode, now).await?;
        let mut tx = self.store.begin().await?;
        store::lock_quota(&mut tx, &scope, name).await?;
        // Read on the transaction's own connection: on SQLite it holds the
        // write lock, and waiting for another connection of the pool while
        // other reservers hold them all would never end.
        let upward = node.upward();
        let mut scopes = upward.clone();
        scopes.push(&scope);
        let readings = store::readings(&mut *tx, &scopes, &upward, name, 0).await?;
        let entitlement = &Self::entitlement(node, &bound, metric, &readings);
        if store::reservation_exists(&mut tx, name, id).await?
            || store::item(&mut tx, name, id).await?.is_some()
        {
            // Held (or counted) already: the answer of the first call.
            return Ok(entitlement.check(0));
        }
        let answer = entitlement.check(delta);
        if answer.allowed && delta > 0 {
            store::reserve(
                &mut tx,
                id,
                name,
                &node.id,
                delta,
                &scopes,
                now + RESERVATION_TTL.as_micros() as i64,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(answer)
    }

    /// The entitlements of `metrics` at an organization, counted in the
    /// period that contains `at_us`. The plan bound and the first
    /// metric's readings are read concurrently.
    pub(crate) async fn entitlements(
        &self,
        node: &NodeRow,
        metrics: &[Metric],
        at_us: i64,
    ) -> Result<Vec<Entitlement>> {
        let now = now_micros();
        let mode = self.workspace_mode(&node.workspace_id).await?;
        let scope = Self::plan_scope(node, &mode);
        let mut out = Vec::with_capacity(metrics.len());
        let Some((first, rest)) = metrics.split_first() else {
            return Ok(out);
        };
        let (bound, readings) = tokio::try_join!(
            self.plan_bound(node, &mode, now),
            self.readings(node, &scope, *first, at_us)
        )?;
        out.push(Self::entitlement(node, &bound, *first, &readings));
        for metric in rest {
            let readings = self.readings(node, &scope, *metric, at_us).await?;
            out.push(Self::entitlement(node, &bound, *metric, &readings));
        }
        Ok(out)
    }

    /// Emits `billing.limit.exceeded` for each metric whose usage at
    /// `node` is now above its effective limit.
    pub(crate) async fn report_exceeded(
        &self,
        tx: &mut store::Tx,
        caller: &Caller,
        node: &NodeRow,
        entitlements: &[Entitlement],
    ) -> Result<()> {
        for entitlement in entitlements {
            if let Some(limit) = entitlement.limit()
                && entitlement.deciding().is_some_and(|c| c.used > limit)
            {
                let used = entitlement.deciding().map_or(0, |c| c.used);
                self.emit(
                    tx,
                    caller.actor(),
                    Some(&caller.request),
                    ("organization", &node.id),
                    Some((&node.id, &node.root_id)),
                    &events::LimitExceeded {
                        organization_id: node.id.clone(),
                        metric: entitlement.metric.as_str_name().to_string(),
                        limit,
                        used,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The `EntitlementService` handler.
#[derive(Debug, Clone)]
pub struct EntitlementApi(pub Core);

impl EntitlementApi {
    async fn set_limit(
        &self,
        caller: Caller,
        request: pb::SetLimitRequest,
    ) -> Result<pb::SetLimitResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        if request.value < 0 {
            return Err(Error::invalid_field("value", "must not be negative"));
        }
        core.authorize(&caller, &[&id], Need::Manage, "organization")
            .await?;
        let node = core.node(&caller, &id).await?;
        let now = now_micros();
        let mut tx = core.store.begin().await?;
        let old = store::limit(&mut tx, &id, metric.as_str_name()).await?;
        let row = LimitRow {
            organization_id: id.clone(),
            metric: metric.as_str_name().to_string(),
            value: request.value,
            set_by: caller.resource_name(),
            updated_at_us: now,
        };
        store::set_limit(&mut tx, &row).await?;
        core.emit(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            ("organization", &id),
            Some((&id, &node.root_id)),
            &events::LimitSet {
                organization_id: id.clone(),
                metric: row.metric.clone(),
                old_value: old.map(|l| l.value),
                new_value: row.value,
            },
        )
        .await?;
        core.commit(tx).await?;
        let effective = core.entitlements(&node, &[metric], now).await?;
        if effective[0]
            .limit()
            .is_some_and(|limit| effective[0].used > limit)
        {
            let mut tx = core.store.begin().await?;
            core.report_exceeded(&mut tx, &caller, &node, &effective)
                .await?;
            core.commit(tx).await?;
        }
        Ok(pb::SetLimitResponse {
            limit: Some(pb::OrganizationLimit {
                organization: OrganizationName::new(&id).to_string(),
                metric: metric as i32,
                value: row.value,
                set_by: row.set_by,
                update_time: Some(timestamp(now)),
            }),
            effective_limit: Some(effective[0].to_pb()),
        })
    }

    async fn clear_limit(
        &self,
        caller: Caller,
        request: pb::ClearLimitRequest,
    ) -> Result<pb::ClearLimitResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        core.authorize(&caller, &[&id], Need::Manage, "organization")
            .await?;
        let node = core.node(&caller, &id).await?;
        let mut tx = core.store.begin().await?;
        if let Some(old) = store::limit(&mut tx, &id, metric.as_str_name()).await? {
            store::clear_limit(&mut tx, &id, metric.as_str_name()).await?;
            core.emit(
                &mut tx,
                caller.actor(),
                Some(&caller.request),
                ("organization", &id),
                Some((&id, &node.root_id)),
                &events::LimitCleared {
                    organization_id: id.clone(),
                    metric: old.metric,
                    old_value: old.value,
                },
            )
            .await?;
            core.commit(tx).await?;
        }
        let effective = core.entitlements(&node, &[metric], now_micros()).await?;
        Ok(pb::ClearLimitResponse {
            effective_limit: Some(effective[0].to_pb()),
        })
    }

    async fn get_effective_limits(
        &self,
        caller: Caller,
        request: pb::GetEffectiveLimitsRequest,
    ) -> Result<pb::GetEffectiveLimitsResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let mut metrics = Vec::new();
        for (i, value) in request.metrics.iter().enumerate() {
            metrics.push(metric::parse(&format!("metrics[{i}]"), *value)?);
        }
        if metrics.is_empty() {
            metrics = metric::ALL.to_vec();
        }
        metrics.sort_by_key(|m| *m as i32);
        metrics.dedup();
        core.authorize(&caller, &[&id], Need::Read, "organization")
            .await?;
        let node = core.node(&caller, &id).await?;
        let effective = core.entitlements(&node, &metrics, now_micros()).await?;
        Ok(pb::GetEffectiveLimitsResponse {
            effective_limits: effective.iter().map(Entitlement::to_pb).collect(),
        })
    }

    async fn check_quota(
        &self,
        caller: Caller,
        request: pb::CheckQuotaRequest,
    ) -> Result<pb::CheckQuotaResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        if request.delta < 0 {
            return Err(Error::invalid_field("delta", "must not be negative"));
        }
        let reservation = request.reservation_id.trim();
        if !reservation.is_empty() {
            validate_reservation(metric, reservation)?;
        }
        core.authorize_reader(&caller, &id).await?;
        let node = core.node(&caller, &id).await?;
        if reservation.is_empty() {
            let entitlement = core.entitlements(&node, &[metric], now_micros()).await?;
            let answer = entitlement[0].check(request.delta);
            metrics_count(metric, answer.allowed);
            return Ok(answer);
        }
        let answer = core
            .reserve(&node, metric, request.delta, reservation)
            .await?;
        metrics_count(metric, answer.allowed);
        Ok(answer)
    }

    async fn release_quota(
        &self,
        caller: Caller,
        request: pb::ReleaseQuotaRequest,
    ) -> Result<pb::ReleaseQuotaResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        validate_reservation(metric, &request.reservation_id)?;
        core.authorize_reader(&caller, &id).await?;
        let mut tx = core.store.begin().await?;
        // Only a reservation made in this organization: another tenant's ids
        // are not for this caller to touch.
        let released =
            store::release(&mut tx, metric.as_str_name(), &request.reservation_id, &id).await?;
        tx.commit().await?;
        Ok(pb::ReleaseQuotaResponse { released })
    }
}

/// How long a reservation holds when its create neither completes (its
/// event settles it) nor fails (its service releases it): a process that
/// died between the two. Generous, so that a bus outage shorter than this
/// never lets a limit be exceeded; a lapsed reservation only ever frees
/// room too late, never too early, unless the outage is longer.
pub const RESERVATION_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// A reservation names the object about to be created; only allocation
/// metrics (counted from events) are reserved.
fn validate_reservation(metric: Metric, id: &str) -> Result<()> {
    if metric::is_metered(metric) {
        return Err(Error::invalid_field(
            "reservation_id",
            "metered metrics are not reserved: their usage is recorded with RecordUsage",
        ));
    }
    let valid = !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:/.".contains(&b));
    if !valid {
        return Err(Error::invalid_field(
            "reservation_id",
            "must be 1 to 200 letters, digits or `-_:/.`",
        ));
    }
    Ok(())
}

impl EntitlementApi {
    async fn check_feature(
        &self,
        caller: Caller,
        request: pb::CheckFeatureRequest,
    ) -> Result<pb::CheckFeatureResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let feature = request.feature.as_str();
        let valid = (1..=64).contains(&feature.len())
            && feature
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::invalid_field(
                "feature",
                "must be 1 to 64 lowercase letters, digits and `_`",
            ));
        }
        core.authorize_reader(&caller, &id).await?;
        let node = core.node(&caller, &id).await?;
        let (included, plan) = core.feature(&node, feature, now_micros()).await?;
        Ok(pb::CheckFeatureResponse {
            included,
            plan: plan_name(&plan.id),
            plan_display_name: plan.body.display_name,
        })
    }

    async fn get_rate_limits(
        &self,
        caller: Caller,
        request: pb::GetRateLimitsRequest,
    ) -> Result<pb::GetRateLimitsResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        core.authorize_reader(&caller, &id).await?;
        let node = core.node(&caller, &id).await?;
        let mode = core.workspace_mode(&node.workspace_id).await?;
        let bound = core.plan_bound(&node, &mode, now_micros()).await?;
        Ok(pb::GetRateLimitsResponse {
            rate_limits_per_minute: bound.limits.rate_limits_per_minute.into_iter().collect(),
            plan: plan_name(&bound.plan_id),
        })
    }
}

fn metrics_count(metric: Metric, allowed: bool) {
    metrics::counter!(
        "tenantry_billing_quota_checks_total",
        "metric" => metric.as_str_name(),
        "allowed" => if allowed { "true" } else { "false" }
    )
    .increment(1);
}

#[tonic::async_trait]
impl pb::entitlement_service_server::EntitlementService for EntitlementApi {
    async fn set_limit(
        &self,
        request: Request<pb::SetLimitRequest>,
    ) -> std::result::Result<Response<pb::SetLimitResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.set_limit(caller, request.into_inner()).await?,
        ))
    }

    async fn clear_limit(
        &self,
        request: Request<pb::ClearLimitRequest>,
    ) -> std::result::Result<Response<pb::ClearLimitResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.clear_limit(caller, request.into_inner()).await?,
        ))
    }

    async fn get_effective_limits(
        &self,
        request: Request<pb::GetEffectiveLimitsRequest>,
    ) -> std::result::Result<Response<pb::GetEffectiveLimitsResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.get_effective_limits(caller, request.into_inner())
                .await?,
        ))
    }

    async fn check_feature(
        &self,
        request: Request<pb::CheckFeatureRequest>,
    ) -> std::result::Result<Response<pb::CheckFeatureResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.check_feature(caller, request.into_inner()).await?,
        ))
    }

    async fn get_rate_limits(
        &self,
        request: Request<pb::GetRateLimitsRequest>,
    ) -> std::result::Result<Response<pb::GetRateLimitsResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.get_rate_limits(caller, request.into_inner()).await?,
        ))
    }

    async fn release_quota(
        &self,
        request: Request<pb::ReleaseQuotaRequest>,
    ) -> std::result::Result<Response<pb::ReleaseQuotaResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.release_quota(caller, request.into_inner()).await?,
        ))
    }

    async fn check_quota(
        &self,
        request: Request<pb::CheckQuotaRequest>,
    ) -> std::result::Result<Response<pb::CheckQuotaResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.check_quota(caller, request.into_inner()).await?,
        ))
    }
}
