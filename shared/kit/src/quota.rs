//! What a service answers its own client when billing's `CheckQuota` says
//! no: one mapping for every service that asks (organization before it
//! creates organizations, teams and projects; rbac before it adds a seat).

use tenantry_proto::tenantry::billing::v1 as billing_pb;

use crate::error::{Code, Error};

/// The error for a denied quota check of `metric`: FAILED_PRECONDITION
/// (`SUBSCRIPTION_PAST_DUE`) when the subscription is past due, otherwise
/// RESOURCE_EXHAUSTED (`QUOTA_EXCEEDED`) with the metric, limit, usage and
/// the organization whose limit decided in ErrorInfo.
pub fn denied(
    domain: &'static str,
    metric: billing_pb::Metric,
    answer: &billing_pb::CheckQuotaResponse,
) -> Error {
    let metric_name = metric.as_str_name();
    let past_due = answer.reason() == billing_pb::check_quota_response::Reason::SubscriptionPastDue;
    let mut error = if past_due {
        Error::new(
            Code::FailedPrecondition,
            "SUBSCRIPTION_PAST_DUE",
            "the subscription is past due; creation is paused until it is paid",
        )
    } else {
        Error::new(
            Code::ResourceExhausted,
            "QUOTA_EXCEEDED",
            format!("the limit of {metric_name} is reached"),
        )
    }
    .with_domain(domain)
    .with_metadata("metric", metric_name)
    .with_metadata("used", answer.used);
    if let Some(limit) = answer.limit {
        error = error.with_metadata("limit", limit);
    }
    if !answer.source_organization.is_empty() {
        error = error.with_metadata("limit_organization", &answer.source_organization);
    }
    error
}
