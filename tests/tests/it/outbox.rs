//! The transactional outbox and the event bus, on every storage (SQLite,
//! Postgres when `TENANTRY_TEST_DATABASE_URL` is set) and every bus (local,
//! real NATS JetStream when `TENANTRY_TEST_NATS_URL` is set).
//!
//! The promises under test: an event exists exactly when its change commits;
//! it reaches consumers at least once and in order per aggregate; consumers
//! make that exactly-once in effect; and nothing is lost when the bus is
//! down, a consumer crashes mid-batch, or a relay dies mid-flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use tenantry_kit::bus::{BusMessage, EventBus, LocalBus, NatsBus, Subscription};
use tenantry_kit::config::OutboxConfig;
use tenantry_kit::db::{Backend, Database};
use tenantry_kit::outbox::{self, NewEvent, Outbox, claim_event, run_consumer};
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_testkit::{NatsServer, Storage, TestDatabase, nats_url, storages, unique_name};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const CONSUMER: &str = "test-consumer";

#[derive(Debug, Clone)]
enum BusKind {
    Local,
    Nats(String),
}

fn buses() -> Vec<BusKind> {
    let mut buses = vec![BusKind::Local];
    if let Some(url) = nats_url() {
        buses.push(BusKind::Nats(url));
    }
    buses
}

/// A database with the outbox, a table to change and a table where the
/// consumer records the effect of each event it handles.
struct Harness {
    db: Database,
    outbox: Outbox,
    _database: TestDatabase,
}

