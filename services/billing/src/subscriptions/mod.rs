//! Subscriptions: the singleton `organizations/{root}/subscription`.
//!
//! Every root organization gets a FREE subscription when it is created
//! (from `organization.created`). A plan change applies its limits at once;
//! a downgrade below current usage deletes nothing and lists the metrics
//! that are over (creation of those is refused until usage drops). Trials
//! end, and cancellations at period end take effect, on their own: reads
//! apply them at once ([`state_at`]) and the sweeper writes them back with
//! their events.
//!
//! This file holds the states, the view and the rules every flow shares;
//! the flows are [`subscribe`] (Subscribe, ChangePlan), [`update`]
//! (UpdateSubscription) and [`cancel`] (CancelSubscription).

use std::collections::BTreeMap;
use tenantry_kit::write::Write;

use tenantry_kit::access::Caller;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{BillingAccountName, SubscriptionName, WorkspaceName};
use tenantry_kit::request::{check_etag, etag, update_mask};
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::accounts::optional_account_id;
use crate::catalog::{Limits, Plan, plan_id, plan_name};
use crate::error::Error as Refusal;
use crate::metric::{self, Metric};
use crate::store::{self, NodeRow, SubscriptionRow};
use crate::{Core, not_found, serve, timestamp};

/// The state of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trialing,
    Active,
    PastDue,
    Canceled,
}

impl State {
    pub fn parse(text: &str) -> State {
        match text {
            "trialing" => State::Trialing,
            "past_due" => State::PastDue,
            "canceled" => State::Canceled,
            _ => State::Active,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Trialing => "trialing",
            State::Active => "active",
            State::PastDue => "past_due",
            State::Canceled => "canceled",
        }
    }

    pub fn to_event(self) -> events::SubscriptionState {
        match self {
            State::Trialing => events::SubscriptionState::Trialing,
            State::Active => events::SubscriptionState::Active,
            State::PastDue => events::SubscriptionState::PastDue,
            State::Canceled => events::SubscriptionState::Canceled,
        }
    }
}

/// A subscription's state at `now_us`: a trial past its end is active, a
/// cancellation past its date is canceled, whatever was last written.
pub fn state_at(subscription: &SubscriptionRow, now_us: i64) -> State {
    let stored = State::parse(&subscription.state);
    if stored == State::Canceled || subscription.cancel_at_us.is_some_and(|at| at <= now_us) {
        return State::Canceled;
    }
    if stored == State::Trialing && subscription.trial_end_us.is_some_and(|end| end <= now_us) {
        return State::Active;
    }
    stored
}

/// A fresh FREE subscription of a root organization.
pub(crate) fn free_subscription(node: &NodeRow, now_us: i64) -> SubscriptionRow {
    SubscriptionRow {
        organization_id: node.id.clone(),
        workspace_id: node.workspace_id.clone(),
        plan_id: crate::catalog::FREE.into(),
        billing_account_id: None,
        state: State::Active.as_str().into(),
        extra_seats: 0,
        limit_overrides: Limits::default(),
        feature_overrides: BTreeMap::new(),
        trial_end_us: None,
        cancel_at_us: None,
        canceled_at_us: None,
        provider_subscription_id: String::new(),
        created_at_us: now_us,
        updated_at_us: now_us,
        version: 1,
    }
}

impl Core {
    /// The API view of the subscription `s` of the root organization
    /// `node` (which the caller's request has read already), with its
    /// limits, features, usage above them and current period.
    pub(crate) async fn subscription_view(
        &self,
        node: &NodeRow,
        s: &SubscriptionRow,
    ) -> Result<pb::Subscription> {
        let now = now_micros();
        let state = state_at(s, now);
        let (plan, limits) = self.subscription_limits(Some(s), now).await?;
        let mut features = plan.body.features.clone();
        if state != State::Canceled {
            features.extend(s.feature_overrides.iter().map(|(k, v)| (k.clone(), *v)));
        }
        let mut over = Vec::new();
        for e in self.entitlements(node, &metric::ALL, now).await? {
            if e.limit().is_some_and(|limit| {
                e.candidates
                    .iter()
                    .any(|c| c.value == Some(limit) && c.used > limit)
            }) {
                over.push(e.metric as i32);
            }
        }
        let shown_plan = if state == State::Canceled {
            &s.plan_id
        } else {
            &plan.id
        };
        let tier = self
            .plan(shown_plan)
            .await?
            .map_or(pb::PlanTier::Free, |p| p.tier);
        Ok(pb::Subscription {
            name: SubscriptionName::new(&s.organization_id).to_string(),
            plan: plan_name(shown_plan),
            plan_tier: tier as i32,
            billing_account: s
                .billing_account_id
                .as_ref()
                .map(|a| BillingAccountName::new(&s.workspace_id, a).to_string())
                .unwrap_or_default(),
            state: state.to_pb() as i32,
            extra_seats: s.extra_seats,
            limit_overrides: Some(s.limit_overrides.to_pb()),
            feature_overrides: s
                .feature_overrides
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            limits: Some(limits.to_pb()),
            features: features.into_iter().collect(),
            over_limit_metrics: over,
            trial_end_time: s.trial_end_us.map(timestamp),
            current_period_start_time: Some(timestamp(metric::month_start(now))),
            current_period_end_time: Some(timestamp(metric::next_month(now))),
            cancel_at_period_end: s.cancel_at_us.is_some() && state != State::Canceled,
            cancel_time: s
                .canceled_at_us
                .or(s.cancel_at_us.filter(|_| state == State::Canceled))
                .map(timestamp),
            provider_subscription_id: s.provider_subscription_id.clone(),
            etag: etag(s.version),
            create_time: Some(timestamp(s.created_at_us)),
            update_time: Some(timestamp(s.updated_at_us)),
        })
    }

