//! `AuditFeedService`: every service hands the log the events of its
//! writes before those writes return (see `tenantry_kit::follow`), so that
//! the writer's next read of the log shows them. A call's events go through
//! the same code as the bus consumer's ([`Core::ingest_all`]), in one
//! transaction, each claimed under the same consumer name as it is
//! appended: whichever path comes first appends it, the other finds it
//! claimed.

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
        self.0.ingest_all(events).await?;
        Ok(Response::new(pb::ApplyEventsResponse {}))
    }
}
