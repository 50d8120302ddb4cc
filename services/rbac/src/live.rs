//! The index as a replica holds it: loaded from a snapshot of the store at
//! start, then kept current by following the change log in revision order.
//! Several replicas follow the same store; each answers from its own copy.
//!
//! Consistency: every write returns its revision as a token. A check with
//! `at_least_as_fresh(token)` waits (bounded) until this replica applied
//! that revision; `fully_consistent` first reads the store's newest
//! revision; `minimize_latency` answers from what is applied now.

use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use tenantry_kit::consistency::Token;
use tenantry_kit::error::{Error, Result};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::engine::{Change, Index};
use crate::error::Error as Refusal;
use crate::store::Store;

/// How long a check may wait for its replica to catch up.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// How often a replica looks for changes written by others when no
/// notification came (writes on Postgres notify every replica at commit).
const POLL: Duration = Duration::from_millis(250);
/// How often a replica tells the others it is alive and what it applied.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long a heartbeat vouches for a replica. Past it, writers stop
/// waiting for the replica, and the replica itself stops answering (its own
/// clock runs from before the heartbeat was sent, so it stops first).
const LEASE: Duration = Duration::from_secs(2);
/// Margin for the replica's own clock against the database's.
const LEASE_MARGIN: Duration = Duration::from_millis(250);
/// How long a write waits for every live replica to apply it before it
/// fences the ones behind (they answer again only once they caught up).
const REPLICA_WAIT: Duration = Duration::from_secs(1);
/// Registrations not refreshed for this long are deleted.
const FORGET_REPLICAS: Duration = Duration::from_secs(3600);
/// The applied revision a replica registers with while it loads.
const LOADING: i64 = -1;
/// The most change rows read at once.
const BATCH: i64 = 10_000;
/// How often the change log is compacted.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// A replica's index.
#[derive(Debug)]
pub struct LiveIndex {
    index: RwLock<Index>,
    applied: watch::Sender<i64>,
    store: Store,
    poke: Notify,
    catching_up: tokio::sync::Mutex<()>,
    /// This replica's registration (see `rbac_replicas`).
    replica: String,
    /// Until when this replica may answer, by its last heartbeat (shared
    /// stores only).
    lease_until: std::sync::Mutex<Instant>,
    /// A revision another replica's write requires before this one answers.
    fence: std::sync::atomic::AtomicI64,
}

/// The index a snapshot's changes build; a stored change that does not
/// apply is logged and skipped.
fn built(changes: &[Change]) -> Index {
    Index::from_changes(changes, |_, error| {
        tracing::warn!(%error, "a stored change does not apply; skipped");
    })
}

impl LiveIndex {
    /// Loads the index from the store. With a shared store the replica
    /// registers first (as still loading, so writes fence it instead of
    /// waiting), so that every write committed after its snapshot either
    /// waits for it or fences it.
    pub async fn load(store: Store) -> anyhow::Result<Arc<LiveIndex>> {
        // The index holds every tenant.
        tenantry_kit::tenancy::system(LiveIndex::load_every_tenant(store)).await
    }

    async fn load_every_tenant(store: Store) -> anyhow::Result<Arc<LiveIndex>> {
        let started = std::time::Instant::now();
        let replica = tenantry_kit::id::new_id().to_string();
        if store.shared() {
            store.heartbeat(&replica, LOADING).await?;
        }
        let (revision, changes) = store.snapshot().await?;
        let index = built(&changes);
        tracing::info!(
            revision,
            objects = index.objects(),
            relationships = index.relationships(),
            millis = started.elapsed().as_millis() as u64,
            "authorization index loaded"
        );
        let (applied, _) = watch::channel(revision);
        let live = Arc::new(LiveIndex {
            index: RwLock::new(index),
            applied,
            store,
            poke: Notify::new(),
            catching_up: tokio::sync::Mutex::new(()),
            replica,
            lease_until: std::sync::Mutex::new(Instant::now()),
            fence: std::sync::atomic::AtomicI64::new(0),
        });
        if live.store.shared() {
            // Answer only at (or past) whatever writes fenced while loading.
            live.heartbeat().await?;
            let fence = live.fence.load(std::sync::atomic::Ordering::Acquire);
            live.catch_up().await?;
            if live.applied() < fence {
                anyhow::bail!("the change log ends before revision {fence}");
            }
        }
        Ok(live)
    }

    /// Refreshes this replica's registration and lease; takes in a fence.
    async fn heartbeat(&self) -> Result<()> {
        let sent = Instant::now();
        let fence = self.store.heartbeat(&self.replica, self.applied()).await?;
        self.fence
            .fetch_max(fence, std::sync::atomic::Ordering::AcqRel);
        *self
            .lease_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sent + LEASE - LEASE_MARGIN;
        Ok(())
    }

