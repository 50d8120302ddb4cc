//! Handing a write's events to the read models that follow them — billing's
//! counters and the audit log — before the write returns.
//!
//! Billing counts projects, teams, members and API keys from the events of
//! the services that own them, and the audit log is made of every service's
//! events. Through the bus alone both learn late: a project deleted a
//! moment ago would still hold its unit of the plan, and the writer's own
//! change would be missing from the log they open next. So every commit
//! hands its events to each follower directly, after the commit, and waits
//! for the answer: the caller's next `GetUsage`, `CheckQuota` or
//! `ListAuditEvents` sees the write.
//!
//! The bus stays the durable path: a follower that is down only delays what
//! it shows (the write never fails for it), and applying an event twice
//! has no further effect (both paths claim the event id). While a delivery
//! to a follower is failing, writes queue their events for the background
//! retry instead of each waiting for a follower that does not answer.
//! Events of one process reach a follower in commit order.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenantry_proto::tenantry::audit::v1 as audit_pb;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tokio_util::sync::CancellationToken;

use crate::auth::InternalKey;
use crate::peer::{Peer, PeerChannel};

/// The events billing counts from: (emitting service, event-type prefix),
/// and identity's platform-administrator events. Billing's bus consumer
/// subscribes to exactly these.
pub const BILLING_FOLLOWS: &[(&str, &str)] = &[
    ("organization", ""),
    ("rbac", "organization.member."),
    ("identity", "identity.api_key."),
    ("identity", events::PlatformAdminGranted::EVENT_TYPE),
    ("identity", events::PlatformAdminRevoked::EVENT_TYPE),
];

/// A service that keeps a read model of other services' events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follower {
    /// Usage counters and quota decisions.
    Billing,
    /// The audit log.
    Audit,
}

impl Follower {
    /// Every follower.
    pub const ALL: [Follower; 2] = [Follower::Billing, Follower::Audit];

    /// The service that is this follower.
    pub fn peer(self) -> Peer {
        match self {
            Follower::Billing => Peer::Billing,
            Follower::Audit => Peer::Audit,
        }
    }

    /// Whether this follower takes `event`.
    pub fn follows(self, event: &events::Event) -> bool {
        match self {
            Follower::Billing => BILLING_FOLLOWS.iter().any(|(source, prefix)| {
                event.source == *source && event.r#type.starts_with(prefix)
            }),
            // The log's checkpoints are its own statements about itself:
            // logging them would move the head they just signed.
            Follower::Audit => event.r#type != events::AuditCheckpointCreated::EVENT_TYPE,
        }
    }
}

/// Most events one call carries (the followers' limit).
pub(crate) const BATCH: usize = 1000;
/// Most events kept for a retry while a peer is unreachable; older ones are
/// left to the bus.
const MAX_QUEUED: usize = 10_000;
/// How long one delivery may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// Why a delivery did not happen.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The peer does not serve this (a deployment without it).
    Absent,
    /// Anything else: the peer is unreachable or failed.
    Other(anyhow::Error),
}

impl Failure {
    /// The failure a gRPC status means.
    pub(crate) fn from_status(status: tonic::Status) -> Failure {
        if status.code() == tonic::Code::Unimplemented {
            return Failure::Absent;
        }
        Failure::Other(anyhow::anyhow!("{:?}: {}", status.code(), status.message()))
    }
}

/// Events on their way to one peer, in order: queued, then sent in batches
/// by whoever holds the send lock (a group commit); a failed batch stays
/// ahead of later events for the next attempt. `R` is the peer's answer to
/// a batch (the index's revision).
#[derive(Debug, Default)]
pub(crate) struct Handover<R = ()> {
    queue: Mutex<VecDeque<events::Event>>,
    /// Held while sending; holds the answer to the last batch sent, which
    /// covers every event sent before it.
    sending: tokio::sync::Mutex<R>,
    failing: AtomicBool,
}

impl<R: Clone> Handover<R> {
    /// Queues `events` behind what is queued.
    pub(crate) fn push(&self, events: impl IntoIterator<Item = events::Event>) {
        self.queue.lock().expect("queue lock").extend(events);
    }

    /// Whether the last attempt failed (and events wait for the retry).
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Whether nothing waits.
    fn is_empty(&self) -> bool {
        self.queue.lock().expect("queue lock").is_empty()
    }

