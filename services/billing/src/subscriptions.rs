//! Subscriptions: the singleton `organizations/{root}/subscription`.
//!
//! Every root organization gets a FREE subscription when it is created
//! (from `organization.created`). A plan change applies its limits at once;
//! a downgrade below current usage deletes nothing and lists the metrics
//! that are over (creation of those is refused until usage drops). Trials
//! end, and cancellations at period end take effect, on their own: reads
//! apply them at once ([`state_at`]) and the sweeper writes them back with
//! their events.

use std::collections::BTreeMap;

use tenantry_kit::access::Caller;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::WorkspaceName;
use tenantry_kit::request::{check_etag, etag, update_mask};
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::accounts::{account_name, optional_account_id};
use crate::catalog::{Limits, Plan, plan_id, plan_name};
use crate::error::Error as Refusal;
use crate::metric::{self, Metric};
use crate::store::{self, NodeRow, SubscriptionRow, Tx};
use crate::{Core, caller, not_found, timestamp};

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

    fn to_pb(self) -> pb::subscription::State {
        match self {
            State::Trialing => pb::subscription::State::Trialing,
            State::Active => pb::subscription::State::Active,
            State::PastDue => pb::subscription::State::PastDue,
            State::Canceled => pb::subscription::State::Canceled,
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

/// The pattern of a subscription's name: kit has no name type for it.
const SUBSCRIPTION_PATTERN: &str = "organizations/{}/subscription";

/// The resource name of a root organization's subscription.
pub(crate) fn subscription_name(organization_id: &str) -> String {
    format!("organizations/{organization_id}/subscription")
}

/// The organization id of the subscription name in request field `field`,
/// or INVALID_ARGUMENT.
fn parse_subscription(field: &str, name: &str) -> Result<String> {
    Ok(tenantry_kit::id::parse_name(field, SUBSCRIPTION_PATTERN, name)?[0].to_string())
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
    /// The API view of a subscription, with its limits, features, usage
    /// above them and current period.
    pub(crate) async fn subscription_view(&self, s: &SubscriptionRow) -> Result<pb::Subscription> {
        let now = now_micros();
        let state = state_at(s, now);
        let (plan, limits) = self.subscription_limits(Some(s), now).await?;
        let mut features = plan.body.features.clone();
        if state != State::Canceled {
            features.extend(s.feature_overrides.iter().map(|(k, v)| (k.clone(), *v)));
        }
        let mut over = Vec::new();
        if let Some(node) = store::node(self.store.pool(), &s.organization_id).await? {
            for e in self.entitlements(&node, &metric::ALL, now).await? {
                if e.limit().is_some_and(|limit| {
                    e.candidates
                        .iter()
                        .any(|c| c.value == Some(limit) && c.used > limit)
                }) {
                    over.push(e.metric as i32);
                }
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
            name: subscription_name(&s.organization_id),
            plan: plan_name(shown_plan),
            plan_tier: tier as i32,
            billing_account: s
                .billing_account_id
                .as_ref()
                .map(|a| account_name(&s.workspace_id, a))
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
        tx: &mut Tx,
        caller: &Caller,
        before: &SubscriptionRow,
        after: &SubscriptionRow,
        changed: Vec<String>,
    ) -> Result<()> {
        store::save_subscription(tx, after).await?;
        let (_, limits) = self.subscription_limits(Some(after), now_micros()).await?;
        self.emit(
            tx,
            caller.actor(),
            Some(&caller.request),
            ("subscription", &after.organization_id),
            Some((&after.organization_id, &after.organization_id)),
            &events::SubscriptionChanged {
                organization_id: after.organization_id.clone(),
                old_plan_id: before.plan_id.clone(),
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
        let view = self.subscription_view(s).await?;
        if !view.over_limit_metrics.is_empty() {
            let metrics: Vec<Metric> = view
                .over_limit_metrics
                .iter()
                .filter_map(|m| Metric::try_from(*m).ok())
                .collect();
            let entitlements = self.entitlements(node, &metrics, now_micros()).await?;
            let mut tx = self.store.begin().await?;
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
        let id = parse_subscription("name", &request.name)?;
        core.root_for(&caller, &id, Need::Read).await?;
        let s = store::subscription(core.store.pool(), &id)
            .await?
            .ok_or_else(|| not_found("subscription"))?;
        core.subscription_view(&s).await
    }

    async fn subscribe(
        &self,
        caller: Caller,
        request: pb::SubscribeRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let id = parse_subscription("name", &request.name)?;
        let plan_id = plan_id("plan", &request.plan)?;
        tenantry_kit::request::request_id(&request.request_id)?;
        if request.extra_seats < 0 {
            return Err(Error::invalid_field("extra_seats", "must not be negative"));
        }
        let account_id = optional_account_id("billing_account", &request.billing_account)?;
        let node = core.root_for(&caller, &id, Need::Manage).await?;
        let plan = core.subscribable(plan_id, &id).await?;
        core.check_payer(&node, account_id.as_deref(), &plan)
            .await?;
        let now = now_micros();
        let mut tx = core.store.begin().await?;
        if store::REQUESTS
            .replayed(
                &mut *tx,
                &caller.resource_name(),
                "Subscribe",
                &request.request_id,
            )
            .await?
            .is_some()
        {
            drop(tx);
            let s = store::subscription(core.store.pool(), &id)
                .await?
                .ok_or_else(|| not_found("subscription"))?;
            return core.subscription_view(&s).await;
        }
        let existing = store::subscription(&mut *tx, &id).await?;
        if let Some(existing) = &existing
            && state_at(existing, now) != State::Canceled
        {
            return Err(Refusal::SubscriptionExists.into());
        }
        let trial = plan.body.trial_days > 0 && !request.skip_trial;
        let s = SubscriptionRow {
            plan_id: plan.id.clone(),
            billing_account_id: account_id,
            state: if trial {
                State::Trialing
            } else {
                State::Active
            }
            .as_str()
            .into(),
            extra_seats: request.extra_seats,
            trial_end_us: trial.then(|| now + plan.body.trial_days * 86_400 * 1_000_000),
            version: existing.as_ref().map_or(1, |e| e.version + 1),
            created_at_us: now,
            ..free_subscription(&node, now)
        };
        store::save_subscription(&mut tx, &s).await?;
        store::REQUESTS
            .remember(
                &mut tx,
                &caller.resource_name(),
                "Subscribe",
                &request.request_id,
                &id,
            )
            .await?;
        let (_, limits) = core.subscription_limits(Some(&s), now).await?;
        core.emit(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            ("subscription", &id),
            Some((&id, &id)),
            &events::SubscriptionCreated {
                organization_id: id.clone(),
                plan_id: s.plan_id.clone(),
                billing_account_id: s.billing_account_id.clone().unwrap_or_default(),
                state: State::parse(&s.state).to_event() as i32,
                trial_end_time: s.trial_end_us.map(timestamp),
                limits: limits.to_events(),
            },
        )
        .await?;
        core.commit(tx).await?;
        core.after_change(&caller, &node, &s).await
    }

    async fn change_plan(
        &self,
        caller: Caller,
        request: pb::ChangePlanRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let id = parse_subscription("name", &request.name)?;
        let plan_id = plan_id("plan", &request.plan)?;
        tenantry_kit::request::request_id(&request.request_id)?;
        if request.extra_seats.is_some_and(|n| n < 0) {
            return Err(Error::invalid_field("extra_seats", "must not be negative"));
        }
        if !request.billing_account.is_empty() && request.new_billing_account.is_some() {
            return Err(Error::invalid_field(
                "new_billing_account",
                "must not be set together with billing_account",
            ));
        }
        let given_account = optional_account_id("billing_account", &request.billing_account)?;
        let node = core.root_for(&caller, &id, Need::Manage).await?;
        let plan = core.subscribable(plan_id, &id).await?;
        // The new account first: a refused plan change leaves it, and a retry
        // with the same request id finds it instead of making a second.
        let new_account = match request.new_billing_account {
            Some(account) => {
                let created = crate::accounts::BillingAccountApi(core.clone())
                    .create(
                        caller.clone(),
                        pb::CreateBillingAccountRequest {
                            parent: WorkspaceName::new(&node.workspace_id).to_string(),
                            billing_account: Some(account),
                            request_id: request.request_id.clone(),
                        },
                    )
                    .await?;
                optional_account_id("new_billing_account", &created.name)?
            }
            None => None,
        };
        let now = now_micros();
        let mut tx = core.store.begin().await?;
        let before = store::subscription(&mut *tx, &id)
            .await?
            .ok_or_else(|| not_found("subscription"))?;
        if store::REQUESTS
            .replayed(
                &mut *tx,
                &caller.resource_name(),
                "ChangePlan",
                &request.request_id,
            )
            .await?
            .is_some()
        {
            drop(tx);
            return core.subscription_view(&before).await;
        }
        if !request.etag.is_empty() {
            check_etag(&request.etag, before.version)?;
        }
        if state_at(&before, now) == State::Canceled {
            return Err(Refusal::SubscriptionCanceled.into());
        }
        let mut after = before.clone();
        let mut changed = Vec::new();
        if let Some(account) = given_account.or(new_account)
            && after.billing_account_id.as_deref() != Some(account.as_str())
        {
            after.billing_account_id = Some(account);
            changed.push("billing_account".to_string());
        }
        core.check_payer(&node, after.billing_account_id.as_deref(), &plan)
            .await?;
        if after.plan_id != plan.id {
            after.plan_id = plan.id.clone();
            changed.push("plan".to_string());
            // Overrides are negotiated per plan; a move to another plan
            // starts from that plan's own limits.
            if !after.limit_overrides.eq(&Limits::default()) || !after.feature_overrides.is_empty()
            {
                after.limit_overrides = Limits::default();
                after.feature_overrides.clear();
                changed.push("limit_overrides".into());
            }
        }
        if let Some(seats) = request.extra_seats
            && seats != after.extra_seats
        {
            after.extra_seats = seats;
            changed.push("extra_seats".into());
        }
        if State::parse(&after.state) == State::Trialing
            && after.plan_id != before.plan_id
            && plan.body.trial_days == 0
        {
            after.state = State::Active.as_str().into();
            after.trial_end_us = None;
        }
        after.version += 1;
        after.updated_at_us = now;
        core.save_changed(&mut tx, &caller, &before, &after, changed)
            .await?;
        store::REQUESTS
            .remember(
                &mut tx,
                &caller.resource_name(),
                "ChangePlan",
                &request.request_id,
                &id,
            )
            .await?;
        core.commit(tx).await?;
        core.after_change(&caller, &node, &after).await
    }

    async fn update(
        &self,
        caller: Caller,
        request: pb::UpdateSubscriptionRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let given = request
            .subscription
            .ok_or_else(|| Error::invalid_field("subscription", "is required"))?;
        let id = parse_subscription("subscription.name", &given.name)?;
        let paths = update_mask(
            request.update_mask.as_ref(),
            &[
                "limit_overrides",
                "limit_overrides.projects",
                "limit_overrides.members",
                "limit_overrides.teams",
                "limit_overrides.sub_organizations",
                "limit_overrides.api_keys",
                "limit_overrides.deployments_per_month",
                "limit_overrides.audit_retention_days",
                "limit_overrides.rate_limits_per_minute",
                "feature_overrides",
                "billing_account",
                "extra_seats",
            ],
        )?;
        let overrides = Limits::from_pb(&given.limit_overrides.clone().unwrap_or_default());
        overrides.validate("subscription.limit_overrides")?;
        if given.extra_seats < 0 {
            return Err(Error::invalid_field(
                "subscription.extra_seats",
                "must not be negative",
            ));
        }
        let touches_overrides = paths
            .iter()
            .any(|p| p.starts_with("limit_overrides") || *p == "feature_overrides");
        // Overrides are negotiated: platform administrators set them, on
        // any organization; the organization's own billing managers change
        // only its account and seats.
        let node = if touches_overrides {
            if !core.is_platform_admin(&caller).await? {
                core.authorize(&caller, &[&id], Need::Read, "subscription")
                    .await?;
                return Err(Error::permission_denied("platform.admin").with_domain(crate::NAME));
            }
            core.root(&caller, &id).await?
        } else {
            core.root_for(&caller, &id, Need::Manage).await?
        };
        let now = now_micros();
        let mut tx = core.store.begin().await?;
        let before = store::subscription(&mut *tx, &id)
            .await?
            .ok_or_else(|| not_found("subscription"))?;
        if !given.etag.is_empty() {
            check_etag(&given.etag, before.version)?;
        }
        let plan = core
            .plan(&before.plan_id)
            .await?
            .unwrap_or_else(|| core.free_plan().clone());
        if touches_overrides
            && !matches!(plan.tier, pb::PlanTier::Enterprise | pb::PlanTier::Custom)
        {
            return Err(Refusal::OverridesNotAllowed.into());
        }
        let mut after = before.clone();
        for path in &paths {
            match *path {
                "limit_overrides" => after.limit_overrides = overrides.clone(),
                "feature_overrides" => {
                    after.feature_overrides = given
                        .feature_overrides
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect()
                }
                "billing_account" => {
                    after.billing_account_id =
                        optional_account_id("subscription.billing_account", &given.billing_account)?
                }
                "extra_seats" => after.extra_seats = given.extra_seats,
                "limit_overrides.rate_limits_per_minute" => {
                    after.limit_overrides.rate_limits_per_minute =
                        overrides.rate_limits_per_minute.clone()
                }
                field => {
                    let field = field.trim_start_matches("limit_overrides.");
                    let metric = metric::ALL
                        .into_iter()
                        .find(|m| crate::catalog::limit_field(*m) == field);
                    match metric {
                        Some(metric) => {
                            set_override(&mut after.limit_overrides, metric, overrides.get(metric))
                        }
                        None => {
                            after.limit_overrides.audit_retention_days =
                                overrides.audit_retention_days
                        }
                    }
                }
            }
        }
        if after.billing_account_id != before.billing_account_id {
            core.check_payer(&node, after.billing_account_id.as_deref(), &plan)
                .await?;
        }
        after.version += 1;
        after.updated_at_us = now;
        let changed = paths.iter().map(|p| p.to_string()).collect();
        core.save_changed(&mut tx, &caller, &before, &after, changed)
            .await?;
        core.commit(tx).await?;
        core.after_change(&caller, &node, &after).await
    }

    async fn cancel(
        &self,
        caller: Caller,
        request: pb::CancelSubscriptionRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let id = parse_subscription("name", &request.name)?;
        let node = core.root_for(&caller, &id, Need::Manage).await?;
        let now = now_micros();
        let mut tx = core.store.begin().await?;
        let before = store::subscription(&mut *tx, &id)
            .await?
            .ok_or_else(|| not_found("subscription"))?;
        if !request.etag.is_empty() {
            check_etag(&request.etag, before.version)?;
        }
        if state_at(&before, now) == State::Canceled {
            return Err(Refusal::SubscriptionCanceledAlready.into());
        }
        let mut after = before.clone();
        let end = if request.immediately {
            after.state = State::Canceled.as_str().into();
            after.canceled_at_us = Some(now);
            now
        } else {
            let end = metric::next_month(now);
            after.cancel_at_us = Some(end);
            end
        };
        after.version += 1;
        after.updated_at_us = now;
        store::save_subscription(&mut tx, &after).await?;
        core.emit(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            ("subscription", &id),
            Some((&id, &id)),
            &events::SubscriptionCanceled {
                organization_id: id.clone(),
                plan_id: after.plan_id.clone(),
                immediately: request.immediately,
                end_time: Some(timestamp(end)),
            },
        )
        .await?;
        core.commit(tx).await?;
        core.after_change(&caller, &node, &after).await
    }
}

fn set_override(limits: &mut Limits, metric: Metric, value: Option<i64>) {
    if let Some(slot) = limits.slot(metric) {
        *slot = value;
    }
}

#[tonic::async_trait]
impl pb::subscription_service_server::SubscriptionService for SubscriptionApi {
    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::GetSubscriptionResponse>, Status> {
        let caller = caller(&request)?;
        let subscription = Some(self.get(caller, request.into_inner()).await?);
        Ok(Response::new(pb::GetSubscriptionResponse { subscription }))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> std::result::Result<Response<pb::SubscribeResponse>, Status> {
        let caller = caller(&request)?;
        let subscription = Some(self.subscribe(caller, request.into_inner()).await?);
        Ok(Response::new(pb::SubscribeResponse { subscription }))
    }

    async fn change_plan(
        &self,
        request: Request<pb::ChangePlanRequest>,
    ) -> std::result::Result<Response<pb::ChangePlanResponse>, Status> {
        let caller = caller(&request)?;
        let subscription = Some(self.change_plan(caller, request.into_inner()).await?);
        Ok(Response::new(pb::ChangePlanResponse { subscription }))
    }

    async fn update_subscription(
        &self,
        request: Request<pb::UpdateSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::UpdateSubscriptionResponse>, Status> {
        let caller = caller(&request)?;
        let subscription = Some(self.update(caller, request.into_inner()).await?);
        Ok(Response::new(pb::UpdateSubscriptionResponse {
            subscription,
        }))
    }

    async fn cancel_subscription(
        &self,
        request: Request<pb::CancelSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::CancelSubscriptionResponse>, Status> {
        let caller = caller(&request)?;
        let subscription = Some(self.cancel(caller, request.into_inner()).await?);
        Ok(Response::new(pb::CancelSubscriptionResponse {
            subscription,
        }))
    }
}

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
