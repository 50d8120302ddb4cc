//! The event bus: durable, at-least-once delivery of published events to
//! named consumers.
//!
//! Two backends share one contract ([`EventBus`]):
//! - [`LocalBus`], the embedded default: delivery inside the process, kept
//!   durable in the service database (`tenantry_bus_messages` plus a cursor
//!   per consumer), so a crash or a stopped consumer delays events and never
//!   drops them.
//! - [`NatsBus`]: NATS JetStream, with one file-backed stream and durable pull
//!   consumers, for deployments of several processes.
//!
//! Publishing returns only once the bus has stored the message; the outbox
//! relay marks an event sent only after that. Subjects look like
//! `tenantry.events.<source>.<event type>`; consumers filter with NATS
//! wildcards (`*` one token, `>` the rest).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use sqlx::Row;
use tokio::sync::Notify;

use crate::db::{Backend, Database, now_micros};
use crate::startup::Unreachable;

/// The subject prefix of every Tenantry event.
pub const SUBJECT_PREFIX: &str = "tenantry.events";

/// The JetStream stream holding every event.
pub const NATS_STREAM: &str = "TENANTRY_EVENTS";

/// A message on the bus: an encoded `tenantry.events.v1.Event`.
#[derive(Debug, Clone, PartialEq)]
pub struct BusMessage {
    /// Where it is published, such as `tenantry.events.organization.organization.created`.
    pub subject: String,
    /// The event id; the bus drops a second publish of the same id.
    pub event_id: String,
    /// The encoded event.
    pub payload: Bytes,
}

/// A message handed to a consumer, to be acknowledged once processed.
pub struct Delivery {
    /// The message.
    pub message: BusMessage,
    acker: Acker,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .finish()
    }
}

enum Acker {
    Local {
        db: Database,
        consumer: String,
        position: i64,
        /// Whether the acknowledgement is stored: only the last of a batch
        /// read at once is (one write per batch, not per message). A
        /// restart in the middle of a batch hands its first messages over
        /// again, which consumers' claims make harmless, as after a lost
        /// acknowledgement on NATS.
        stored: bool,
    },
    Nats(Box<async_nats::jetstream::Message>),
}

impl Delivery {
    /// Confirms the message was processed; it will not be delivered to this
    /// consumer again, except (on the local bus) after a restart in the
    /// middle of the batch it was read with. Until then it is redelivered
    /// after a restart.
    pub async fn ack(self) -> anyhow::Result<()> {
        match self.acker {
            Acker::Local { stored: false, .. } => Ok(()),
            Acker::Local {
                db,
                consumer,
                position,
                stored: true,
            } => {
                sqlx::query(
                    "UPDATE tenantry_bus_consumers SET position = $1
                     WHERE name = $2 AND position < $1",
                )
                .bind(position)
                .bind(&consumer)
                .execute(db.writer())
                .await?;
                Ok(())
            }
            // double_ack waits for the server to confirm the ack, so a crash
            // right after it cannot bring the message back.
            Acker::Nats(message) => message.double_ack().await.map_err(|e| anyhow::anyhow!(e)),
        }
    }
}

/// A durable consumer's stream of deliveries.
#[async_trait]
pub trait Subscription: Send {
    /// The next message, waiting for one if none is pending.
    async fn next(&mut self) -> anyhow::Result<Delivery>;

    /// The next message if it is already here, without waiting: what a
    /// consumer adds to a batch. `None` by default, as where the bus hands
    /// out one message at a time (NATS, one unacknowledged message per
    /// durable consumer, for order across replicas).
    fn ready(&mut self) -> Option<Delivery> {
        None
    }
}

/// Publishes events and creates durable consumers.
#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Stores `message` on the bus; returns once the bus acknowledged it.
    async fn publish(&self, message: &BusMessage) -> anyhow::Result<()>;

    /// Stores `messages` in order, stopping at the first failure: how many
    /// were stored, with the failure if any. One by one unless the bus
    /// stores a batch at once.
    async fn publish_all(&self, messages: &[BusMessage]) -> (usize, Option<anyhow::Error>) {
        for (stored, message) in messages.iter().enumerate() {
            if let Err(error) = self.publish(message).await {
                return (stored, Some(error));
            }
        }
        (messages.len(), None)
    }

    /// Opens (creating if needed) the durable consumer `name`, receiving every
    /// message whose subject matches one of `filters`, from where it last
    /// acknowledged.
    async fn subscribe(
        &self,
        name: &str,
        filters: &[String],
    ) -> anyhow::Result<Box<dyn Subscription>>;

    /// The backend's name, for logs.
    fn kind(&self) -> &'static str;
}

