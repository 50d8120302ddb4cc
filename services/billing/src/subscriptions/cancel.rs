//! CancelSubscription: at once, or at the end of the period.

use super::*;

impl SubscriptionApi {
    pub(super) async fn cancel(
        &self,
        caller: Caller,
        request: pb::CancelSubscriptionRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let id = SubscriptionName::parse("name", &request.name)?.organization;
        let node = core.root_for(&caller, &id, Need::Manage).await?;
        let now = now_micros();
        let mut tx = core.begin().await?;
        let before = store::subscription(&mut **tx, &id)
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
        core.emit_for_subscription(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            &id,
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