impl Harness {
    async fn new(storage: Storage) -> Harness {
        let database = TestDatabase::new(storage).await.unwrap();
        let db = database.connect().await.unwrap();
        Outbox::migrate(&db).await.unwrap();
        LocalBus::migrate(&db).await.unwrap();
        let delivered = match db.backend() {
            Backend::Sqlite => "delivered INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "delivered BIGSERIAL PRIMARY KEY",
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE widgets (id TEXT PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE effects ({delivered}, event_id TEXT NOT NULL,
                                   aggregate_id TEXT NOT NULL, sequence BIGINT NOT NULL);"
        )))
        .execute(db.writer())
        .await
        .unwrap();
        Harness {
            db,
            outbox: Outbox::new("widgets"),
            _database: database,
        }
    }

    /// The bus, and the NATS handle to delete the test's stream with.
    async fn bus(&self, kind: &BusKind) -> (Arc<dyn EventBus>, Option<NatsBus>) {
        match kind {
            BusKind::Local => (Arc::new(LocalBus::new(self.db.clone())), None),
            BusKind::Nats(url) => {
                let bus = nats(url).await;
                (Arc::new(bus.clone()), Some(bus))
            }
        }
    }

    /// Changes a widget and writes its event in one transaction.
    async fn write(&self, aggregate: &str, name: &str, commit: bool) {
        let mut tx = self.db.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO widgets (id, name) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        )
        .bind(aggregate)
        .bind(name)
        .execute(&mut *tx)
        .await
        .unwrap();
        // Any payload of the contract will do; the relay does not read it.
        let payload = events::TeamUpdated {
            team_id: aggregate.into(),
            display_name: name.into(),
            ..Default::default()
        };
        let actor = events::Actor {
            kind: events::actor::Kind::System as i32,
            ..Default::default()
        };
        let event = NewEvent::new("widget", aggregate, actor, &payload);
        self.outbox.append(&mut tx, event).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
            self.outbox.notify();
        } else {
            tx.rollback().await.unwrap();
        }
    }

    fn relay(&self, bus: Arc<dyn EventBus>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let config = OutboxConfig {
            poll_interval_ms: 50,
            batch_size: 4,
            ..OutboxConfig::default()
        };
        let relay = self.outbox.relay(self.db.clone(), bus, config);
        (stop.clone(), tokio::spawn(relay.run(stop)))
    }

    /// Runs the idempotent consumer; `crash_after` makes it die (panic)
    /// right after committing the effect of that many events, before the ack.
    fn consume(
        &self,
        bus: Arc<dyn EventBus>,
        crash_after: Option<usize>,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let stop = CancellationToken::new();
        let db = self.db.clone();
        let handled = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run_consumer(
            bus,
            CONSUMER.to_string(),
            vec!["tenantry.events.>".to_string()],
            stop.clone(),
            move |batch: Vec<events::Event>| {
                let db = db.clone();
                let handled = handled.clone();
                async move {
                    // One transaction per event, so a crash can fall
                    // between two of a batch's effects.
                    for event in batch {
                        let mut tx = db.begin().await?;
                        if claim_event(&mut tx, CONSUMER, &event.id).await? {
                            sqlx::query(
                                "INSERT INTO effects (event_id, aggregate_id, sequence) VALUES ($1, $2, $3)",
                            )
                            .bind(&event.id)
                            .bind(&event.aggregate_id)
                            .bind(event.sequence as i64)
                            .execute(&mut *tx)
                            .await?;
                        }
                        tx.commit().await?;
                        let count = handled.fetch_add(1, Ordering::SeqCst) + 1;
                        if crash_after == Some(count) {
                            panic!("simulated consumer crash before the ack");
                        }
                    }
                    Ok(())
                }
            },
        ));
        (stop, task)
    }

    async fn effects(&self) -> Vec<(String, String, i64)> {
        sqlx::query("SELECT event_id, aggregate_id, sequence FROM effects ORDER BY delivered")
            .fetch_all(self.db.pool())
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    async fn outbox_ids(&self) -> Vec<String> {
        sqlx::query("SELECT event_id FROM tenantry_outbox ORDER BY position")
            .fetch_all(self.db.pool())
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Waits (bounded) until the consumer has recorded `count` effects.
    async fn wait_for_effects(&self, count: usize) {
        for _ in 0..600 {
            if self.effects().await.len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "only {} of {count} events arrived",
            self.effects().await.len()
        );
    }

    /// Every outbox event arrived exactly once, and per aggregate in order.
    async fn assert_exactly_once_in_order(&self) {
        let effects = self.effects().await;
        let mut ids: Vec<String> = effects.iter().map(|e| e.0.clone()).collect();
        let mut expected = self.outbox_ids().await;
        ids.sort();
        expected.sort();
        assert_eq!(ids, expected, "every committed event, each exactly once");
        let mut last: std::collections::HashMap<String, i64> = Default::default();
        for (_, aggregate, sequence) in &effects {
            let previous = last.insert(aggregate.clone(), *sequence).unwrap_or(0);
            assert_eq!(
                *sequence,
                previous + 1,
                "aggregate {aggregate} out of order"
            );
        }
    }
}

async fn nats(url: &str) -> NatsBus {
    NatsBus::connect(url, &unique_name("t"))
        .await
        .unwrap()
        .with_ack_wait(Duration::from_secs(1))
}

#[tokio::test]
async fn committed_events_arrive_once_in_order_and_rolled_back_ones_never_exist() {
    for storage in storages() {
        for kind in buses() {
            let harness = Arc::new(Harness::new(storage).await);
            let (bus, nats_bus) = harness.bus(&kind).await;
            // Concurrent writers on three aggregates.
            let writers: Vec<_> = (0..3)
                .map(|writer| {
                    let harness = harness.clone();
                    tokio::spawn(async move {
                        for step in 0..5 {
                            harness
                                .write(&format!("w{writer}"), &format!("name {step}"), true)
                                .await;
                        }
                    })
                })
                .collect();
            harness.write("rolled-back", "never", false).await;
            for writer in writers {
                writer.await.unwrap();
            }
            assert_eq!(
                harness.outbox_ids().await.len(),
                15,
                "the rolled-back event is not in the outbox"
            );

            let (stop_relay, relay) = harness.relay(bus.clone());
            let (stop_consumer, consumer) = harness.consume(bus.clone(), None);
            harness.wait_for_effects(15).await;
            harness.assert_exactly_once_in_order().await;
            assert_eq!(
                outbox::pending_count(&harness.db, "widgets").await.unwrap(),
                0
            );

            stop_consumer.cancel();
            consumer.await.unwrap().unwrap();
            stop_relay.cancel();
            relay.await.unwrap();
            cleanup(nats_bus).await;
        }
    }
}

#[tokio::test]
async fn events_written_while_nats_is_down_are_delivered_after_it_returns() {
    // This test runs its own nats-server, which CI installs with the shared one.
    if nats_url().is_none() {
        return;
    }
    for storage in storages() {
        let harness = Harness::new(storage).await;
        let mut server = NatsServer::start().await.unwrap();
        let bus: Arc<dyn EventBus> = Arc::new(nats(&server.url()).await);
        let (stop_relay, relay) = harness.relay(bus.clone());
        let (stop_consumer, consumer) = harness.consume(bus.clone(), None);
        for step in 0..3 {
            harness.write("a", &format!("before {step}"), true).await;
        }
        harness.wait_for_effects(3).await;

        server.stop();
        for step in 0..5 {
            // Writes keep succeeding: the outbox holds their events.
            harness.write("a", &format!("during {step}"), true).await;
            harness.write("b", &format!("during {step}"), true).await;
        }
        // Let the relay try (and fail) a few times against the dead server.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            outbox::pending_count(&harness.db, "widgets").await.unwrap(),
            10
        );

        server.resume().await.unwrap();
        harness.wait_for_effects(13).await;
        harness.assert_exactly_once_in_order().await;
        assert_eq!(
            outbox::pending_count(&harness.db, "widgets").await.unwrap(),
            0
        );

        stop_consumer.cancel();
        consumer.await.unwrap().unwrap();
        stop_relay.cancel();
        relay.await.unwrap();
    }
}