    /// Whether this replica may answer now: always on a store of its own;
    /// on a shared store, while its lease holds (writers count on it).
    pub(crate) fn may_answer(&self) -> Result<()> {
        if !self.store.shared() {
            return Ok(());
        }
        let lease = *self
            .lease_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if Instant::now() < lease {
            return Ok(());
        }
        Err(Refusal::ReplicaIsolated.into())
    }

    /// Waits until every other live replica has applied `revision`, so the
    /// write's effects show on every replica before it returns, even to a
    /// caller without its token. A replica that does not get there within
    /// [`REPLICA_WAIT`] (or is still loading) is fenced: it answers again
    /// only once it has applied the revision, and this waits until it has
    /// heartbeated since the fence (so it knows) or its lease has run out.
    pub async fn await_replicas(&self, revision: i64) -> Result<()> {
        if !self.store.shared() {
            return Ok(());
        }
        let deadline = Instant::now() + REPLICA_WAIT;
        loop {
            let lagging = self
                .store
                .lagging_replicas(&self.replica, revision, LEASE)
                .await?;
            if lagging.is_empty() {
                return Ok(());
            }
            let loading = lagging.iter().any(|(_, applied, _)| *applied == LOADING);
            if loading || Instant::now() >= deadline {
                return self.fence_replicas(revision, lagging).await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Fences `lagging` at `revision` and waits until each has seen it or
    /// lost its lease.
    async fn fence_replicas(&self, revision: i64, lagging: Vec<(String, i64, i64)>) -> Result<()> {
        metrics::counter!("tenantry_rbac_replicas_fenced_total").increment(lagging.len() as u64);
        let deadline = Instant::now() + HEARTBEAT + LEASE;
        for (id, _, _) in lagging {
            let fenced_at = self.store.fence(&id, revision).await?;
            while Instant::now() < deadline {
                match self.store.replica_seen(&id).await? {
                    Some(seen) if seen <= fenced_at => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Heartbeats and listens for new revisions until shutdown (shared
    /// stores only).
    pub fn spawn_replica_tasks(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        if !self.store.shared() {
            return;
        }
        let live = self.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                }
                if let Err(error) = live.heartbeat().await {
                    tracing::warn!(error = %error, "the replica heartbeat failed");
                }
            }
        });
        let live = self.clone();
        tasks.spawn(async move { live.listen(shutdown).await });
    }

    /// Wakes the follower on every committed revision (Postgres `NOTIFY`),
    /// reconnecting after failures.
    async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let listened = async {
                let mut listener =
                    sqlx::postgres::PgListener::connect(self.store.database().url()).await?;
                let schema: String = sqlx::query_scalar("SELECT current_schema()")
                    .fetch_one(&mut listener)
                    .await?;
                listener.listen(&format!("{schema}_rbac_changes")).await?;
                loop {
                    listener.recv().await?;
                    self.poke.notify_one();
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                result = listened => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "listening for index changes failed; polling until it is back");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// The index, to read. Held briefly: writers wait for readers.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The newest revision applied here.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Applies every change the store has beyond what is applied. A replica
    /// that fell behind the compaction floor reloads its index from a fresh
    /// snapshot instead.
    pub async fn catch_up(&self) -> Result<()> {
        let _one_at_a_time = self.catching_up.lock().await;
        if self.applied() < self.store.floor().await? {
            return self.reload().await;
        }
        loop {
            let from = self.applied();
            let mut batch = self.store.changes_after(from, BATCH).await?;
            let (Some(&(first, _)), Some(&(last, _))) = (batch.first(), batch.last()) else {
                return Ok(());
            };
            let complete = batch.len() < BATCH as usize;
            // A batch cut inside a revision applies only the revisions it
            // holds whole; one revision larger than a batch is read alone.
            let upto = if complete {
                last
            } else if first == last {
                batch = self
                    .store
                    .changes_of(first)
                    .await?
                    .into_iter()
                    .map(|c| (first, c))
                    .collect();
                first
            } else {
                last - 1
            };
            {
                let mut index = self
                    .index
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for (_, change) in batch.iter().filter(|(r, _)| *r <= upto) {
                    if let Err(error) = index.apply(change) {
                        tracing::warn!(%error, "a logged change does not apply; skipped");
                    }
                }
            }
            self.applied.send_replace(upto);
            if self.store.shared()
                && let Err(error) = self.store.report_applied(&self.replica, upto).await
            {
                tracing::debug!(error = %error, "reporting the applied revision failed");
            }
            if complete {
                return Ok(());
            }
        }
    }

    /// Replaces the index with one built from a fresh snapshot.
    async fn reload(&self) -> Result<()> {
        // The index holds every tenant.
        let (revision, changes) = tenantry_kit::tenancy::system(self.store.snapshot()).await?;
        let index = built(&changes);
        *self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = index;
        tracing::warn!(
            revision,
            "this replica fell behind the compacted change log and reloaded its index"
        );
        self.applied.send_replace(revision);
        Ok(())
    }

    /// Follows the change log until shutdown.
    pub fn spawn_follower(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        let live = self.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(POLL) => {}
                    _ = live.poke.notified() => {}
                }
                if let Err(error) = live.catch_up().await {
                    tracing::warn!(error = %error, "following the change log failed");
                }
            }
        });
    }

    /// Waits until `revision` is applied here, or fails after the bound.
    pub async fn wait_for(&self, revision: i64) -> Result<()> {
        if self.applied() >= revision {
            return Ok(());
        }
        self.poke.notify_one();
        let mut applied = self.applied.subscribe();
        match tokio::time::timeout(MAX_WAIT, applied.wait_for(|a| *a >= revision)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Refusal::IndexBehind.into()),
        }
    }