/// Connects to the bus: NATS JetStream when `nats_url` is set, the local bus
/// in `db` otherwise. `namespace` separates several installations (or test
/// runs) sharing one NATS server; empty is the default installation.
pub async fn connect(
    nats_url: Option<&str>,
    namespace: &str,
    ack_wait: Duration,
    db: &Database,
) -> anyhow::Result<Arc<dyn EventBus>> {
    match nats_url {
        Some(url) => Ok(Arc::new(
            NatsBus::connect(url, namespace)
                .await?
                .with_ack_wait(ack_wait),
        )),
        None => {
            LocalBus::migrate(db).await?;
            Ok(Arc::new(LocalBus::new(db.clone())))
        }
    }
}

/// Whether `subject` matches the NATS-style `filter`.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in filter.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (want, Some(got)) if want == got => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// Schema of the local bus, applied by [`LocalBus::migrate`].
const LOCAL_BUS_MIGRATIONS: &[crate::db::Migration] = &[crate::db::Migration {
    version: 1,
    description: "local event bus",
    sqlite: "
        CREATE TABLE tenantry_bus_messages (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            subject TEXT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            payload BLOB NOT NULL,
            stored_at_us BIGINT NOT NULL
        );
        CREATE TABLE tenantry_bus_consumers (
            name TEXT PRIMARY KEY,
            position BIGINT NOT NULL
        );",
    postgres: "
        CREATE TABLE tenantry_bus_messages (
            position BIGSERIAL PRIMARY KEY,
            subject TEXT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            payload BYTEA NOT NULL,
            stored_at_us BIGINT NOT NULL
        );
        CREATE TABLE tenantry_bus_consumers (
            name TEXT PRIMARY KEY,
            position BIGINT NOT NULL
        );",
}];

/// The embedded bus: in-process delivery, durable in the database.
#[derive(Debug, Clone)]
pub struct LocalBus {
    db: Database,
    published: Arc<Notify>,
    poll_interval: Duration,
}

impl LocalBus {
    /// A local bus stored in `db`. Call [`migrate`](Self::migrate) first.
    pub fn new(db: Database) -> Self {
        LocalBus {
            db,
            published: Arc::new(Notify::new()),
            poll_interval: Duration::from_millis(250),
        }
    }

    /// Creates the bus tables.
    pub async fn migrate(db: &Database) -> anyhow::Result<()> {
        db.migrate("bus", LOCAL_BUS_MIGRATIONS).await
    }

