//! What a service answers its own client when billing's `CheckQuota` says
//! no: one mapping for every service that asks (organization before it
//! creates organizations, teams and projects; rbac before it adds a seat).

use tenantry_proto::tenantry::billing::v1 as billing_pb;

use crate::error::{Code, Error};

/// A metric in words, singular and plural: ("project", "projects").
pub fn metric_words(metric: billing_pb::Metric) -> (&'static str, &'static str) {
    use billing_pb::Metric as M;
    match metric {
        M::Projects => ("project", "projects"),
        M::Members => ("seat", "seats (members and pending invitations)"),
        M::Teams => ("team", "teams"),
        M::SubOrganizations => ("sub-organization", "sub-organizations and departments"),
        M::ApiKeys => ("active API key", "active API keys"),
        M::Deployments => ("deployment a month", "deployments a month"),
        M::Unspecified => ("unit", "units"),
    }
}

/// A refused quota in words: "the plan allows 3 projects; 3 are in use".
fn in_words(metric: billing_pb::Metric, answer: &billing_pb::CheckQuotaResponse) -> String {
    let (one, many) = metric_words(metric);
    let whose = match answer.source() {
        billing_pb::LimitSource::SubscriptionOverride => "the subscription's negotiated limit",
        billing_pb::LimitSource::Organization => "the organization's own limit",
        billing_pb::LimitSource::Ancestor => "a limit set higher in the organization tree",
        _ => "the plan",
    };
    match answer.limit {
        Some(limit) => format!(
            "{whose} allows {limit} {}; {} {} in use: upgrade the plan or free one first",
            if limit == 1 { one } else { many },
            answer.used,
            if answer.used == 1 { "is" } else { "are" }
        ),
        None => format!("{whose} allows no more {many}"),
    }
}

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
            in_words(metric, answer),
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