    /// Sends everything queued, in order, with `send`; returns the answer
    /// to the last batch sent (by this call or, when another sender took
    /// this caller's events along, by that one). On a
    /// failure what was not sent stays queued (at most [`MAX_QUEUED`]; the
    /// oldest go to the bus alone), except when the peer does not serve
    /// this at all: then nothing will ever be sent, and the queue empties.
    pub(crate) async fn flush<F, Fut>(&self, mut send: F) -> Result<R, Failure>
    where
        F: FnMut(Vec<events::Event>) -> Fut,
        Fut: Future<Output = Result<R, Failure>>,
    {
        let mut answer = self.sending.lock().await;
        loop {
            // Only the holder of the send lock removes from the front, so
            // the batch is still there when the answer comes.
            let batch: Vec<events::Event> = {
                let queue = self.queue.lock().expect("queue lock");
                queue.iter().take(BATCH).cloned().collect()
            };
            if batch.is_empty() {
                self.failing.store(false, Ordering::Relaxed);
                return Ok(answer.clone());
            }
            let sent = batch.len();
            match send(batch).await {
                Ok(next) => {
                    *answer = next;
                    self.queue.lock().expect("queue lock").drain(..sent);
                }
                Err(failure) => {
                    let mut queue = self.queue.lock().expect("queue lock");
                    match failure {
                        Failure::Absent => {
                            queue.clear();
                            self.failing.store(false, Ordering::Relaxed);
                        }
                        Failure::Other(_) => {
                            let excess = queue.len().saturating_sub(MAX_QUEUED);
                            queue.drain(..excess);
                            self.failing.store(true, Ordering::Relaxed);
                        }
                    }
                    return Err(failure);
                }
            }
        }
    }

    /// Calls `attempt` every second while events wait, until `shutdown`.
    pub(crate) async fn retry<F, Fut>(&self, shutdown: CancellationToken, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if !self.is_empty() {
                attempt().await;
            }
        }
    }
}

/// A request to a peer, made as `service` with its internal credential.
pub(crate) fn internal_request<T>(
    key: &InternalKey,
    service: &'static str,
    body: T,
) -> Result<tonic::Request<T>, Failure> {
    let mut request = tonic::Request::new(body);
    request.set_timeout(TIMEOUT);
    let credential = key
        .credential(service, chrono::Utc::now().timestamp())
        .parse()
        .map_err(|_| Failure::Other(anyhow::anyhow!("unusable internal credential")))?;
    request
        .metadata_mut()
        .insert(crate::auth::internal::HEADER, credential);
    crate::telemetry::inject_metadata(request.metadata_mut());
    Ok(request)
}

/// What a follower's `ApplyEvents` handler takes in: the events of a call
/// from one of Tenantry's own services (anyone else is PERMISSION_DENIED,
/// named by `action` in `domain`), at most [`BATCH`] of them.
pub fn admit<T>(
    request: tonic::Request<T>,
    events: impl FnOnce(T) -> Vec<events::Event>,
    (domain, action): (&'static str, &'static str),
) -> crate::error::Result<Vec<events::Event>> {
    let principal = crate::auth::Principal::from_request(&request)?;
    if principal.internal_service().is_none() {
        return Err(crate::error::Error::permission_denied(action).with_domain(domain));
    }
    let events = events(request.into_inner());
    if events.len() > BATCH {
        return Err(crate::error::Error::invalid_field(
            "events",
            format!("must hold at most {BATCH} events"),
        ));
    }
    Ok(events)
}

/// One service's deliveries to one follower.
#[derive(Debug)]
struct FollowerSink {
    follower: Follower,
    channel: PeerChannel,
    key: InternalKey,
    service: &'static str,
    handover: Handover,
}

impl FollowerSink {
    /// Delivers what the follower takes of `written` (after anything
    /// queued). While deliveries fail, only queues it for the retry.
    async fn deliver(&self, written: &[events::Event]) {
        let mine: Vec<events::Event> = written
            .iter()
            .filter(|event| self.follower.follows(event))
            .cloned()
            .collect();
        if mine.is_empty() {
            return;
        }
        let was_failing = self.handover.failing();
        self.handover.push(mine);
        if was_failing {
            return;
        }
        if let Err(Failure::Other(error)) = self.flush().await {
            metrics::counter!(
                "tenantry_follower_deliveries_failed_total",
                "service" => self.service,
                "follower" => self.follower.peer().as_str()
            )
            .increment(1);
            tracing::warn!(
                service = self.service,
                follower = self.follower.peer().as_str(),
                error = %error,
                "handing events to a follower failed; they follow by the bus"
            );
        }
    }

    async fn flush(&self) -> Result<(), Failure> {
        self.handover.flush(|batch| self.send(batch)).await
    }

