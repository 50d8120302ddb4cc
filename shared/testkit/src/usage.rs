//! Billing's counters as tests read them: what `GetUsage` answers.

use tenantry_proto::tenantry::billing::v1 as billing;
use tonic::transport::Channel;

use crate::authed;
use crate::clients::Usage;

/// How much of `metric` `organization` uses itself in the current period,
/// as `GetUsage` answers the holder of `token` through `channel`.
pub async fn own_usage(
    channel: &Channel,
    token: &str,
    organization: &str,
    metric: billing::Metric,
) -> i64 {
    Usage::new(channel.clone())
        .get_usage(authed(
            billing::GetUsageRequest {
                organization: format!("organizations/{organization}"),
                metric: metric as i32,
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .usages
        .remove(0)
        .own_quantity
}
