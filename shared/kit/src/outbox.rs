//! The transactional outbox, its relay to the bus, and idempotent consumers.
//!
//! A service writes its change and the change's domain event in one
//! transaction ([`Outbox::append`]). The [`Relay`] publishes unpublished rows
//! to the bus in order, and marks a row sent only after the bus acknowledged
//! it, so a crash between the two re-publishes (at least once) and never
//! loses. Events of one aggregate keep their order: each carries a
//! per-aggregate `sequence`, assigned under the aggregate's row lock, and the
//! relay stops at the first failure instead of skipping ahead.
//!
//! Consumers run through [`run_consumer`], which decodes events, hands them
//! to a handler and acknowledges only after the handler succeeded. Handlers
//! make their effect idempotent with [`claim_event`] in their own
//! transaction: a redelivered event is recognized by its id and skipped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use sqlx::{Any, Row, Transaction};
use tenantry_proto::tenantry::events::v1 as events;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::{BusMessage, EventBus, SUBJECT_PREFIX};
use crate::config::OutboxConfig;
use crate::db::{Backend, Database, Migration, now_micros};
use crate::error::Result;
use crate::follow::Followers;
use crate::id::new_id;

/// Rows per multi-row statement: well under both backends' limits on bound
/// parameters (SQLite 32,766; Postgres 65,535).
const ROWS_PER_STATEMENT: usize = 500;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "outbox and consumer inbox",
    sqlite: "
        CREATE TABLE tenantry_outbox (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            service TEXT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            payload BLOB NOT NULL,
            created_at_us BIGINT NOT NULL,
            published_at_us BIGINT
        );
        CREATE INDEX tenantry_outbox_pending ON tenantry_outbox (service, position)
            WHERE published_at_us IS NULL;
        CREATE TABLE tenantry_outbox_aggregates (
            aggregate_type TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            last_sequence BIGINT NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id)
        );
        CREATE TABLE tenantry_consumed_events (
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            consumed_at_us BIGINT NOT NULL,
            PRIMARY KEY (consumer, event_id)
        );",
    postgres: "
        CREATE TABLE tenantry_outbox (
            position BIGSERIAL PRIMARY KEY,
            service TEXT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            payload BYTEA NOT NULL,
            created_at_us BIGINT NOT NULL,
            published_at_us BIGINT
        );
        CREATE INDEX tenantry_outbox_pending ON tenantry_outbox (service, position)
            WHERE published_at_us IS NULL;
        CREATE TABLE tenantry_outbox_aggregates (
            aggregate_type TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            last_sequence BIGINT NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id)
        );
        CREATE TABLE tenantry_consumed_events (
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            consumed_at_us BIGINT NOT NULL,
            PRIMARY KEY (consumer, event_id)
        );",
}];

/// A domain event about to be written. The outbox fills in the id, the
/// per-aggregate sequence and the time.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The stable dotted event type, such as `organization.created`.
    pub event_type: &'static str,
    /// The kind of entity that changed, such as `organization`.
    pub aggregate_type: &'static str,
    /// The id of the entity that changed.
    pub aggregate_id: String,
    /// The organization the change belongs to, if any.
    pub organization_id: Option<String>,
    /// The root of that organization's tree.
    pub root_organization_id: Option<String>,
    /// Who made the change.
    pub actor: events::Actor,
    /// The request that made it.
    pub request: Option<events::RequestContext>,
    /// The event's own message.
    pub payload: prost_types::Any,
    /// Changed fields, before and after; never secrets.
    pub changes: Vec<events::FieldChange>,
    /// The objects the change is about.
    pub targets: Vec<events::Target>,
}

