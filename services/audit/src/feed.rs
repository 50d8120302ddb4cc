//! `AuditFeedService`: every service hands the log the events of its
//! writes before those writes return (see `tenantry_kit::follow`), so that
//! the writer's next read of the log shows them. Each event goes through
//! the same [`Core::ingest`] as the bus consumer, claimed under the same
//! consumer name in the transaction that appends it: whichever path comes
//! first appends it, the other finds it claimed.

use tenantry_kit::follow::admit;
use tenantry_proto::tenantry::audit::v1 as pb;
use tonic::{Request, Response, Status};

use crate::{Core, NAME};

/// The `AuditFeedService` handler.
#[derive(Debug, Clone)]
pub struct AuditFeedApi(pub Core);

#[tonic::async_trait]
impl pb::audit_feed_service_server::AuditFeedService for AuditFeedApi {
    async fn apply_events(
        &self,
        request: Request<pb::ApplyEventsRequest>,
    ) -> Result<Response<pb::ApplyEventsResponse>, Status> {
        let events = admit(request, |r| r.events, (NAME, "audit.feed.apply"))?;
        for event in events {
            self.0.ingest(event).await?;
        }
        Ok(Response::new(pb::ApplyEventsResponse {}))
    }
}