    /// The subscription of a root organization the caller may `need`, or
    /// NOT_FOUND / PERMISSION_DENIED / FAILED_PRECONDITION (not a root).
    async fn root_for(
        &self,
        caller: &Caller,
        organization_id: &str,
        need: Need,
    ) -> Result<NodeRow> {
        self.authorize(caller, &[organization_id], need, "subscription")
            .await?;
        self.root(caller, organization_id).await
    }

    /// A root organization, or NOT_FOUND / FAILED_PRECONDITION (not a root).
    async fn root(&self, caller: &Caller, organization_id: &str) -> Result<NodeRow> {
        let node = self.node(caller, organization_id).await?;
        if node.parent_id.is_some() {
            return Err(Refusal::NotARootOrganization.into());
        }
        Ok(node)
    }

    /// A plan the organization may subscribe to, or FAILED_PRECONDITION.
    async fn subscribable(&self, plan_id: &str, organization_id: &str) -> Result<Plan> {
        let plan = self.plan(plan_id).await?.ok_or_else(|| not_found("plan"))?;
        if plan
            .offered_to
            .as_deref()
            .is_some_and(|o| o != organization_id)
        {
            return Err(not_found("plan"));
        }
        if plan.archived {
            return Err(Refusal::PlanArchived.into());
        }
        Ok(plan)
    }

    /// Checks that `account` may pay for `node`'s subscription to `plan`.
    async fn check_payer(
        &self,
        node: &NodeRow,
        account_id: Option<&str>,
        plan: &Plan,
    ) -> Result<()> {
        let Some(account_id) = account_id else {
            if plan.body.is_free() {
                return Ok(());
            }
            return Err(Refusal::BillingAccountRequired.into());
        };
        let account = store::account(self.store.pool(), &node.workspace_id, account_id)
            .await?
            .ok_or_else(|| not_found("billing account"))?;
        if account.state == "closed" {
            return Err(Refusal::BillingAccountClosed.into());
        }
        if account
            .organization_id
            .as_deref()
            .is_some_and(|o| o != node.id)
        {
            return Err(Refusal::BillingAccountAssignedElsewhere.into());
        }
        if !plan.body.is_free() && account.currency_code != plan.body.currency_code {
            return Err(Refusal::CurrencyMismatch {
                plan: plan.body.currency_code.clone(),
                account: account.currency_code,
            }
            .into());
        }
        Ok(())
    }

    /// Writes a changed subscription and its `billing.subscription.changed`
    /// event.
    async fn save_changed(
        &self,
        tx: &mut Write,
        caller: &Caller,
        before: &SubscriptionRow,
        after: &SubscriptionRow,
        changed: Vec<String>,
    ) -> Result<()> {
        store::save_subscription(tx, after).await?;
        self.emit_changed(
            tx,
            caller.actor(),
            Some(&caller.request),
            &before.plan_id,
            after,
            changed,
        )
        .await
    }

