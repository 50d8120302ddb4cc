//! `BillingFeedService`: the services that own what plans count hand
//! billing the events of their writes before those writes return (see
//! `tenantry_kit::follow`), so that usage and quota decisions follow them
//! at once. A call's events go through the same code as the bus consumer's
//! (`Core::apply_events`), in one transaction, each claimed under the same
//! consumer name with its effect: whichever path comes first counts it, the
//! other finds it claimed.

use tenantry_kit::follow::admit;
use tenantry_proto::tenantry::billing::v1 as pb;
use tonic::{Request, Response, Status};

use crate::{Core, NAME};

/// The `BillingFeedService` handler.
#[derive(Debug, Clone)]
pub struct BillingFeedApi(pub Core);

#[tonic::async_trait]
impl pb::billing_feed_service_server::BillingFeedService for BillingFeedApi {
    async fn apply_events(
        &self,
        request: Request<pb::ApplyEventsRequest>,
    ) -> Result<Response<pb::ApplyEventsResponse>, Status> {
        let events = admit(request, |r| r.events, (NAME, "billing.feed.apply"))?;
        self.0.apply_events(events).await?;
        Ok(Response::new(pb::ApplyEventsResponse {}))
    }
}
