//! `IndexService`: the other services hand the index the events of their
//! writes before those writes return (see `tenantry_kit::index`).
//!
//! The events go through the same [`Core::apply_events`] as the bus
//! consumer's, claimed by the same consumer name in the same transaction as
//! its effect: whichever path comes first applies it, the other finds it
//! claimed. The answer is a revision this replica has applied and that
//! covers every event of the call, whichever path applied it.

use tenantry_kit::auth::Principal;
use tenantry_kit::error::Error;
use tenantry_proto::tenantry::authz::v1 as pb;
use tonic::{Request, Response, Status};

use crate::live::token;
use crate::{Core, NAME};

/// The most events one call may carry.
pub const MAX_EVENTS: usize = 1000;

/// The `IndexService` handler.
#[derive(Debug, Clone)]
pub struct IndexApi(pub Core);

#[tonic::async_trait]
impl pb::index_service_server::IndexService for IndexApi {
    async fn apply_events(
        &self,
        request: Request<pb::ApplyEventsRequest>,
    ) -> Result<Response<pb::ApplyEventsResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        if principal.internal_service().is_none() {
            return Err(Error::permission_denied("authz.index.apply")
                .with_domain(NAME)
                .into());
        }
        let events = request.into_inner().events;
        if events.len() > MAX_EVENTS {
            return Err(Error::invalid_field(
                "events",
                format!("must hold at most {MAX_EVENTS} events"),
            )
            .into());
        }
        // An empty call is a writer asking, inside its transaction, whether
        // the index will take its events: answer from memory, without the
        // store (on SQLite the writer's transaction may hold it).
        if events.is_empty() {
            self.0.index.may_answer()?;
            return Ok(Response::new(pb::ApplyEventsResponse {
                applied_at: Some(token(self.0.index.applied())),
            }));
        }
        self.0.apply_events(events).await?;
        // An event the bus consumer claimed first is in the store, maybe not
        // yet in this replica's index: catch up to everything stored.
        self.0.index.catch_up().await?;
        let revision = self.0.index.applied();
        self.0.index.await_replicas(revision).await?;
        Ok(Response::new(pb::ApplyEventsResponse {
            applied_at: Some(token(revision)),
        }))
    }
}