    /// Appends the `billing.subscription.changed` event of a change from
    /// `old_plan_id` to `after`, with the limits `after` gives.
    pub(crate) async fn emit_changed(
        &self,
        tx: &mut Write,
        actor: events::Actor,
        request: Option<&events::RequestContext>,
        old_plan_id: &str,
        after: &SubscriptionRow,
        changed: Vec<String>,
    ) -> Result<()> {
        let (_, limits) = self.subscription_limits(Some(after), now_micros()).await?;
        self.emit_for_subscription(
            tx,
            actor,
            request,
            &after.organization_id,
            &events::SubscriptionChanged {
                organization_id: after.organization_id.clone(),
                old_plan_id: old_plan_id.to_string(),
                new_plan_id: after.plan_id.clone(),
                limits: limits.to_events(),
                over_limit_metrics: Vec::new(),
                changed_fields: changed,
            },
        )
        .await
    }

    /// After a change that may lower limits: emits `billing.limit.exceeded`
    /// for each metric now over, and returns the subscription as shown.
    async fn after_change(
        &self,
        caller: &Caller,
        node: &NodeRow,
        s: &SubscriptionRow,
    ) -> Result<pb::Subscription> {
        let view = self.subscription_view(node, s).await?;
        if !view.over_limit_metrics.is_empty() {
            let metrics: Vec<Metric> = view
                .over_limit_metrics
                .iter()
                .filter_map(|m| Metric::try_from(*m).ok())
                .collect();
            let entitlements = self.entitlements(node, &metrics, now_micros()).await?;
            let mut tx = self.begin().await?;
            self.report_exceeded(&mut tx, caller, node, &entitlements)
                .await?;
            self.commit(tx).await?;
        }
        Ok(view)
    }
}

/// The `SubscriptionService` handler.
#[derive(Debug, Clone)]
pub struct SubscriptionApi(pub Core);

impl SubscriptionApi {
    async fn get(
        &self,
        caller: Caller,
        request: pb::GetSubscriptionRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let id = SubscriptionName::parse("name", &request.name)?.organization;
        let node = core.root_for(&caller, &id, Need::Read).await?;
        let s = store::subscription(core.store.pool(), &id)
            .await?
            .ok_or_else(|| not_found("subscription"))?;
        core.subscription_view(&node, &s).await
    }
}

#[tonic::async_trait]
impl pb::subscription_service_server::SubscriptionService for SubscriptionApi {
    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::GetSubscriptionResponse>, Status> {
        let subscription = Some(serve(request, |caller, request| self.get(caller, request)).await?);
        Ok(Response::new(pb::GetSubscriptionResponse { subscription }))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> std::result::Result<Response<pb::SubscribeResponse>, Status> {
        let subscription =
            Some(serve(request, |caller, request| self.subscribe(caller, request)).await?);
        Ok(Response::new(pb::SubscribeResponse { subscription }))
    }

    async fn change_plan(
        &self,
        request: Request<pb::ChangePlanRequest>,
    ) -> std::result::Result<Response<pb::ChangePlanResponse>, Status> {
        let subscription =
            Some(serve(request, |caller, request| self.change_plan(caller, request)).await?);
        Ok(Response::new(pb::ChangePlanResponse { subscription }))
    }

    async fn update_subscription(
        &self,
        request: Request<pb::UpdateSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::UpdateSubscriptionResponse>, Status> {
        let subscription =
            Some(serve(request, |caller, request| self.update(caller, request)).await?);
        Ok(Response::new(pb::UpdateSubscriptionResponse {
            subscription,
        }))
    }

    async fn cancel_subscription(
        &self,
        request: Request<pb::CancelSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::CancelSubscriptionResponse>, Status> {
        let subscription =
            Some(serve(request, |caller, request| self.cancel(caller, request)).await?);
        Ok(Response::new(pb::CancelSubscriptionResponse {
            subscription,
        }))
    }
}

mod cancel;
mod subscribe;
mod update;

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(state: State) -> SubscriptionRow {
        let node = NodeRow {
            id: "o".into(),
            parent_id: None,
            root_id: "o".into(),
            workspace_id: "w".into(),
            path: "/o/".into(),
            deleted: false,
        };
        SubscriptionRow {
            state: state.as_str().into(),
            ..free_subscription(&node, 0)
        }
    }

    #[test]
    fn trials_end_and_cancellations_come_due_on_their_own() {
        let trial = SubscriptionRow {
            trial_end_us: Some(100),
            ..subscription(State::Trialing)
        };
        assert_eq!(state_at(&trial, 99), State::Trialing);
        assert_eq!(state_at(&trial, 100), State::Active);
        let leaving = SubscriptionRow {
            cancel_at_us: Some(500),
            ..subscription(State::PastDue)
        };
        assert_eq!(state_at(&leaving, 499), State::PastDue);
        assert_eq!(state_at(&leaving, 500), State::Canceled);
        assert_eq!(state_at(&subscription(State::Canceled), 0), State::Canceled);
    }
}
