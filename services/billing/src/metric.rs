//! Metrics: which ones exist, which are metered, how a plan limits each, and
//! the billing periods metered ones are counted in.
//!
//! Billing periods are calendar months in UTC for every subscription, so a
//! period is a pure function of a time: no stored anchor can drift between
//! replicas, and usage recorded anywhere lands in the same period.

use chrono::{Datelike, TimeZone, Utc};
use tenantry_kit::error::Result;
use tenantry_proto::tenantry::billing::v1 as pb;

use crate::error::Error as Refusal;

pub use pb::Metric;

/// Every metric, in the enum's order.
pub const ALL: [Metric; 6] = [
    Metric::Projects,
    Metric::Members,
    Metric::Teams,
    Metric::SubOrganizations,
    Metric::ApiKeys,
    Metric::Deployments,
];

/// The metric a request names, or INVALID_ARGUMENT (`UNKNOWN_METRIC`).
pub fn parse(field: &str, value: i32) -> Result<Metric> {
    match Metric::try_from(value) {
        Ok(metric) if metric != Metric::Unspecified => Ok(metric),
        _ => Err(Refusal::UnknownMetric {
            field: field.to_string(),
        }
        .into()),
    }
}

/// A metric stored by its enum name (`METRIC_PROJECTS`).
pub fn from_name(name: &str) -> Option<Metric> {
    Metric::from_str_name(name).filter(|m| *m != Metric::Unspecified)
}

/// Whether the metric is counted per period from `RecordUsage` (rather than
/// kept current from events).
pub fn is_metered(metric: Metric) -> bool {
    metric == Metric::Deployments
}

/// The period a count of `metric` at `time_us` belongs to: 0 for
/// allocation metrics, which never reset.
pub fn period_of(metric: Metric, time_us: i64) -> i64 {
    if is_metered(metric) {
        month_start(time_us)
    } else {
        0
    }
}

/// The start of the calendar month (UTC) containing `time_us`.
pub fn month_start(time_us: i64) -> i64 {
    let time = Utc
        .timestamp_micros(time_us)
        .single()
        .unwrap_or_else(Utc::now);
    Utc.with_ymd_and_hms(time.year(), time.month(), 1, 0, 0, 0)
        .single()
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

/// The start of the month after the one containing `time_us`.
pub fn next_month(time_us: i64) -> i64 {
    let start = month_start(time_us);
    // 32 days after the first of a month is always inside the next one.
    month_start(start + 32 * 86_400 * 1_000_000)
}

/// The start of the month before the one containing `time_us`.
pub fn previous_month(time_us: i64) -> i64 {
    month_start(month_start(time_us) - 1)
}