impl NewEvent {
    /// A new event with the payload message `payload`, of the type the
    /// contract gives that message.
    pub fn new<M: tenantry_proto::EventType>(
        aggregate_type: &'static str,
        aggregate_id: impl Into<String>,
        actor: events::Actor,
        payload: &M,
    ) -> Self {
        NewEvent {
            event_type: M::EVENT_TYPE,
            aggregate_type,
            aggregate_id: aggregate_id.into(),
            organization_id: None,
            root_organization_id: None,
            actor,
            request: None,
            payload: prost_types::Any::from_msg(payload).expect("encoding into a Vec cannot fail"),
            changes: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Sets the organization (and its root) the change belongs to.
    pub fn in_organization(
        mut self,
        organization: impl Into<String>,
        root: impl Into<String>,
    ) -> Self {
        self.organization_id = Some(organization.into());
        self.root_organization_id = Some(root.into());
        self
    }

    /// Records the fields the change touched, before and after.
    pub fn with_changes(mut self, changes: Vec<events::FieldChange>) -> Self {
        self.changes = changes;
        self
    }

    /// Sets the request that caused the change.
    pub fn with_request(mut self, request: events::RequestContext) -> Self {
        self.request = Some(request);
        self
    }
}

/// The payload of `organization.request.denied` for a refusal of `action`
/// worth recording in the organization's audit log — lack of a permission,
/// or a plan limit — with why; `None` for any other error.
pub fn refusal(action: &str, error: &crate::error::Error) -> Option<events::RequestDenied> {
    use crate::error::Code;
    if !matches!(
        error.code(),
        Code::PermissionDenied | Code::ResourceExhausted
    ) {
        return None;
    }
    let field = |key| error.metadata(key).unwrap_or_default().to_string();
    Some(events::RequestDenied {
        action: action.to_string(),
        reason: error.reason().to_string(),
        message: error.message().to_string(),
        permission: field("permission"),
        metric: field("metric"),
        limit: field("limit"),
        used: field("used"),
    })
}

/// The outbox of one service.
#[derive(Debug, Clone)]
pub struct Outbox {
    service: &'static str,
    written: Arc<Notify>,
    followers: Option<Followers>,
}

impl Outbox {
    /// The outbox of `service` (its name is the event source).
    pub fn new(service: &'static str) -> Self {
        Outbox {
            service,
            written: Arc::new(Notify::new()),
            followers: None,
        }
    }

    /// This outbox, handing what it commits to `followers` as well.
    pub fn with_followers(mut self, followers: Followers) -> Self {
        self.followers = Some(followers);
        self
    }

    /// Creates the outbox tables (shared by every service of a database).
    pub async fn migrate(db: &Database) -> anyhow::Result<()> {
        db.migrate("outbox", MIGRATIONS).await
    }

    /// The service this outbox belongs to.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Writes `event` in the caller's transaction and returns the complete
    /// envelope. The event exists exactly when the transaction commits. Call
    /// [`notify`](Self::notify) after the commit to publish without waiting
    /// for the relay's next poll.
    pub async fn append(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: NewEvent,
    ) -> Result<events::Event> {
        // Take the aggregate's row lock and its next sequence in one
        // statement: concurrent writers to one aggregate queue here, so
        // sequence order is commit order.
        let sequence: i64 = sqlx::query(
            "INSERT INTO tenantry_outbox_aggregates (aggregate_type, aggregate_id, last_sequence)
             VALUES ($1, $2, 1)
             ON CONFLICT (aggregate_type, aggregate_id)
             DO UPDATE SET last_sequence = tenantry_outbox_aggregates.last_sequence + 1
             RETURNING last_sequence",
        )
        .bind(event.aggregate_type)
        .bind(&event.aggregate_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;

        let now = chrono::Utc::now();
        let event_type = event.event_type;
        let envelope = self.envelope(event, sequence, now);
        sqlx::query(
            "INSERT INTO tenantry_outbox (service, event_id, subject, payload, created_at_us)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.service)
        .bind(&envelope.id)
        .bind(subject_for(self.service, event_type))
        .bind(envelope.encode_to_vec())
        .bind(now.timestamp_micros())
        .execute(&mut **tx)
        .await?;
        Ok(envelope)
    }

    /// Writes `events` in the caller's transaction, as [`append`](Self::append)
    /// writes each, in a few multi-row statements: a batch of a thousand
    /// (an import's) costs a handful of round trips, not two thousand.
    /// Events of one aggregate take consecutive sequences in `events`' order.
    pub async fn append_all(
        &self,
        tx: &mut Transaction<'static, Any>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<events::Event>> {
        if events.len() == 1 {
            let event = events.into_iter().next().expect("one event");
            return Ok(vec![self.append(tx, event).await?]);
        }
        // Each aggregate's row once, with how many sequences it takes; in
        // key order, so that concurrent batches lock rows in one order.
        let mut taken: std::collections::BTreeMap<(&'static str, String), i64> =
            std::collections::BTreeMap::new();
        for event in &events {
            *taken
                .entry((event.aggregate_type, event.aggregate_id.clone()))
                .or_default() += 1;
        }
        let aggregates: Vec<_> = taken.into_iter().collect();
        let mut last = std::collections::HashMap::with_capacity(aggregates.len());
        for chunk in aggregates.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO tenantry_outbox_aggregates (aggregate_type, aggregate_id, last_sequence)
                 VALUES {}
                 ON CONFLICT (aggregate_type, aggregate_id)
                 DO UPDATE SET last_sequence = tenantry_outbox_aggregates.last_sequence
                     + excluded.last_sequence
                 RETURNING aggregate_type, aggregate_id, last_sequence",
                crate::db::values(Backend::of(tx), chunk.len(), 3)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((aggregate_type, aggregate_id), count) in chunk {
                query = query.bind(*aggregate_type).bind(aggregate_id).bind(*count);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let key: (String, String) = (row.try_get(0)?, row.try_get(1)?);
                last.insert(key, row.try_get::<i64, _>(2)?);
            }
        }
        // The first sequence each aggregate takes in this batch.
        let mut next: std::collections::HashMap<(String, String), i64> = aggregates
            .iter()
            .map(|((aggregate_type, aggregate_id), count)| {
                let key = (aggregate_type.to_string(), aggregate_id.clone());
                let first = last.get(&key).copied().unwrap_or(*count) - count + 1;
                (key, first)
            })
            .collect();
        let now = chrono::Utc::now();
        let envelopes: Vec<events::Event> = events
            .into_iter()
            .map(|event| {
                let slot = next
                    .get_mut(&(event.aggregate_type.to_string(), event.aggregate_id.clone()))
                    .expect("every aggregate was counted");
                let sequence = *slot;
                *slot += 1;
                self.envelope(event, sequence, now)
            })
            .collect();
        for chunk in envelopes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO tenantry_outbox (service, event_id, subject, payload, created_at_us)
                 VALUES {}",
                crate::db::values(Backend::of(tx), chunk.len(), 5)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for envelope in chunk {
                query = query
                    .bind(self.service)
                    .bind(envelope.id.clone())
                    .bind(subject_for(self.service, &envelope.r#type))
                    .bind(envelope.encode_to_vec())
                    .bind(now.timestamp_micros());
            }
            query.execute(&mut **tx).await?;
        }
        Ok(envelopes)
    }

    /// The complete envelope of `event`, the `sequence`th of its aggregate.
    fn envelope(
        &self,
        event: NewEvent,
        sequence: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> events::Event {
        events::Event {
            id: new_id().to_string(),
            r#type: event.event_type.to_string(),
            source: self.service.to_string(),
            aggregate_type: event.aggregate_type.to_string(),
            aggregate_id: event.aggregate_id,
            sequence: sequence as u64,
            organization_id: event.organization_id.unwrap_or_default(),
            root_organization_id: event.root_organization_id.unwrap_or_default(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: now.timestamp(),
                nanos: now.timestamp_subsec_nanos() as i32,
            }),
            actor: Some(event.actor),
            request: event.request,
            payload: Some(event.payload),
            changes: event.changes,
            targets: event.targets,
        }
    }

    /// Wakes this process's relay after a commit.
    pub fn notify(&self) {
        self.written.notify_one();
    }

    /// After the commit of `written`: wakes the relay and hands the events
    /// to the read models that follow them (billing's counters, the audit
    /// log), so that the writer's next read shows them. Never fails: a
    /// follower that does not answer learns them by the bus.
    pub async fn committed(&self, written: &[events::Event]) {
        self.notify();
        if let Some(followers) = &self.followers
            && !written.is_empty()
        {
            followers.deliver(written).await;
        }
    }

    /// A relay publishing this outbox's events from `db` to `bus`.
    pub fn relay(&self, db: Database, bus: Arc<dyn EventBus>, config: OutboxConfig) -> Relay {
        Relay {
            outbox: self.clone(),
            db,
            bus,
            config,
        }
    }
}

/// The bus subject of an event type from a service.
pub fn subject_for(service: &str, event_type: &str) -> String {
    format!("{SUBJECT_PREFIX}.{service}.{event_type}")
}

/// Publishes one service's outbox to the bus.
#[derive(Debug)]
pub struct Relay {
    outbox: Outbox,
    db: Database,
    bus: Arc<dyn EventBus>,
    config: OutboxConfig,
}

impl Relay {
    /// Runs until `shutdown` is cancelled, then makes one last attempt to
    /// flush what is pending so a clean stop leaves nothing behind.
    pub async fn run(self, shutdown: CancellationToken) {
        let service = self.outbox.service;
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let mut backoff = poll;
        let mut leading = None;
        loop {
            let is_leader = match self.db.backend() {
                Backend::Sqlite => true,
                Backend::Postgres => self.lead(&mut leading).await,
            };
            let wait = if !is_leader {
                poll
            } else {
                match self.publish_pending().await {
                    Ok(published) if published == self.config.batch_size as usize => {
                        backoff = poll;
                        continue;
                    }
                    Ok(_) => {
                        backoff = poll;
                        poll
                    }
                    Err(error) => {
                        tracing::warn!(
                            service,
                            error = format!("{error:#}"),
                            "outbox relay failed to publish"
                        );
                        if leading.is_some() && !self.db.is_healthy(Duration::from_secs(2)).await {
                            // The lease's connection may be gone with the database.
                            self.db.drop_leases().await;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        backoff
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.outbox.written.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(error) = self.publish_pending().await {
            tracing::warn!(
                service,
                error = format!("{error:#}"),
                "outbox flush at shutdown failed; events stay queued"
            );
        }
        self.delete_published().await;
    }

    /// On Postgres only one replica of a service relays at a time (so events
    /// of one aggregate are never published by two relays at once): the
    /// one holding the service's lease, a session-level advisory lock on
    /// the process's lease connection (outside the pools, which it would
    /// otherwise hold for good). Whether this relay leads now.
    async fn lead(&self, leading: &mut Option<u64>) -> bool {
        if let Some(generation) = *leading
            && !self.db.holds_lease(generation).await
        {
            *leading = None;
        }
        if leading.is_none() {
            let key = crate::db::advisory_key(&["outbox", self.outbox.service]);
            *leading = self.db.try_lease(key).await;
        }
        leading.is_some()
    }

    /// Publishes up to one batch of pending events, in order, stopping at
    /// the first failure. Returns how many were published.
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        let rows = sqlx::query(
            "SELECT position, event_id, subject, payload, created_at_us FROM tenantry_outbox
             WHERE service = $1 AND published_at_us IS NULL
             ORDER BY position LIMIT $2",
        )
        .bind(self.outbox.service)
        .bind(i64::from(self.config.batch_size))
        .fetch_all(self.db.pool())
        .await?;
        // The outbox lag: how long the oldest unpublished event has waited
        // (0 when none waits). A stopped bus shows as a growing age.
        let oldest_us = match rows.first() {
            Some(row) => (crate::db::now_micros() - row.try_get::<i64, _>(4)?).max(0),
            None => 0,
        };
        metrics::gauge!("tenantry_outbox_oldest_pending_seconds", "service" => self.outbox.service)
            .set(oldest_us as f64 / 1e6);
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            messages.push(BusMessage {
                event_id: row.try_get(1)?,
                subject: row.try_get(2)?,
                payload: Bytes::from(row.try_get::<Vec<u8>, _>(3)?),
            });
        }
        let (stored, failure) = self.bus.publish_all(&messages).await;
        let published = rows[..stored]
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        self.mark_published(&published).await?;
        metrics::counter!("tenantry_outbox_published_total", "service" => self.outbox.service)
            .increment(published.len() as u64);
        match failure {
            Some(error) => Err(error),
            None => Ok(published.len()),
        }
    }

    async fn mark_published(&self, positions: &[i64]) -> anyhow::Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (0..positions.len())
            .map(|i| format!("${}", i + 2))
            .collect();
        let sql = format!(
            "UPDATE tenantry_outbox SET published_at_us = $1 WHERE position IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_micros());
        for position in positions {
            query = query.bind(*position);
        }
        query.execute(self.db.writer()).await?;
        Ok(())
    }

    async fn delete_published(&self) {
        let cutoff = now_micros() - (self.config.retain_published_hours as i64) * 3_600_000_000;
        let result =
            sqlx::query("DELETE FROM tenantry_outbox WHERE service = $1 AND published_at_us < $2")
                .bind(self.outbox.service)
                .bind(cutoff)
                .execute(self.db.writer())
                .await;
        if let Err(error) = result {
            tracing::warn!(%error, "deleting published outbox rows failed");
        }
    }
}

/// Counts events not yet published, per service: the outbox lag.
pub async fn pending_count(db: &Database, service: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) FROM tenantry_outbox WHERE service = $1 AND published_at_us IS NULL",
    )
    .bind(service)
    .fetch_one(db.pool())
    .await?
    .try_get(0)?)
}

/// Records that `consumer` processed `event_id`, in the consumer's own
/// transaction. Returns `false` when it already had: the caller then skips
/// the event's effect, which makes redeliveries harmless.
pub async fn claim_event(
    tx: &mut Transaction<'static, Any>,
    consumer: &str,
    event_id: &str,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO tenantry_consumed_events (consumer, event_id, consumed_at_us)
         VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(now_micros())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// [`claim_event`] for many events in a few statements: the ids of those
/// `consumer` had not processed yet (now claimed), for a batch's effects.
pub async fn claim_events(
    tx: &mut Transaction<'static, Any>,
    consumer: &str,
    event_ids: &[&str],
) -> Result<std::collections::HashSet<String>> {
    let backend = Backend::of(tx);
    let mut claimed = std::collections::HashSet::with_capacity(event_ids.len());
    let now = now_micros();
    for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
        let insert = format!(
            "INSERT INTO tenantry_consumed_events (consumer, event_id, consumed_at_us)
             VALUES {} ON CONFLICT (consumer, event_id) DO NOTHING",
            crate::db::values(backend, chunk.len(), 3)
        );
        match backend {
            // Concurrent claimers wait on each other's rows: the insert
            // itself says which it took.
            Backend::Postgres => {
                let mut query =
                    sqlx::query(sqlx::AssertSqlSafe(format!("{insert} RETURNING event_id")));
                for id in chunk {
                    query = query.bind(consumer).bind(*id).bind(now);
                }
                for row in query.fetch_all(&mut **tx).await? {
                    claimed.insert(row.try_get::<String, _>(0)?);
                }
            }
            // The transaction holds the write lock from its start
            // (`BEGIN IMMEDIATE`), so no one claims between the read and the
            // insert; reading the few claimed already spares every new one
            // a row sent back from sqlx's worker thread, as RETURNING does.
            Backend::Sqlite => {
                let mut done = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                    "SELECT event_id FROM tenantry_consumed_events
                     WHERE consumer = ? AND event_id IN {}",
                    crate::db::values(backend, 1, chunk.len())
                )))
                .bind(consumer);
                for id in chunk {
                    done = done.bind(*id);
                }
                let done: std::collections::HashSet<String> =
                    done.fetch_all(&mut **tx).await?.into_iter().collect();
                let mut query = sqlx::query(sqlx::AssertSqlSafe(insert));
                for id in chunk {
                    query = query.bind(consumer).bind(*id).bind(now);
                }
                query.execute(&mut **tx).await?;
                claimed.extend(
                    chunk
                        .iter()
                        .filter(|id| !done.contains(**id))
                        .map(|id| id.to_string()),
                );
            }
        }
    }
    Ok(claimed)
}

/// The most events a consumer hands its handler at once.
const CONSUMER_BATCH: usize = 256;

/// Delivers events from the durable consumer `name` to `handle` until
/// `shutdown`, in order, in batches: the next event, and up to
/// [`CONSUMER_BATCH`] in all of those the bus already holds, so a backlog
/// costs the handler one transaction per batch rather than one per event.
/// The batch is acknowledged only after `handle` returned `Ok`; on an
/// error the same batch is retried with back-off, so a failing handler
/// delays delivery and never drops an event.
pub async fn run_consumer<F, Fut>(
    bus: Arc<dyn EventBus>,
    name: String,
    filters: Vec<String>,
    shutdown: CancellationToken,
    mut handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(Vec<events::Event>) -> Fut + Send,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let name = name.as_str();
    let mut subscription = bus.subscribe(name, &filters).await?;
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            delivery = subscription.next() => delivery,
        };
        let first = match first {
            Ok(delivery) => delivery,
            Err(error) => {
                tracing::warn!(
                    consumer = name,
                    error = format!("{error:#}"),
                    "receiving from the bus failed"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut deliveries = vec![first];
        while deliveries.len() < CONSUMER_BATCH
            && let Some(delivery) = subscription.ready()
        {
            deliveries.push(delivery);
        }
        let mut batch = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            match events::Event::decode(delivery.message.payload.clone()) {
                Ok(event) => batch.push(event),
                // A message that is not an event can never be processed:
                // it is acknowledged with the batch so it does not block
                // the ones behind it.
                Err(error) => {
                    tracing::error!(consumer = name, event_id = %delivery.message.event_id, %error, "dropping an undecodable bus message")
                }
            }
        }
        let occurred_at = batch.last().and_then(|event| event.occurred_at);
        if !batch.is_empty() {
            let mut backoff = Duration::from_millis(50);
            while let Err(error) = handle(batch.clone()).await {
                let first_id = &batch[0].id;
                tracing::warn!(consumer = name, event_id = %first_id, events = batch.len(), error = format!("{error:#}"), "event handler failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        // The bus lag as this consumer sees it: from the change to its effect.
        if let Some(at) = occurred_at {
            let occurred_us = at.seconds * 1_000_000 + i64::from(at.nanos) / 1_000;
            let lag_us = (crate::db::now_micros() - occurred_us).max(0);
            metrics::gauge!("tenantry_consumer_lag_seconds", "consumer" => name.to_string())
                .set(lag_us as f64 / 1e6);
        }
        for delivery in deliveries {
            let event_id = delivery.message.event_id.clone();
            if let Err(error) = delivery.ack().await {
                // The event will come again; the handler's claim makes that harmless.
                tracing::warn!(consumer = name, %event_id, error = format!("{error:#}"), "acknowledging failed");
            }
        }
    }
}