    /// Stores `messages` in one transaction and wakes the subscribers.
    async fn store(&self, messages: &[BusMessage]) -> anyhow::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        if self.db.backend() == Backend::Postgres {
            // Publishers take turns so positions become visible in order:
            // a consumer's cursor must never pass a position that commits later.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()), $1)")
                .bind(crate::db::advisory_key(&["bus", "publish"]))
                .execute(&mut *tx)
                .await?;
        }
        let now = now_micros();
        for message in messages {
            // A second publish of the same event id is a no-op, like
            // JetStream's duplicate window.
            sqlx::query(
                "INSERT INTO tenantry_bus_messages (subject, event_id, payload, stored_at_us)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&message.subject)
            .bind(&message.event_id)
            .bind(message.payload.to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.published.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, message: &BusMessage) -> anyhow::Result<()> {
        self.store(std::slice::from_ref(message)).await
    }

    /// The whole batch in one transaction: all of it or none.
    async fn publish_all(&self, messages: &[BusMessage]) -> (usize, Option<anyhow::Error>) {
        match self.store(messages).await {
            Ok(()) => (messages.len(), None),
            Err(error) => (0, Some(error)),
        }
    }

    async fn subscribe(
        &self,
        name: &str,
        filters: &[String],
    ) -> anyhow::Result<Box<dyn Subscription>> {
        // A new consumer starts at the beginning, like a JetStream consumer
        // with DeliverPolicy::All.
        sqlx::query(
            "INSERT INTO tenantry_bus_consumers (name, position) VALUES ($1, 0)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(self.db.writer())
        .await?;
        let position: i64 =
            sqlx::query("SELECT position FROM tenantry_bus_consumers WHERE name = $1")
                .bind(name)
                .fetch_one(self.db.pool())
                .await?
                .try_get(0)?;
        Ok(Box::new(LocalSubscription {
            bus: self.clone(),
            name: name.to_string(),
            filters: filters.to_vec(),
            read_up_to: position,
            pending: VecDeque::new(),
        }))
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

struct LocalSubscription {
    bus: LocalBus,
    name: String,
    filters: Vec<String>,
    read_up_to: i64,
    pending: VecDeque<(i64, BusMessage)>,
}

#[async_trait]
impl Subscription for LocalSubscription {
    async fn next(&mut self) -> anyhow::Result<Delivery> {
        loop {
            if let Some(delivery) = self.ready() {
                return Ok(delivery);
            }
            // Register for wake-ups before reading, so a publish between the
            // read and the wait is not missed.
            let published = self.bus.published.notified();
            let rows = sqlx::query(
                "SELECT position, subject, event_id, payload FROM tenantry_bus_messages
                 WHERE position > $1 ORDER BY position LIMIT 256",
            )
            .bind(self.read_up_to)
            .fetch_all(self.bus.db.pool())
            .await?;
            for row in rows {
                let position: i64 = row.try_get(0)?;
                self.read_up_to = position;
                let subject: String = row.try_get(1)?;
                if self.filters.iter().any(|f| subject_matches(f, &subject)) {
                    let message = BusMessage {
                        subject,
                        event_id: row.try_get(2)?,
                        payload: Bytes::from(row.try_get::<Vec<u8>, _>(3)?),
                    };
                    self.pending.push_back((position, message));
                }
            }
            if self.pending.is_empty() {
                // Other processes sharing the database publish too: poll.
                let _ = tokio::time::timeout(self.bus.poll_interval, published).await;
            }
        }
    }

    fn ready(&mut self) -> Option<Delivery> {
        let (position, message) = self.pending.pop_front()?;
        Some(Delivery {
            message,
            acker: Acker::Local {
                db: self.bus.db.clone(),
                consumer: self.name.clone(),
                position,
                stored: self.pending.is_empty(),
            },
        })
    }
}

/// NATS JetStream.
#[derive(Clone)]
pub struct NatsBus {
    jetstream: async_nats::jetstream::Context,
    url: String,
    stream: String,
    /// Prepended to every subject on the wire (`<namespace>.tenantry.events…`).
    wire_prefix: String,
    ack_wait: Duration,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &crate::db::redact_url(&self.url))
            .finish()
    }
}

impl NatsBus {
    /// Connects to the server at `url` and makes sure the event stream
    /// exists. An unreachable server is an error naming the URL; after this
    /// succeeds, the client reconnects by itself through any outage.
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<NatsBus> {
        anyhow::ensure!(
            namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "invalid configuration: `nats_namespace` may hold only letters, digits and `_`"
        );
        let (stream, wire_prefix) = if namespace.is_empty() {
            (NATS_STREAM.to_string(), String::new())
        } else {
            (
                format!("{NATS_STREAM}_{}", namespace.to_uppercase()),
                format!("{namespace}."),
            )
        };
        let redacted = crate::db::redact_url(url);
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!("lost the connection to nats")
                    }
                    async_nats::Event::Connected => tracing::info!("connected to nats"),
                    _ => {}
                }
            })
            .connect(url)
            .await
            .map_err(|e| Unreachable(format!("cannot connect to NATS at {redacted}: {e}")))?;
        let mut jetstream = async_nats::jetstream::new(client);
        jetstream.set_timeout(Duration::from_secs(5));
        jetstream
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![format!("{wire_prefix}{SUBJECT_PREFIX}.>")],
                storage: async_nats::jetstream::stream::StorageType::File,
                // Duplicate publishes of one event id within this window are
                // dropped by the server.
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Unreachable(format!(
                    "cannot set up the JetStream stream at {redacted}: {e}"
                ))
            })?;
        Ok(NatsBus {
            jetstream,
            url: url.to_string(),
            stream,
            wire_prefix,
            ack_wait: Duration::from_secs(2),
        })
    }

    /// How long the server waits for a consumer's ack before redelivering
    /// (default 2 s). Applies to consumers opened afterwards, existing
    /// durable consumers included.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Deletes this namespace's stream and everything in it. For tests.
    pub async fn delete_stream(&self) -> anyhow::Result<()> {
        self.jetstream
            .delete_stream(&self.stream)
            .await
            .map_err(|e| anyhow::anyhow!("cannot delete the stream: {e}"))?;
        Ok(())
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, message: &BusMessage) -> anyhow::Result<()> {
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(message.payload.clone())
            .message_id(&message.event_id);
        let ack = self
            .jetstream
            .send_publish(format!("{}{}", self.wire_prefix, message.subject), publish)
            .await
            .map_err(|e| anyhow::anyhow!("publish to nats failed: {e}"))?;
        ack.await
            .map_err(|e| anyhow::anyhow!("nats did not acknowledge: {e}"))?;
        Ok(())
    }

    async fn subscribe(
        &self,
        name: &str,
        filters: &[String],
    ) -> anyhow::Result<Box<dyn Subscription>> {
        use async_nats::jetstream::consumer;
        let stream = self
            .jetstream
            .get_stream(&self.stream)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the event stream: {e}"))?;
        let config = consumer::pull::Config {
            durable_name: Some(name.to_string()),
            filter_subjects: filters
                .iter()
                .map(|f| format!("{}{f}", self.wire_prefix))
                .collect(),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            // Redeliver what a crashed consumer took but never acked.
            ack_wait: self.ack_wait,
            // One message in flight at a time: a redelivery (after a
            // consumer crash) must come before anything published
            // after it, or events of one aggregate arrive out of order.
            max_ack_pending: 1,
            ..Default::default()
        };
        // Create, or update an existing durable consumer to this config (a
        // changed `nats_ack_wait_ms` applies at the next start).
        let consumer: consumer::PullConsumer = match stream.create_consumer(config.clone()).await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(consumer = name, %error, "cannot update the consumer's settings; using it as it is");
                stream
                    .get_or_create_consumer(name, config)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot create the consumer {name}: {e}"))?
            }
        };
        let monitor = tokio::spawn(report_backlog(consumer.clone(), name.to_string()));
        Ok(Box::new(NatsSubscription {
            consumer,
            messages: None,
            wire_prefix: self.wire_prefix.clone(),
            monitor,
        }))
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

