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
//!
//! This file holds how an entitlement is read and the reads of the API
//! (effective limits, features, rate limits); [`limits`] sets and clears
//! limits on organizations, [`quota`] checks quotas and holds what they
//! allow until it is counted.

use tenantry_kit::access::Caller;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::OrganizationName;
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::catalog::{Limits, Plan, plan_name};
use crate::ledger::pool_scope;
use crate::metric::{self, Metric};
use crate::store::{self, LimitRow, NodeRow, SubscriptionRow};
use crate::subscriptions::{State, state_at};
use crate::{Core, respond, timestamp};

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
    /// How much more the candidate allows, if it limits.
    pub(crate) fn headroom(&self) -> Option<i64> {
        self.value.map(|v| v.saturating_sub(self.used))
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
    pub(crate) fn deciding(&self) -> Option<&Candidate> {
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
        let mode = self.workspace_mode(&node.workspace_id).await?;
        // In a shared workspace, only subscriptions with an account count.
        let subscriptions: Vec<SubscriptionRow> =
            (self.bounding_subscriptions(node, &mode).await?)
                .into_iter()
                .filter(|s| mode == "assigned" || s.billing_account_id.is_some())
                .collect();
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

    /// The subscriptions that may bound `node`'s plan, in one read: its
    /// root's in an ASSIGNED workspace, every subscription of the pool (the
    /// root's among them) otherwise.
    async fn bounding_subscriptions(
        &self,
        node: &NodeRow,
        mode: &str,
    ) -> Result<Vec<SubscriptionRow>> {
        let pool = self.store.pool();
        if mode == "assigned" {
            Ok(store::subscription(pool, &node.root_id)
                .await?
                .into_iter()
                .collect())
        } else {
            store::subscriptions_by(pool, store::SubscriptionKey::Workspace, &node.workspace_id)
                .await
        }
    }

    /// The plan bound of `node`'s tree (in a workspace of `mode`).
    pub(crate) async fn plan_bound(
        &self,
        node: &NodeRow,
        mode: &str,
        now_us: i64,
    ) -> Result<PlanBound> {
        let subscriptions = self.bounding_subscriptions(node, mode).await?;
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
        tx: &mut Write,
        caller: &Caller,
        node: &NodeRow,
        entitlements: &[Entitlement],
    ) -> Result<()> {
        for entitlement in entitlements {
            if let Some(limit) = entitlement.limit()
                && entitlement.deciding().is_some_and(|c| c.used > limit)
            {
                let used = entitlement.deciding().map_or(0, |c| c.used);
                self.emit_at(
                    tx,
                    caller,
                    node,
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

#[tonic::async_trait]
impl pb::entitlement_service_server::EntitlementService for EntitlementApi {
    async fn set_limit(
        &self,
        request: Request<pb::SetLimitRequest>,
    ) -> std::result::Result<Response<pb::SetLimitResponse>, Status> {
        respond(request, |caller, r| self.set_limit(caller, r)).await
    }

    async fn clear_limit(
        &self,
        request: Request<pb::ClearLimitRequest>,
    ) -> std::result::Result<Response<pb::ClearLimitResponse>, Status> {
        respond(request, |caller, r| self.clear_limit(caller, r)).await
    }

    async fn get_effective_limits(
        &self,
        request: Request<pb::GetEffectiveLimitsRequest>,
    ) -> std::result::Result<Response<pb::GetEffectiveLimitsResponse>, Status> {
        respond(request, |caller, r| self.get_effective_limits(caller, r)).await
    }

    async fn check_feature(
        &self,
        request: Request<pb::CheckFeatureRequest>,
    ) -> std::result::Result<Response<pb::CheckFeatureResponse>, Status> {
        respond(request, |caller, r| self.check_feature(caller, r)).await
    }

    async fn get_rate_limits(
        &self,
        request: Request<pb::GetRateLimitsRequest>,
    ) -> std::result::Result<Response<pb::GetRateLimitsResponse>, Status> {
        respond(request, |caller, r| self.get_rate_limits(caller, r)).await
    }

    async fn release_quota(
        &self,
        request: Request<pb::ReleaseQuotaRequest>,
    ) -> std::result::Result<Response<pb::ReleaseQuotaResponse>, Status> {
        respond(request, |caller, r| self.release_quota(caller, r)).await
    }

    async fn check_quota(
        &self,
        request: Request<pb::CheckQuotaRequest>,
    ) -> std::result::Result<Response<pb::CheckQuotaResponse>, Status> {
        respond(request, |caller, r| self.check_quota(caller, r)).await
    }
}

mod limits;
mod quota;

pub use quota::RESERVATION_TTL;
