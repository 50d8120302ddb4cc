//! Choosing a plan: Subscribe, and ChangePlan of a live subscription.

use super::*;

impl SubscriptionApi {
    pub(super) async fn subscribe(
        &self,
        caller: Caller,
        request: pb::SubscribeRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let id = SubscriptionName::parse("name", &request.name)?.organization;
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
        let mut tx = core.begin().await?;
        if store::REQUESTS
            .replayed(
                &mut **tx,
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
            return core.subscription_view(&node, &s).await;
        }
        let existing = store::subscription(&mut **tx, &id).await?;
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
        core.emit_for_subscription(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            &id,
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

    pub(super) async fn change_plan(
        &self,
        caller: Caller,
        request: pb::ChangePlanRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let id = SubscriptionName::parse("name", &request.name)?.organization;
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
        let mut tx = core.begin().await?;
        let before = store::subscription(&mut **tx, &id)
            .await?
            .ok_or_else(|| not_found("subscription"))?;
        if store::REQUESTS
            .replayed(
                &mut **tx,
                &caller.resource_name(),
                "ChangePlan",
                &request.request_id,
            )
            .await?
            .is_some()
        {
            drop(tx);
            return core.subscription_view(&node, &before).await;
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
}
