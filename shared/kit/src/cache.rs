//! [`Cache`]: the one kind of cache a request path may keep.
//!
//! Whatever a request leaves behind must be bounded by configuration, not by
//! traffic: a flood of distinct tokens, API keys, organizations or client
//! addresses has to evict entries, never grow the process. So every cache
//! holds at most `capacity` entries, each only until its own deadline (a
//! token's expiry, a time-to-live), and reports its size as the gauge
//! `tenantry_cache_entries{cache}`.
//!
//! It wraps moka: admission by frequency (TinyLFU) keeps the hot entries — a
//! service's own token, a busy organization's limits — when a flood of
//! one-off keys arrives, and entries past their deadline are never returned
//! and are dropped by its housekeeping.

use std::hash::Hash;
use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;
use moka::{Equivalent, Expiry, ops::compute::Op};

/// A bounded cache whose entries expire at their own deadlines.
pub struct Cache<K, V> {
    name: &'static str,
    inner: Moka<K, Entry<V>>,
}

/// A value and the instant it stops being served.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    deadline: Instant,
}

/// Expires each entry at its deadline, or once it has not been read for
/// `idle` when that comes first.
struct AtDeadline {
    idle: Option<Duration>,
}

impl AtDeadline {
    fn left<V>(&self, entry: &Entry<V>, now: Instant) -> Option<Duration> {
        let left = entry.deadline.saturating_duration_since(now);
        Some(self.idle.map_or(left, |idle| left.min(idle)))
    }
}

impl<K, V> Expiry<K, Entry<V>> for AtDeadline {
    fn expire_after_create(&self, _: &K, entry: &Entry<V>, now: Instant) -> Option<Duration> {
        self.left(entry, now)
    }

    fn expire_after_read(
        &self,
        _: &K,
        entry: &Entry<V>,
        now: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        self.left(entry, now)
    }

    fn expire_after_update(
        &self,
        _: &K,
        entry: &Entry<V>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.left(entry, now)
    }
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name)
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache of at most `capacity` entries, reported under `name`.
    pub fn new(name: &'static str, capacity: u64) -> Self {
        Self::build(name, capacity, None)
    }

    /// As [`new`](Self::new), and an entry nobody read for `idle` goes
    /// before its deadline: a token its client stopped presenting (it got a
    /// new one) does not stay until it expires.
    pub fn with_idle(name: &'static str, capacity: u64, idle: Duration) -> Self {
        Self::build(name, capacity, Some(idle))
    }

    fn build(name: &'static str, capacity: u64, idle: Option<Duration>) -> Self {
        let inner = Moka::builder()
            .name(name)
            .max_capacity(capacity)
            .expire_after(AtDeadline { idle })
            .support_invalidation_closures()
            .build();
        Cache { name, inner }
    }

    /// The value under `key` (or a borrowed form of it, such as `&str` for
    /// a `String` key), unless it is missing or past its deadline.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Equivalent<K> + Hash + ?Sized,
    {
        self.inner
            .get(key)
            .filter(|entry| entry.deadline > Instant::now())
            .map(|entry| entry.value)
    }

    /// Stores `value` under `key` for `ttl`.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        self.insert_until(key, value, Instant::now() + ttl);
    }

    /// Stores `value` under `key` until `deadline`.
    pub fn insert_until(&self, key: K, value: V, deadline: Instant) {
        self.inner.insert(key, Entry { value, deadline });
        self.report();
    }

    /// Reads and replaces the value under `key` atomically (no other update
    /// of that key runs in between): `update` gets the live value, if any,
    /// and returns the new value with its deadline (or `None` to leave the
    /// entry as it is) and what the caller gets back.
    pub fn update<R>(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> (Option<(V, Instant)>, R),
    ) -> R {
        let mut answer = None;
        self.inner.entry(key).and_compute_with(|current| {
            let now = Instant::now();
            let live = current
                .as_ref()
                .map(|entry| entry.value())
                .filter(|entry| entry.deadline > now)
                .map(|entry| &entry.value);
            let (keep, result) = update(live);
            answer = Some(result);
            match keep {
                Some((value, deadline)) => Op::Put(Entry { value, deadline }),
                None => Op::Nop,
            }
        });
        self.report();
        answer.expect("moka runs the update exactly once")
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &K) {
        self.inner.invalidate(key);
        self.report();
    }

    /// Forgets every entry for which `predicate` holds.
    pub fn remove_if(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) {
        // Only fails when closures were not enabled at build time; they are.
        let _ = self
            .inner
            .invalidate_entries_if(move |key, entry| predicate(key, &entry.value));
        self.report();
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.inner.invalidate_all();
        self.report();
    }

    /// How many live entries there are (a walk over the cache: for tests
    /// and diagnostics, not request paths).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.inner.iter().filter(|(_, e)| e.deadline > now).count()
    }

    /// Whether no live entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries take memory, expired ones included until the
    /// housekeeping drops them (moka's timer wheel: about a second).
    pub fn held(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    fn report(&self) {
        metrics::gauge!("tenantry_cache_entries", "cache" => self.name)
            .set(self.inner.entry_count() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_keys_stays_within_capacity() {
        let cache = Cache::new("test", 100);
        for i in 0..10_000u32 {
            cache.insert(i, i, Duration::from_secs(60));
        }
        assert!(cache.held() <= 100, "{}", cache.held());
    }

    #[test]
    fn entries_are_not_served_past_their_deadline_and_then_dropped() {
        let cache = Cache::new("test", 100);
        cache.insert("gone", 1, Duration::ZERO);
        cache.insert_until("past", 2, Instant::now() - Duration::from_secs(1));
        cache.insert("kept", 3, Duration::from_secs(60));
        assert_eq!(cache.get(&"gone"), None);
        assert_eq!(cache.get(&"past"), None);
        assert_eq!(cache.get(&"kept"), Some(3));
        assert_eq!(cache.len(), 1);
        // Dropped, not only hidden, once the housekeeping's timer wheel has
        // turned (its finest slot is about a second).
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(cache.held(), 1);
    }

    #[test]
    fn an_entry_nobody_reads_goes_before_its_deadline() {
        let cache = Cache::with_idle("test", 100, Duration::from_millis(50));
        cache.insert("read", 1, Duration::from_secs(60));
        cache.insert("unread", 2, Duration::from_secs(60));
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(cache.get(&"read"), Some(1));
        }
        assert_eq!(cache.get(&"unread"), None);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn update_sees_only_live_values() {
        let cache = Cache::new("test", 100);
        let later = || Instant::now() + Duration::from_secs(60);
        let seen = cache.update("k", |v: Option<&u32>| (Some((1, later())), v.copied()));
        assert_eq!(seen, None);
        // `None` leaves the entry as it is.
        let seen = cache.update("k", |v| (None, v.copied()));
        assert_eq!(seen, Some(1));
        let seen = cache.update("k", |v| {
            (Some((v.unwrap() + 1, Instant::now())), v.copied())
        });
        assert_eq!(seen, Some(1));
        // The last update kept a value that is already past its deadline.
        let seen = cache.update("k", |v| (None, v.copied()));
        assert_eq!(seen, None);
        assert!(cache.is_empty());
    }

    #[test]
    fn entries_can_be_removed_by_key_or_value() {
        let cache = Cache::new("test", 100);
        for i in 0..10u32 {
            cache.insert(i, i % 2, Duration::from_secs(60));
        }
        cache.remove(&0);
        cache.remove_if(|_, v| *v == 1);
        assert_eq!(cache.len(), 4);
        cache.clear();
        assert!(cache.is_empty());
    }
}
