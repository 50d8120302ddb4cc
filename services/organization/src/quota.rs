//! Quotas, asked of the billing service before anything is created: the
//! one place the organization service talks to billing.
//!
//! The call carries the caller's own token. Over the quota is
//! RESOURCE_EXHAUSTED, a past-due subscription FAILED_PRECONDITION, with the
//! limit, usage and metric in ErrorInfo (`kit::quota`). When billing cannot
//! answer, creation fails (UNAVAILABLE),
//! except in a deployment that runs no billing service at all (it answers
//! UNIMPLEMENTED, or `organization.check_quotas` is off): there are no plans,
//! so no limits.

use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::names::OrganizationName;
use tenantry_kit::peer::PeerChannel;
use tenantry_proto::tenantry::billing::v1 as billing_pb;

pub use billing_pb::Metric;

use crate::access::Caller;

/// The client of billing's `CheckQuota`.
#[derive(Debug, Clone)]
pub struct Quotas {
    billing: PeerChannel,
    enabled: bool,
}

impl Quotas {
    /// A client of billing over `billing`; when `enabled` is false every
    /// check passes without a call.
    pub fn new(billing: PeerChannel, enabled: bool) -> Quotas {
        Quotas { billing, enabled }
    }

    /// Succeeds when `organization_id` may add one more of `metric`, and
    /// then holds that one for the object `reservation` (its id) until the
    /// object's event is counted, so that the next create already sees it.
    pub async fn ensure(
        &self,
        caller: &Caller,
        organization_id: &str,
        metric: Metric,
        reservation: &str,
    ) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let mut client = billing_pb::entitlement_service_client::EntitlementServiceClient::new(
            self.billing.clone(),
        );
        let request = tenantry_kit::request::on_behalf(
            caller.bearer.as_ref(),
            billing_pb::CheckQuotaRequest {
                organization: OrganizationName::new(organization_id).to_string(),
                metric: metric as i32,
                delta: 1,
                reservation_id: reservation.to_string(),
            },
        );
        let answer = match client.check_quota(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::debug!("billing serves no quotas; creation is not limited");
                return Ok(());
            }
            Err(status) => {
                return Err(Error::new(
                    Code::Unavailable,
                    "DEPENDENCY_UNAVAILABLE",
                    "the billing service is unavailable",
                )
                .with_domain("organization")
                .with_source(anyhow::anyhow!(
                    "{}: {}",
                    status.code(),
                    status.message()
                )));
            }
        };
        if answer.allowed {
            return Ok(());
        }
        Err(tenantry_kit::quota::denied("organization", metric, &answer))
    }

    /// Gives back what [`ensure`](Self::ensure) held for a create that
    /// failed. Best effort: a reservation that is not released lapses.
    pub async fn release(
        &self,
        caller: &Caller,
        organization_id: &str,
        metric: Metric,
        reservation: &str,
    ) {
        if !self.enabled {
            return;
        }
        let mut client = billing_pb::entitlement_service_client::EntitlementServiceClient::new(
            self.billing.clone(),
        );
        let request = tenantry_kit::request::on_behalf(
            caller.bearer.as_ref(),
            billing_pb::ReleaseQuotaRequest {
                organization: OrganizationName::new(organization_id).to_string(),
                metric: metric as i32,
                reservation_id: reservation.to_string(),
            },
        );
        if let Err(status) = client.release_quota(request).await
            && status.code() != tonic::Code::Unimplemented
        {
            tracing::warn!(code = ?status.code(), "releasing a quota reservation failed; it lapses");
        }
    }
}