#[tokio::test]
async fn a_consumer_that_crashes_mid_batch_loses_nothing_and_doubles_nothing() {
    for storage in storages() {
        for kind in buses() {
            let harness = Harness::new(storage).await;
            let (bus, nats_bus) = harness.bus(&kind).await;
            for step in 0..10 {
                harness
                    .write(
                        if step % 2 == 0 { "a" } else { "b" },
                        &format!("n{step}"),
                        true,
                    )
                    .await;
            }
            let (stop_relay, relay) = harness.relay(bus.clone());

            // The consumer commits the effect of its 4th event, then dies
            // before acknowledging it.
            let (_, crashed) = harness.consume(bus.clone(), Some(4));
            assert!(crashed.await.unwrap_err().is_panic());
            assert_eq!(harness.effects().await.len(), 4);

            // Restarted, it is handed the unacknowledged event again, and
            // skips its effect because it already claimed that event id.
            let (stop_consumer, consumer) = harness.consume(bus.clone(), None);
            harness.wait_for_effects(10).await;
            harness.assert_exactly_once_in_order().await;

            stop_consumer.cancel();
            consumer.await.unwrap().unwrap();
            stop_relay.cancel();
            relay.await.unwrap();
            cleanup(nats_bus).await;
        }
    }
}

/// A bus that stores the first `healthy` messages, then stores one more and
/// hangs before acknowledging it: the relay dies between the bus accepting
/// an event and the outbox marking it sent.
#[derive(Debug)]
struct DyingBus {
    inner: Arc<dyn EventBus>,
    healthy: usize,
    published: AtomicUsize,
    hung: Arc<Notify>,
    hanging: AtomicBool,
}

#[async_trait]
impl EventBus for DyingBus {
    async fn publish(&self, message: &BusMessage) -> anyhow::Result<()> {
        if self.published.fetch_add(1, Ordering::SeqCst) < self.healthy {
            return self.inner.publish(message).await;
        }
        self.inner.publish(message).await?;
        self.hanging.store(true, Ordering::SeqCst);
        self.hung.notify_one();
        std::future::pending().await
    }

    async fn subscribe(
        &self,
        name: &str,
        filters: &[String],
    ) -> anyhow::Result<Box<dyn Subscription>> {
        self.inner.subscribe(name, filters).await
    }

    fn kind(&self) -> &'static str {
        "dying"
    }
}

#[tokio::test]
async fn a_relay_restarted_mid_flight_loses_nothing() {
    for storage in storages() {
        for kind in buses() {
            let harness = Harness::new(storage).await;
            let (bus, nats_bus) = harness.bus(&kind).await;
            for step in 0..10 {
                harness.write("a", &format!("n{step}"), true).await;
            }
            let hung = Arc::new(Notify::new());
            let dying = Arc::new(DyingBus {
                inner: bus.clone(),
                healthy: 3,
                published: AtomicUsize::new(0),
                hung: hung.clone(),
                hanging: AtomicBool::new(false),
            });
            let (_, relay) = harness.relay(dying.clone());
            hung.notified().await;
            assert!(dying.hanging.load(Ordering::SeqCst));
            relay.abort();
            let _ = relay.await;
            // Four events reached the bus; the relay marks a batch sent after
            // the bus acknowledged it, so at least the 4th is still pending
            // (and, with batches of four, the three before it too).
            let pending = outbox::pending_count(&harness.db, "widgets").await.unwrap();
            assert!((7..=10).contains(&pending), "pending {pending}");

            let (stop_relay, relay) = harness.relay(bus.clone());
            let (stop_consumer, consumer) = harness.consume(bus.clone(), None);
            harness.wait_for_effects(10).await;
            harness.assert_exactly_once_in_order().await;

            stop_consumer.cancel();
            consumer.await.unwrap().unwrap();
            // The relay marks what the bus took once the bus acknowledged it,
            // which may be after a consumer applied it: stopped, it has.
            stop_relay.cancel();
            relay.await.unwrap();
            assert_eq!(
                outbox::pending_count(&harness.db, "widgets").await.unwrap(),
                0
            );
            cleanup(nats_bus).await;
        }
    }
}

