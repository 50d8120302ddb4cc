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

use std::collections::VecDeque;
use std::time::Duration;

use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tokio_util::sync::CancellationToken;

use crate::auth::InternalKey;
use crate::consistency::Token;

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

/// Most events one call carries (the service's limit).
const BATCH: usize = 1000;
/// Most events kept for a retry while the index is unreachable; older ones
/// are left to the bus (their tokens still name them).
const MAX_QUEUED: usize = 10_000;
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Why a delivery did not happen.
#[derive(Debug)]
enum Failure {
    /// The peer serves no index (a deployment without rbac).
    NoIndex,
    /// Anything else: the index is unreachable or failed.
    Other(anyhow::Error),
}

/// A service's deliveries to the index.
#[derive(Debug)]
pub struct IndexSink {
    channel: crate::peer::PeerChannel,
    key: InternalKey,
    service: &'static str,
    queue: tokio::sync::Mutex<VecDeque<events::Event>>,
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
            queue: tokio::sync::Mutex::default(),
        }
    }

    /// Delivers the followed ones of `written` (after anything still queued)
    /// and returns the token that covers them.
    pub async fn deliver(&self, written: Vec<events::Event>) -> Token {
        let mut mine: Vec<events::Event> = written.into_iter().filter(followed).collect();
        let Some(last) = mine.last().map(|e| e.id.clone()) else {
            return Token::default();
        };
        let mut queue = self.queue.lock().await;
        queue.extend(mine.drain(..));
        match self.flush(&mut queue).await {
            Ok(revision) => Token::at(revision),
            // A deployment that runs no authorization index has nothing to
            // keep current and no check to protect.
            Err(Failure::NoIndex) => {
                queue.clear();
                Token::default()
            }
            Err(Failure::Other(error)) => {
                metrics::counter!("tenantry_index_deliveries_failed_total", "service" => self.service)
                    .increment(1);
                tracing::warn!(
                    service = self.service,
                    queued = queue.len(),
                    error = %error,
                    "handing events to the authorization index failed; they follow by the bus"
                );
                while queue.len() > MAX_QUEUED {
                    queue.pop_front();
                }
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
            Ok(_) | Err(Failure::NoIndex) => Ok(()),
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

    /// Sends every queued event, in order; leaves what was not applied.
    async fn flush(&self, queue: &mut VecDeque<events::Event>) -> Result<i64, Failure> {
        let mut revision = 0;
        while !queue.is_empty() {
            let batch: Vec<events::Event> = queue.iter().take(BATCH).cloned().collect();
            revision = self.send(batch).await?;
            let sent = BATCH.min(queue.len());
            queue.drain(..sent);
        }
        Ok(revision)
    }

    /// One `ApplyEvents` call; the revision that covers `batch`.
    async fn send(&self, batch: Vec<events::Event>) -> Result<i64, Failure> {
        let mut request = tonic::Request::new(authz_pb::ApplyEventsRequest { events: batch });
        request.set_timeout(TIMEOUT);
        let credential = self
            .key
            .credential(self.service, chrono::Utc::now().timestamp());
        let credential = credential
            .parse()
            .map_err(|_| Failure::Other(anyhow::anyhow!("unusable internal credential")))?;
        request
            .metadata_mut()
            .insert(crate::auth::internal::HEADER, credential);
        crate::telemetry::inject_metadata(request.metadata_mut());
        let mut client =
            authz_pb::index_service_client::IndexServiceClient::new(self.channel.clone());
        let applied = match client.apply_events(request).await {
            Ok(response) => response.into_inner().applied_at.unwrap_or_default(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                return Err(Failure::NoIndex);
            }
            Err(status) => {
                return Err(Failure::Other(anyhow::anyhow!(
                    "{:?}: {}",
                    status.code(),
                    status.message()
                )));
            }
        };
        Token::parse(&applied.token)
            .map(|token| token.revision)
            .map_err(|_| Failure::Other(anyhow::anyhow!("the index answered a malformed token")))
    }

    /// Retries queued deliveries every second until `shutdown`.
    pub async fn run_retries(self: std::sync::Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let mut queue = self.queue.lock().await;
            if queue.is_empty() {
                continue;
            }
            match self.flush(&mut queue).await {
                Ok(_) => {}
                Err(Failure::NoIndex) => queue.clear(),
                Err(Failure::Other(error)) => {
                    tracing::debug!(service = self.service, %error, "retrying index delivery failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, kind: &str) -> events::Event {
        events::Event {
            source: source.into(),
            r#type: kind.into(),
            ..Default::default()
        }
    }

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
