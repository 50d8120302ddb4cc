//! Handing a write's events to the authorization index before the write
//! returns, so that its consistency token covers them.
//!
//! The index learns about organizations, teams, projects and users from the
//! events of the services that own them. Through the bus alone it would
//! learn late: a creator would be denied on the organization they just
//! created, a deleted project would stay readable for a moment. So a
//! [`Write`](crate::write::Write) whose events the index follows delivers
//! them itself, right after its commit, through rbac's internal
//! `IndexService.ApplyEvents`, and answers with the revision that covers
//! them. The bus still carries the same events: it is the durable path when
//! this call fails, and applying an event twice has no further effect.
//!
//! Ordering: one process delivers its events in commit order. Deliveries
//! queue behind a lock and whoever holds it sends everything queued (a
//! group commit); a failed delivery stays queued ahead of later ones and is
//! retried, so the index never applies a later event of this process before
//! an earlier one. While events are queued, writes answer with a token that
//! names the last of them: a check carrying it waits for that event, and
//! fails closed when it does not come.

use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tokio_util::sync::CancellationToken;

use crate::auth::InternalKey;
use crate::consistency::Token;
use crate::follow::{Failure, Handover, internal_request};

/// The events the index follows: (emitting service, event-type prefix).
/// rbac's bus consumer subscribes to exactly these.
pub const FOLLOWED: &[(&str, &str)] = &[
    ("organization", ""),
    ("identity", "identity.user."),
    ("identity", "identity.api_key."),
    ("identity", events::SessionRevoked::EVENT_TYPE),
];

/// Whether the index follows `event`.
pub fn followed(event: &events::Event) -> bool {
    FOLLOWED
        .iter()
        .any(|(source, prefix)| event.source == *source && event.r#type.starts_with(prefix))
}

/// A service's deliveries to the index.
#[derive(Debug)]
pub struct IndexSink {
    channel: crate::peer::PeerChannel,
    key: InternalKey,
    service: &'static str,
    handover: Handover<i64>,
}

impl IndexSink {
    /// A sink of `service`'s events, delivered over `channel` (to rbac) with
    /// an internal credential made with `key`.
    pub fn new(
        channel: crate::peer::PeerChannel,
        key: InternalKey,
        service: &'static str,
    ) -> IndexSink {
        IndexSink {
            channel,
            key,
            service,
            handover: Handover::default(),
        }
    }

    /// Delivers the followed ones of `written` (after anything still queued)
    /// and returns the token that covers them.
    pub async fn deliver(&self, written: &[events::Event]) -> Token {
        let mine: Vec<events::Event> = written.iter().filter(|e| followed(e)).cloned().collect();
        let Some(last) = mine.last().map(|e| e.id.clone()) else {
            return Token::default();
        };
        self.handover.push(mine);
        match self.handover.flush(|batch| self.send(batch)).await {
            Ok(revision) => Token::at(revision),
            // A deployment that runs no authorization index has nothing to
            // keep current and no check to protect.
            Err(Failure::Absent) => Token::default(),
            Err(Failure::Other(error)) => {
                metrics::counter!("tenantry_index_deliveries_failed_total", "service" => self.service)
                    .increment(1);
                tracing::warn!(
                    service = self.service,
                    error = %error,
                    "handing events to the authorization index failed; they follow by the bus"
                );
                Token {
                    revision: 0,
                    pending_event: Some(last),
                }
            }
        }
    }

    /// Whether the index answers now (an empty delivery). A write the index
    /// must learn commits only after this answers yes, so that an
    /// unreachable index makes the write fail and change nothing rather
    /// than succeed while checks elsewhere still allow what it removed.
    /// Queued events wait for [`deliver`](Self::deliver), after the commit:
    /// delivering them here, inside the caller's transaction, could wait on
    /// that transaction's own locks (one SQLite file holds every service).
    pub async fn reachable(&self) -> crate::error::Result<()> {
        match self.send(Vec::new()).await {
            Ok(_) | Err(Failure::Absent) => Ok(()),
            Err(Failure::Other(error)) => {
                metrics::counter!("tenantry_index_deliveries_failed_total", "service" => self.service)
                    .increment(1);
                tracing::warn!(
                    service = self.service,
                    error = %error,
                    "the authorization index is unreachable; refusing a write it must learn"
                );
                Err(crate::error::Error::new(
                    crate::error::Code::Unavailable,
                    "INDEX_UNAVAILABLE",
                    "the authorization service is unavailable; nothing was changed",
                ))
            }
        }
    }

    /// One `ApplyEvents` call; the revision that covers `batch`.
    async fn send(&self, batch: Vec<events::Event>) -> Result<i64, Failure> {
        let request = internal_request(
            &self.key,
            self.service,
            authz_pb::ApplyEventsRequest { events: batch },
        )?;
        let mut client =
            authz_pb::index_service_client::IndexServiceClient::new(self.channel.clone());
        let applied = client
            .apply_events(request)
            .await
            .map_err(Failure::from_status)?
            .into_inner()
            .applied_at
            .unwrap_or_default();
        Token::parse(&applied.token)
            .map(|token| token.revision)
            .map_err(|_| Failure::Other(anyhow::anyhow!("the index answered a malformed token")))
    }

    /// Retries queued deliveries every second until `shutdown`.
    pub async fn run_retries(self: std::sync::Arc<Self>, shutdown: CancellationToken) {
        self.handover
            .retry(shutdown, || async {
                if let Err(Failure::Other(error)) =
                    self.handover.flush(|batch| self.send(batch)).await
                {
                    tracing::debug!(service = self.service, %error, "retrying index delivery failed");
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::tests::event;

    #[test]
    fn the_index_follows_the_tree_and_users_only() {
        assert!(followed(&event("organization", "organization.created")));
        assert!(followed(&event("organization", "project.deleted")));
        assert!(followed(&event("identity", "identity.user.disabled")));
        assert!(!followed(&event("identity", "identity.login.succeeded")));
        assert!(!followed(&event("billing", "billing.subscription.changed")));
        assert!(!followed(&event("rbac", "organization.member.added")));
    }
}