#[tokio::test]
async fn a_clean_shutdown_flushes_the_outbox() {
    for storage in storages() {
        let harness = Harness::new(storage).await;
        let (bus, _) = harness.bus(&BusKind::Local).await;
        for step in 0..3 {
            harness.write("a", &format!("n{step}"), true).await;
        }
        // A relay told to stop before it ever ran still flushes once.
        let stop = CancellationToken::new();
        stop.cancel();
        let config = OutboxConfig {
            batch_size: 256,
            ..OutboxConfig::default()
        };
        harness
            .outbox
            .relay(harness.db.clone(), bus.clone(), config)
            .run(stop)
            .await;
        assert_eq!(
            outbox::pending_count(&harness.db, "widgets").await.unwrap(),
            0
        );

        let (stop_consumer, consumer) = harness.consume(bus, None);
        harness.wait_for_effects(3).await;
        harness.assert_exactly_once_in_order().await;
        stop_consumer.cancel();
        consumer.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn installations_sharing_one_database_relay_side_by_side() {
    // On Postgres each harness is a schema of its own in one database, as
    // two installations (or two test runs) sharing a server would be: the
    // leadership one relay holds must not keep the other's from relaying.
    for storage in storages() {
        let first = Harness::new(storage).await;
        let second = Harness::new(storage).await;
        let mut running = Vec::new();
        for harness in [&first, &second] {
            let (bus, _) = harness.bus(&BusKind::Local).await;
            let relay = harness.relay(bus.clone());
            let consumer = harness.consume(bus, None);
            harness.write("a", "n0", true).await;
            harness.wait_for_effects(1).await;
            running.push((relay, consumer));
        }
        for ((stop_relay, relay), (stop_consumer, consumer)) in running {
            stop_relay.cancel();
            relay.await.unwrap();
            stop_consumer.cancel();
            consumer.await.unwrap().unwrap();
        }
    }
}

/// Deletes a test's NATS stream; the local bus lives in the test's own
/// database and needs nothing.
async fn cleanup(nats: Option<NatsBus>) {
    if let Some(bus) = nats {
        bus.delete_stream().await.unwrap();
    }
}

/// A batch appended in multi-row statements numbers each aggregate's events
/// on from where one-by-one appends left them, in the batch's order; a
/// batch of claims claims each event once.
#[tokio::test]
async fn a_batch_continues_each_aggregates_sequence_and_claims_each_event_once() {
    for storage in storages() {
        let h = Harness::new(storage).await;
        h.write("a", "one", true).await;
        let event = |aggregate: &str| {
            NewEvent::new(
                "widget",
                aggregate,
                events::Actor::default(),
                &events::TeamUpdated {
                    team_id: aggregate.into(),
                    ..Default::default()
                },
            )
        };
        let mut tx = h.db.begin().await.unwrap();
        let written = h
            .outbox
            .append_all(
                &mut tx,
                vec![event("a"), event("b"), event("a"), event("b"), event("c")],
            )
            .await
            .unwrap();
        let sequences: Vec<(String, u64)> = written
            .iter()
            .map(|e| (e.aggregate_id.clone(), e.sequence))
            .collect();
        assert_eq!(
            sequences,
            [("a", 2), ("b", 1), ("a", 3), ("b", 2), ("c", 1)].map(|(a, s)| (a.to_string(), s))
        );
        let ids: Vec<&str> = written.iter().map(|e| e.id.as_str()).collect();
        let claimed = outbox::claim_events(&mut tx, CONSUMER, &ids[..3])
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        let again = outbox::claim_events(&mut tx, CONSUMER, &ids).await.unwrap();
        assert_eq!(again.len(), 2, "only the two not claimed before");
        tx.commit().await.unwrap();
        let rows: i64 = sqlx::query("SELECT COUNT(*) FROM tenantry_outbox")
            .fetch_one(h.db.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 6);
    }
}