    /// Resolves a request's consistency and waits for it; returns the
    /// revision the answer reflects. Whatever the request asks, the answer
    /// also reflects the caller's session: their own writes and the token
    /// they sent in metadata (`tenantry_kit::consistency`), so
    /// `minimize_latency` never means older than the caller's last write.
    pub async fn at(&self, consistency: Option<&authz_pb::Consistency>) -> Result<i64> {
        use authz_pb::consistency::Requirement;
        self.may_answer()?;
        let session = tenantry_kit::consistency::required();
        let mut needed = session
            .revision
            .max(self.fence.load(std::sync::atomic::Ordering::Acquire));
        match consistency.and_then(|c| c.requirement.as_ref()) {
            None | Some(Requirement::MinimizeLatency(_)) => {}
            Some(Requirement::AtLeastAsFresh(token)) => {
                needed = needed.max(parse_token(&token.token)?);
            }
            Some(Requirement::FullyConsistent(_)) => {
                needed = needed.max(self.store.head().await?);
            }
        }
        if needed > self.applied() && needed > self.store.head().await? {
            return Err(Error::invalid_field(
                "consistency.at_least_as_fresh",
                "is from the future: no such revision was written",
            ));
        }
        if let Some(event) = &session.pending_event {
            self.wait_for_event(event).await?;
        }
        self.wait_for(needed).await?;
        Ok(self.applied())
    }

    /// Waits until the event `id` (a write's event that its service could
    /// not hand over at once) is applied here; it arrives by the bus or the
    /// service's retry. Fails closed after the bound.
    async fn wait_for_event(&self, id: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        let mut applied = self.applied.subscribe();
        loop {
            if self
                .store
                .event_applied(crate::directory::CONSUMER, id)
                .await?
            {
                // Claimed with its changes in one transaction: the store's
                // newest revision covers it.
                let head = self.store.head().await?;
                return self.wait_for(head).await;
            }
            self.poke.notify_one();
            let changed = tokio::time::timeout_at(deadline, applied.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return Err(Refusal::IndexBehind.into());
            }
        }
    }
}

/// Keeps the change log to the newest `retain` revisions. Any replica may
/// run it: compacting is idempotent and only ever raises the floor.
pub fn spawn_compactor(
    store: Store,
    retain: u32,
    shutdown: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    tasks.spawn(tenantry_kit::tenancy::system(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(COMPACT_EVERY) => {}
            }
            let result = async {
                let floor = store.head().await? - i64::from(retain);
                if floor > store.floor().await? {
                    let deleted = store.compact(floor).await?;
                    tracing::debug!(floor, deleted, "compacted the change log");
                }
                if store.shared() {
                    store.forget_replicas(FORGET_REPLICAS).await?;
                }
                Ok::<_, tenantry_kit::Error>(())
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(error = %error, "compacting the change log failed");
            }
        }
    }));
}

/// The token of a revision: the suite's consistency token.
pub fn token(revision: i64) -> authz_pb::ZedToken {
    authz_pb::ZedToken {
        token: Token::at(revision).to_string(),
    }
}

/// The revision in a token; anything else is INVALID_ARGUMENT. A token
/// that also names a pending event counts by its revision here (such tokens
/// travel in metadata, where the event is waited for too).
pub fn parse_token(token: &str) -> Result<i64> {
    parse_token_in("consistency.at_least_as_fresh", token)
}

/// [`parse_token`] for a token given in `field`, which the error names.
pub fn parse_token_in(field: &str, token: &str) -> Result<i64> {
    Token::parse(token)
        .map(|token| token.revision)
        .map_err(|e| Error::invalid_field(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_token(&token(42).token).unwrap(), 42);
        for bad in ["", "r", "42", "r-1", "rx", "r1e3", "r99999999999999999999"] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }
}