struct NatsSubscription {
    consumer: async_nats::jetstream::consumer::PullConsumer,
    messages: Option<async_nats::jetstream::consumer::pull::Stream>,
    wire_prefix: String,
    /// The backlog reporter, stopped with the subscription.
    monitor: tokio::task::JoinHandle<()>,
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

/// How often a consumer's backlog is read from the server.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// Reports a durable consumer's backlog as the server sees it, every
/// [`BACKLOG_EVERY`]: `tenantry_consumer_pending{consumer}` (events not yet
/// acknowledged, by any replica of the consumer) and
/// `tenantry_consumer_stalled_seconds{consumer}` (time since the last
/// acknowledgement while events are pending; 0 when none are). A consumer
/// that stopped — crashed mid-event, or failing — shows as a growing stall
/// on every replica, whichever holds the event.
async fn report_backlog(consumer: async_nats::jetstream::consumer::PullConsumer, name: String) {
    loop {
        tokio::time::sleep(BACKLOG_EVERY).await;
        let Ok(info) = consumer.get_info().await else {
            continue;
        };
        let pending = info.num_pending + info.num_ack_pending as u64;
        let stalled = match info.ack_floor.last_active {
            Some(at) if pending > 0 => {
                let now = chrono::Utc::now().timestamp();
                (now - at.unix_timestamp()).max(0) as f64
            }
            _ => 0.0,
        };
        metrics::gauge!("tenantry_consumer_pending", "consumer" => name.clone())
            .set(pending as f64);
        metrics::gauge!("tenantry_consumer_stalled_seconds", "consumer" => name.clone())
            .set(stalled);
    }
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> anyhow::Result<Delivery> {
        loop {
            if self.messages.is_none() {
                match self.consumer.messages().await {
                    Ok(stream) => self.messages = Some(stream),
                    Err(error) => {
                        tracing::warn!(%error, "cannot pull from nats; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let stream = self.messages.as_mut().expect("set above");
            match stream.next().await {
                Some(Ok(message)) => {
                    let event_id = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    return Ok(Delivery {
                        message: BusMessage {
                            subject: message
                                .subject
                                .strip_prefix(self.wire_prefix.as_str())
                                .unwrap_or(&message.subject)
                                .to_string(),
                            event_id,
                            payload: message.payload.clone(),
                        },
                        acker: Acker::Nats(Box::new(message)),
                    });
                }
                Some(Err(error)) => {
                    // Heartbeat misses and disconnects end up here; the pull
                    // stream recovers, but start a fresh one to be safe.
                    tracing::warn!(%error, "nats pull failed; retrying");
                    self.messages = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => self.messages = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: usize) -> BusMessage {
        BusMessage {
            subject: format!("tenantry.events.test.{i}"),
            event_id: format!("e{i}"),
            payload: Bytes::from(vec![i as u8]),
        }
    }

    async fn local_bus(dir: &std::path::Path) -> LocalBus {
        let db = Database::connect(&crate::config::sqlite_url(dir), &Default::default())
            .await
            .unwrap();
        LocalBus::migrate(&db).await.unwrap();
        LocalBus::new(db)
    }

    async fn next_id(subscription: &mut Box<dyn Subscription>) -> (String, Delivery) {
        let delivery = subscription.next().await.unwrap();
        (delivery.message.event_id.clone(), delivery)
    }

    /// A batch is stored at once (a repeated event id once), and a consumer
    /// stores its position with the last message of what it read together:
    /// a restart in the middle of a batch hands that batch over again, one
    /// after its end hands over only what is new.
    #[tokio::test]
    async fn the_local_bus_stores_batches_at_once_and_positions_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        let bus = local_bus(dir.path()).await;
        let batch: Vec<_> = (0..3).map(message).chain([message(0)]).collect();
        assert_eq!(bus.publish_all(&batch).await.0, 4);
        let filters = ["tenantry.events.>".to_string()];

        let mut consumer = bus.subscribe("c", &filters).await.unwrap();
        let (first, delivery) = next_id(&mut consumer).await;
        assert_eq!(first, "e0");
        delivery.ack().await.unwrap();
        drop(consumer);
        let mut consumer = bus.subscribe("c", &filters).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (id, delivery) = next_id(&mut consumer).await;
            seen.push(id);
            delivery.ack().await.unwrap();
        }
        assert_eq!(seen, ["e0", "e1", "e2"]);
        drop(consumer);

        bus.publish(&message(3)).await.unwrap();
        let mut consumer = bus.subscribe("c", &filters).await.unwrap();
        assert_eq!(next_id(&mut consumer).await.0, "e3");
    }

    /// What a consumer batches: the messages read with the one it waited
    /// for, without waiting again; acknowledging the batch stores its end.
    #[tokio::test]
    async fn a_local_consumer_takes_what_is_already_read_as_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let bus = local_bus(dir.path()).await;
        let batch: Vec<_> = (0..3).map(message).collect();
        bus.publish_all(&batch).await;
        let filters = ["tenantry.events.>".to_string()];
        let mut consumer = bus.subscribe("c", &filters).await.unwrap();
        let mut deliveries = vec![consumer.next().await.unwrap()];
        deliveries.extend(std::iter::from_fn(|| consumer.ready()));
        let ids: Vec<_> = deliveries
            .iter()
            .map(|d| d.message.event_id.clone())
            .collect();
        assert_eq!(ids, ["e0", "e1", "e2"]);
        assert!(consumer.ready().is_none(), "nothing more is waiting");
        for delivery in deliveries {
            delivery.ack().await.unwrap();
        }
        bus.publish(&message(3)).await.unwrap();
        let mut consumer = bus.subscribe("c", &filters).await.unwrap();
        assert_eq!(next_id(&mut consumer).await.0, "e3");
    }

    #[test]
    fn wildcards_match_like_nats() {
        assert!(subject_matches("tenantry.events.>", "tenantry.events.a.b"));
        assert!(!subject_matches("tenantry.events.>", "tenantry.events"));
        assert!(subject_matches("tenantry.*.a", "tenantry.events.a"));
        assert!(!subject_matches("tenantry.*.a", "tenantry.events.a.b"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("a.b.c", "a.b"));
    }
}
