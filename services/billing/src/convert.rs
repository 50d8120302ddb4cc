//! Proto ↔ domain conversions of the billing service, in one place (see
//! STYLE.md): how its rows and domain values (billing accounts, usage
//! records, subscription states, effective limits, plans and their limits)
//! become the resources clients see, and how the plans and limits a request
//! gives become domain values. The handlers call these.

use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{BillingAccountName, OrganizationName, UsageRecordName};
use tenantry_kit::request::etag;
use tenantry_proto::tenantry::billing::v1 as pb;

use crate::catalog::{Interval, Limits, MeteredPrice, Plan, PlanBody, plan_name};
use crate::entitlements::{Candidate, Entitlement};
use crate::metric;
use crate::store::{AccountRow, UsageRecordRow};
use crate::subscriptions::State;
use crate::timestamp;

/// A workspace billing mode as stored, as the API shows it.
pub(crate) fn mode_to_pb(mode: &str) -> pb::BillingMode {
    match mode {
        "assigned" => pb::BillingMode::Assigned,
        "pooled" => pb::BillingMode::Pooled,
        _ => pb::BillingMode::Single,
    }
}

/// A billing account state as stored, as the API shows it.
pub(crate) fn account_state_to_pb(state: &str) -> pb::billing_account::State {
    match state {
        "past_due" => pb::billing_account::State::PastDue,
        "closed" => pb::billing_account::State::Closed,
        _ => pb::billing_account::State::Active,
    }
}

/// A billing account as clients see it, in a workspace of billing mode
/// `mode`.
pub(crate) fn account_view(account: &AccountRow, mode: &str) -> pb::BillingAccount {
    pb::BillingAccount {
        name: BillingAccountName::new(&account.workspace_id, &account.id).to_string(),
        display_name: account.display_name.clone(),
        billing_mode: mode_to_pb(mode) as i32,
        currency_code: account.currency_code.clone(),
        organization: account
            .organization_id
            .as_ref()
            .map(|o| OrganizationName::new(o).to_string())
            .unwrap_or_default(),
        billing_email: account.billing_email.clone(),
        billing_address: account.billing_address.clone(),
        tax_id: account.tax_id.clone(),
        provider: account.provider.clone(),
        provider_customer_id: account.provider_customer_id.clone(),
        state: account_state_to_pb(&account.state) as i32,
        etag: etag(account.version),
        create_time: Some(timestamp(account.created_at_us)),
        update_time: Some(timestamp(account.updated_at_us)),
    }
}

/// The resource name of a usage record.
pub(crate) fn usage_record_name(r: &UsageRecordRow) -> String {
    UsageRecordName::new(&r.organization_id, &r.id).to_string()
}

/// A usage record as clients see it.
pub(crate) fn usage_record_view(r: &UsageRecordRow) -> pb::UsageRecord {
    pb::UsageRecord {
        name: usage_record_name(r),
        metric: metric::from_name(&r.metric).unwrap_or_default() as i32,
        quantity: r.quantity,
        idempotency_key: r.idempotency_key.clone(),
        usage_time: Some(timestamp(r.usage_at_us)),
        period_start_time: Some(timestamp(r.period_us)),
        recorded_by: r.recorded_by.clone(),
        create_time: Some(timestamp(r.created_at_us)),
    }
}

impl State {
    /// The state as the API shows it.
    pub(crate) fn to_pb(self) -> pb::subscription::State {
        match self {
            State::Trialing => pb::subscription::State::Trialing,
            State::Active => pb::subscription::State::Active,
            State::PastDue => pb::subscription::State::PastDue,
            State::Canceled => pb::subscription::State::Canceled,
        }
    }
}

