//! UpdateSubscription: the per-customer overrides (platform
//! administrators only), the paying account and the extra seats.

use super::*;

impl SubscriptionApi {
    pub(super) async fn update(
        &self,
        caller: Caller,
        request: pb::UpdateSubscriptionRequest,
    ) -> Result<pb::Subscription> {
        let core = &self.0;
        let given = request
            .subscription
            .ok_or_else(|| Error::invalid_field("subscription", "is required"))?;
        let id = SubscriptionName::parse("subscription.name", &given.name)?.organization;
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
        let mut tx = core.begin().await?;
        let before = store::subscription(&mut **tx, &id)
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
}

fn set_override(limits: &mut Limits, metric: Metric, value: Option<i64>) {
    if let Some(slot) = limits.slot(metric) {
        *slot = value;
    }
}