    /// One `ApplyEvents` call to the follower.
    async fn send(&self, batch: Vec<events::Event>) -> Result<(), Failure> {
        let channel = self.channel.clone();
        match self.follower {
            Follower::Billing => {
                let request = internal_request(
                    &self.key,
                    self.service,
                    billing_pb::ApplyEventsRequest { events: batch },
                )?;
                billing_pb::billing_feed_service_client::BillingFeedServiceClient::new(channel)
                    .apply_events(request)
                    .await
                    .map_err(Failure::from_status)?;
            }
            Follower::Audit => {
                let request = internal_request(
                    &self.key,
                    self.service,
                    audit_pb::ApplyEventsRequest { events: batch },
                )?;
                audit_pb::audit_feed_service_client::AuditFeedServiceClient::new(channel)
                    .apply_events(request)
                    .await
                    .map_err(Failure::from_status)?;
            }
        }
        Ok(())
    }
}

/// A service's deliveries to every follower.
#[derive(Debug, Clone)]
pub struct Followers(Arc<[FollowerSink]>);

impl Followers {
    /// The followers of `service`'s events, reached through `channel`, with
    /// an internal credential made with `key`.
    pub fn new(
        channel: impl Fn(Peer) -> anyhow::Result<PeerChannel>,
        key: InternalKey,
        service: &'static str,
    ) -> anyhow::Result<Followers> {
        let sinks = Follower::ALL
            .into_iter()
            .map(|follower| {
                Ok(FollowerSink {
                    follower,
                    channel: channel(follower.peer())?,
                    key: key.clone(),
                    service,
                    handover: Handover::default(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Followers(sinks.into()))
    }

    /// Hands `written` (committed) to every follower that takes some of it,
    /// one after the other (each applies them in a write of its own; at
    /// once they would only queue for the same database, each holding a
    /// connection), and returns when each has answered or failed.
    pub async fn deliver(&self, written: &[events::Event]) {
        for sink in self.0.iter() {
            sink.deliver(written).await;
        }
    }

    /// Retries queued deliveries every second until `shutdown`.
    pub async fn run_retries(self, shutdown: CancellationToken) {
        let retries = self.0.iter().map(|sink| {
            sink.handover.retry(shutdown.clone(), || async {
                if let Err(Failure::Other(error)) = sink.flush().await {
                    tracing::debug!(service = sink.service, %error, "retrying a follower delivery failed");
                }
            })
        });
        futures::future::join_all(retries).await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event of `kind` from `source`, for tests of what follows what.
    pub(crate) fn event(source: &str, kind: &str) -> events::Event {
        events::Event {
            source: source.into(),
            r#type: kind.into(),
            ..Default::default()
        }
    }

    #[test]
    fn billing_follows_what_plans_count_and_audit_everything_but_checkpoints() {
        let billing = |source, kind| Follower::Billing.follows(&event(source, kind));
        assert!(billing("organization", "project.deleted"));
        assert!(billing("rbac", "organization.member.removed"));
        assert!(billing("identity", "identity.api_key.revoked"));
        assert!(billing(
            "identity",
            events::PlatformAdminGranted::EVENT_TYPE
        ));
        assert!(!billing("identity", "identity.login.succeeded"));
        assert!(!billing("rbac", "rbac.role.created"));
        let audit = |source, kind| Follower::Audit.follows(&event(source, kind));
        assert!(audit("identity", "identity.login.succeeded"));
        assert!(audit("billing", "billing.subscription.changed"));
        assert!(!audit("audit", events::AuditCheckpointCreated::EVENT_TYPE));
    }

    #[tokio::test]
    async fn a_failed_batch_stays_ahead_of_later_events_and_an_absent_peer_empties_the_queue() {
        let handover: Handover = Handover::default();
        handover.push([event("a", "1"), event("a", "2")]);
        let failed: Result<(), Failure> = handover
            .flush(|_| async { Err(Failure::Other(anyhow::anyhow!("down"))) })
            .await;
        assert!(failed.is_err() && handover.failing());
        handover.push([event("a", "3")]);
        let mut seen = Vec::new();
        handover
            .flush(|batch| {
                seen.extend(batch.into_iter().map(|e| e.r#type));
                async { Ok(()) }
            })
            .await
            .expect("delivered");
        assert_eq!(seen, ["1", "2", "3"]);
        assert!(!handover.failing() && handover.is_empty());
        handover.push([event("a", "4")]);
        let absent: Result<(), Failure> = handover.flush(|_| async { Err(Failure::Absent) }).await;
        assert!(matches!(absent, Err(Failure::Absent)) && handover.is_empty());
    }
}