impl Candidate {
    /// The candidate as the API shows it.
    pub(crate) fn to_pb(&self) -> pb::LimitCandidate {
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

impl Entitlement {
    /// The effective limit as the API shows it.
    pub(crate) fn to_pb(&self) -> pb::EffectiveLimit {
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
}

impl Limits {
    /// The limits a request gives.
    pub(crate) fn from_pb(limits: &pb::PlanLimits) -> Limits {
        Limits {
            projects: limits.projects,
            members: limits.members,
            teams: limits.teams,
            sub_organizations: limits.sub_organizations,
            api_keys: limits.api_keys,
            deployments_per_month: limits.deployments_per_month,
            audit_retention_days: limits.audit_retention_days,
            rate_limits_per_minute: limits
                .rate_limits_per_minute
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// The limits as the API shows them.
    pub(crate) fn to_pb(&self) -> pb::PlanLimits {
        pb::PlanLimits {
            projects: self.projects,
            members: self.members,
            teams: self.teams,
            sub_organizations: self.sub_organizations,
            api_keys: self.api_keys,
            deployments_per_month: self.deployments_per_month,
            audit_retention_days: self.audit_retention_days,
            rate_limits_per_minute: self
                .rate_limits_per_minute
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

impl PlanBody {
    /// The body of the plan a request gives; INVALID_ARGUMENT naming the
    /// field when it does not convert.
    pub(crate) fn from_pb(plan: &pb::Plan) -> Result<PlanBody> {
        let trial_secs = plan.trial_period.as_ref().map(|d| d.seconds).unwrap_or(0);
        if trial_secs % 86_400 != 0 || plan.trial_period.as_ref().is_some_and(|d| d.nanos != 0) {
            return Err(Error::invalid_field(
                "plan.trial_period",
                "must be whole days from 0 to 365",
            ));
        }
        Ok(PlanBody {
            display_name: plan.display_name.clone(),
            description: plan.description.clone(),
            limits: Limits::from_pb(&plan.limits.clone().unwrap_or_default()),
            features: plan.features.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            currency_code: plan.currency_code.clone(),
            billing_interval: match plan.billing_interval() {
                pb::BillingInterval::Yearly => Interval::Yearly,
                _ => Interval::Monthly,
            },
            base_price_minor_units: plan.base_price_minor_units,
            included_seats: plan.included_seats,
            seat_price_minor_units: plan.seat_price_minor_units,
            metered_prices: plan
                .metered_prices
                .iter()
                .map(|p| MeteredPrice {
                    metric: p.metric().as_str_name().to_string(),
                    included_quantity: p.included_quantity,
                    unit_price_minor_units: p.unit_price_minor_units,
                })
                .collect(),
            trial_days: trial_secs / 86_400,
        })
    }
}

impl Plan {
    /// The plan as the API shows it.
    pub(crate) fn to_pb(&self) -> pb::Plan {
        let body = &self.body;
        pb::Plan {
            name: plan_name(&self.id),
            tier: self.tier as i32,
            display_name: body.display_name.clone(),
            description: body.description.clone(),
            limits: Some(body.limits.to_pb()),
            features: body.features.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            currency_code: body.currency_code.clone(),
            billing_interval: match body.billing_interval {
                Interval::Monthly => pb::BillingInterval::Monthly,
                Interval::Yearly => pb::BillingInterval::Yearly,
            } as i32,
            base_price_minor_units: body.base_price_minor_units,
            included_seats: body.included_seats,
            seat_price_minor_units: body.seat_price_minor_units,
            metered_prices: body
                .metered_prices
                .iter()
                .map(|p| pb::MeteredPrice {
                    metric: crate::metric::from_name(&p.metric).unwrap_or_default() as i32,
                    included_quantity: p.included_quantity,
                    unit_price_minor_units: p.unit_price_minor_units,
                })
                .collect(),
            trial_period: (body.trial_days > 0).then(|| prost_types::Duration {
                seconds: body.trial_days * 86_400,
                nanos: 0,
            }),
            offered_to: self
                .offered_to
                .as_ref()
                .map(|id| OrganizationName::new(id).to_string())
                .unwrap_or_default(),
            archived: self.archived,
            etag: tenantry_kit::request::etag(self.version),
            create_time: Some(tenantry_kit::db::timestamp(self.created_at_us)),
            update_time: Some(tenantry_kit::db::timestamp(self.updated_at_us)),
        }
    }
}
