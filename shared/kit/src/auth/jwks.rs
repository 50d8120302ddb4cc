//! The public keys every service verifies access tokens with, fetched from
//! the identity service and cached.
//!
//! Keys rotate without downtime: identity publishes a new key before it signs
//! with it and keeps an old one until its tokens have expired. A verifier
//! therefore refreshes in the background every few minutes, and at once when a
//! token names a key it does not know yet (rate limited, so a flood of tokens
//! with made-up key ids costs identity at most one `GetJwks` per interval).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tenantry_proto::tenantry::identity::v1::GetJwksRequest;
use tenantry_proto::tenantry::identity::v1::identity_service_client::IdentityServiceClient;
use tokio_util::sync::CancellationToken;

use super::jwt::{Claims, Expectations, JwkKey, KeySet, TokenError, check_claims};
use sha2::{Digest, Sha256};

use crate::cache::Cache;

/// Where a [`JwksCache`] gets its keys.
#[async_trait::async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// The currently published public keys.
    async fn fetch(&self) -> anyhow::Result<Vec<JwkKey>>;
}

/// Fetches keys from the identity service's `GetJwks` RPC (a public method,
/// so no token is needed to get the keys that verify tokens).
#[derive(Debug, Clone)]
pub struct GrpcJwksSource {
    client: IdentityServiceClient<tonic::transport::Channel>,
}

impl GrpcJwksSource {
    /// A source calling identity over `channel`.
    pub fn new(channel: tonic::transport::Channel) -> Self {
        GrpcJwksSource {
            client: IdentityServiceClient::new(channel),
        }
    }

    /// A source for the identity service at `endpoint` (`http://host:port`).
    /// It connects on first use, so a service can start before identity.
    pub fn connect_lazy(endpoint: &str) -> anyhow::Result<Self> {
        let endpoint = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|_| anyhow::anyhow!("the identity endpoint is not a valid URI"))?;
        Ok(GrpcJwksSource::new(endpoint.connect_lazy()))
    }
}

#[async_trait::async_trait]
impl JwksSource for GrpcJwksSource {
    async fn fetch(&self) -> anyhow::Result<Vec<JwkKey>> {
        // Clients are cheap handles over one channel; `get_jwks` needs `&mut`.
        let mut client = self.client.clone();
        let response = client.get_jwks(GetJwksRequest {}).await.map_err(|status| {
            anyhow::anyhow!("GetJwks failed: {:?}: {}", status.code(), status.message())
        })?;
        Ok(response
            .into_inner()
            .keys
            .into_iter()
            .map(JwkKey::from)
            .collect())
    }
}

/// Keys handed over in-process: for tests, and for the identity service
/// itself, which knows its own keys and calls [`StaticJwksSource::set`] when
/// it rotates them.
#[derive(Debug, Default)]
pub struct StaticJwksSource {
    keys: RwLock<Vec<JwkKey>>,
    fetches: AtomicUsize,
}

impl StaticJwksSource {
    /// A source publishing `keys`.
    pub fn new(keys: Vec<JwkKey>) -> Self {
        StaticJwksSource {
            keys: RwLock::new(keys),
            fetches: AtomicUsize::new(0),
        }
    }

    /// Replaces the published keys.
    pub fn set(&self, keys: Vec<JwkKey>) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// How many times the keys were fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl JwksSource for StaticJwksSource {
    async fn fetch(&self) -> anyhow::Result<Vec<JwkKey>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }
}

/// How a [`JwksCache`] refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksCacheOptions {
    /// How often the background refresher fetches the keys.
    pub refresh_interval: Duration,
    /// The least time between two fetches caused by unknown key ids, and the
    /// first retry delay of a failed background fetch.
    pub min_refresh_interval: Duration,
    /// How long one fetch may take.
    pub fetch_timeout: Duration,
}

impl Default for JwksCacheOptions {
    fn default() -> Self {
        JwksCacheOptions {
            refresh_interval: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// The verifier's key set, kept fresh from a [`JwksSource`].
pub struct JwksCache {
    source: Arc<dyn JwksSource>,
    options: JwksCacheOptions,
    /// Readers clone the `Arc` and verify outside the lock, so a refresh
    /// never waits for signature checks and they never wait for it.
    keys: RwLock<Arc<KeySet>>,
    /// Serializes fetches, so concurrent callers share one; holds when the
    /// last fetch finished.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Tokens whose signature already checked out, by the SHA-256 of the
    /// whole token: a caller presenting the same token on every request (an
    /// internal service, a browser session) pays for the Ed25519 check once.
    /// Times, issuer and audience are still checked on every use; an entry
    /// is dropped when its token expires or has not been presented for a
    /// minute, and all of them whenever the key set is replaced.
    verified: Cache<[u8; 32], Arc<Claims>>,
    /// Whether keys are held (for readiness).
    loaded: tokio::sync::watch::Sender<bool>,
}

/// Most verified tokens remembered (about 1 KiB each). Beyond it the least
/// used are forgotten and verified again when they come back.
const VERIFIED_CAPACITY: u64 = 100_000;
/// A verified token nobody presented for this long is forgotten before it
/// expires: clients that renew their tokens leave the old ones behind.
const VERIFIED_IDLE: Duration = Duration::from_secs(60);

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("keys", &self.current().len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// An empty cache: the first token fetches the keys, or the refresher
    /// does at start.
    pub fn new(source: Arc<dyn JwksSource>, options: JwksCacheOptions) -> Self {
        Self::with_keys(source, KeySet::new(), options)
    }

    /// A cache that starts with `keys` and has not fetched yet.
    pub fn with_keys(source: Arc<dyn JwksSource>, keys: KeySet, options: JwksCacheOptions) -> Self {
        let keys_empty = keys.is_empty();
        JwksCache {
            source,
            options,
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: tokio::sync::Mutex::new(None),
            verified: Cache::with_idle("verified_tokens", VERIFIED_CAPACITY, VERIFIED_IDLE),
            loaded: tokio::sync::watch::channel(!keys_empty).0,
        }
    }

    /// The keys trusted now.
    pub fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Verifies `token` against the current time.
    pub async fn verify(&self, token: &str, expect: &Expectations) -> Result<Claims, TokenError> {
        self.verify_at(token, expect, chrono::Utc::now().timestamp())
            .await
    }

    /// Returns once the cache holds keys (a process is not ready without).
    pub async fn wait_for_keys(&self) {
        let mut loaded = self.loaded.subscribe();
        let _ = loaded.wait_for(|loaded| *loaded).await;
    }

    /// Verifies `token` as of `now_unix`. A token signed by a key we do not
    /// know yet triggers one (rate limited) refresh and one retry.
    pub async fn verify_at(
        &self,
        token: &str,
        expect: &Expectations,
        now_unix: i64,
    ) -> Result<Claims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            check_claims(&claims, expect, now_unix)?;
            return Ok(Claims::clone(&claims));
        }
        let claims = match self.current().verify(token, expect, now_unix) {
            Err(TokenError::UnknownKey(kid)) => {
                self.refresh_for(&kid).await;
                let keys = self.current();
                if keys.is_empty() {
                    // Not the token's fault: identity could not be asked yet.
                    return Err(TokenError::KeysUnavailable);
                }
                keys.verify(token, expect, now_unix)
            }
            result => result,
        }?;
        // Remembered until the token expires; `check_claims` still runs on
        // every use, so the deadline only bounds memory.
        let lifetime = Duration::from_secs(u64::try_from(claims.exp - now_unix).unwrap_or(0));
        self.verified
            .insert(digest, Arc::new(claims.clone()), lifetime);
        Ok(claims)
    }

    /// Fetches the keys now, whatever the rate limit. On failure the old
    /// keys stay in use.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut last_fetch = self.last_fetch.lock().await;
        self.fetch(&mut last_fetch).await
    }

    /// Refreshes because a token named `kid`, unless another caller's
    /// refresh (which we queued behind) already brought it, or the last
    /// fetch was too recent.
    async fn refresh_for(&self, kid: &str) {
        let mut last_fetch = self.last_fetch.lock().await;
        if self.current().contains(kid) {
            return;
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.options.min_refresh_interval) {
            metrics::counter!("tenantry_jwks_refreshes_total", "result" => "rate_limited")
                .increment(1);
            return;
        }
        if let Err(error) = self.fetch(&mut last_fetch).await {
            tracing::warn!(error = format!("{error:#}"), "refreshing the jwks failed");
        }
    }

    /// One fetch, under the `last_fetch` lock. The time is recorded when the
    /// fetch ends (success or failure), so a caller that gives up half-way
    /// does not hold the next one back.
    async fn fetch(&self, last_fetch: &mut Option<Instant>) -> anyhow::Result<()> {
        let fetched = tokio::time::timeout(self.options.fetch_timeout, self.source.fetch()).await;
        *last_fetch = Some(Instant::now());
        let result = match fetched {
            Err(_) => Err(anyhow::anyhow!("fetching the jwks timed out")),
            Ok(Err(error)) => Err(error),
            Ok(Ok(keys)) => KeySet::from_jwks(&keys).map_err(anyhow::Error::from),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("tenantry_jwks_refreshes_total", "result" => outcome).increment(1);
        let keys = result?;
        // Replace, never merge: a key identity stopped publishing is one it
        // no longer vouches for.
        tracing::debug!(keys = keys.len(), "jwks refreshed");
        let loaded = !keys.is_empty();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        self.loaded.send_replace(loaded);
        // A key no longer published must stop vouching for tokens at once.
        self.verified.clear();
        Ok(())
    }

    /// Spawns [`JwksCache::run_refresher`] on the current runtime.
    pub fn spawn_refresher(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::clone(self).run_refresher(shutdown))
    }

    /// Fetches the keys at once, then every `refresh_interval`, until
    /// `shutdown`. A failed fetch is retried sooner, backing off from
    /// `min_refresh_interval` up to `refresh_interval`, so a service that
    /// started before identity gets its keys soon after identity is up.
    pub async fn run_refresher(self: Arc<Self>, shutdown: CancellationToken) {
        // A zero interval would spin; configuration validation should have
        // caught it, but a busy loop is too costly a way to find out.
        let interval = self.options.refresh_interval.max(Duration::from_secs(1));
        // Failures back off from a fifth of a second: a process that starts
        // before identity is serving within moments of identity's start.
        let first_retry = Duration::from_millis(200).min(interval);
        let mut retry = first_retry;
        loop {
            let delay = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.refresh() => match result {
                    Ok(()) => {
                        retry = first_retry;
                        interval
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "refreshing the jwks failed");
                        let delay = retry;
                        retry = (retry * 2).min(interval);
                        delay
                    }
                },
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::jwt::SigningKey;
    use crate::auth::jwt::tests::{NOW, claims, expectations};

    /// A source that fails until told otherwise, counting fetches.
    struct FlakySource {
        inner: StaticJwksSource,
        failing: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl JwksSource for FlakySource {
        async fn fetch(&self) -> anyhow::Result<Vec<JwkKey>> {
            let keys = self.inner.fetch().await?;
            if self.failing.load(Ordering::Relaxed) {
                anyhow::bail!("identity is down");
            }
            Ok(keys)
        }
    }

    #[tokio::test]
    async fn remembered_tokens_still_expire_and_die_with_their_key() {
        let key = SigningKey::from_seed("k1", [1; 32]);
        let source = Arc::new(StaticJwksSource::new(vec![key.public_jwk()]));
        let cache = JwksCache::new(source.clone(), JwksCacheOptions::default());
        let token = key.sign(&claims(NOW));
        cache.verify_at(&token, &expectations(), NOW).await.unwrap();
        // Remembered, yet the time checks still run on every use.
        let later = claims(NOW).exp + 3600;
        assert_eq!(
            cache
                .verify_at(&token, &expectations(), later)
                .await
                .unwrap_err(),
            TokenError::Expired
        );
        // Identity stops publishing the key: the remembered token fails too.
        source.set(vec![SigningKey::from_seed("k2", [2; 32]).public_jwk()]);
        cache.refresh().await.unwrap();
        assert!(cache.verify_at(&token, &expectations(), NOW).await.is_err());
    }

    #[tokio::test]
    async fn an_empty_cache_fetches_on_first_use() {
        let key = SigningKey::from_seed("k1", [1; 32]);
        let source = Arc::new(StaticJwksSource::new(vec![key.public_jwk()]));
        let cache = JwksCache::new(source.clone(), JwksCacheOptions::default());
        let token = key.sign(&claims(NOW));
        assert!(cache.verify_at(&token, &expectations(), NOW).await.is_ok());
        assert!(cache.verify_at(&token, &expectations(), NOW).await.is_ok());
        assert_eq!(source.fetches(), 1);
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_once() {
        let old = SigningKey::from_seed("k1", [1; 32]);
        let new = SigningKey::from_seed("k2", [2; 32]);
        let source = Arc::new(StaticJwksSource::new(vec![old.public_jwk()]));
        let cache = JwksCache::with_keys(
            source.clone(),
            KeySet::from_jwks(&[old.public_jwk()]).unwrap(),
            JwksCacheOptions::default(),
        );
        assert!(
            cache
                .verify_at(&old.sign(&claims(NOW)), &expectations(), NOW)
                .await
                .is_ok()
        );
        assert_eq!(source.fetches(), 0);

        source.set(vec![new.public_jwk(), old.public_jwk()]);
        let token = new.sign(&claims(NOW));
        assert!(cache.verify_at(&token, &expectations(), NOW).await.is_ok());
        assert_eq!(source.fetches(), 1);
        // Both keys verify until identity stops publishing the old one.
        assert!(
            cache
                .verify_at(&old.sign(&claims(NOW)), &expectations(), NOW)
                .await
                .is_ok()
        );
        assert_eq!(source.fetches(), 1);
    }

    #[tokio::test]
    async fn unknown_key_floods_share_one_fetch() {
        let key = SigningKey::from_seed("k1", [1; 32]);
        let stranger = SigningKey::from_seed("made-up", [9; 32]);
        let source = Arc::new(StaticJwksSource::new(vec![key.public_jwk()]));
        let cache = Arc::new(JwksCache::new(source.clone(), JwksCacheOptions::default()));
        let token = stranger.sign(&claims(NOW));
        let calls = (0..50).map(|_| {
            let cache = cache.clone();
            let token = token.clone();
            tokio::spawn(async move { cache.verify_at(&token, &expectations(), NOW).await })
        });
        for call in futures::future::join_all(calls).await {
            assert_eq!(call.unwrap(), Err(TokenError::UnknownKey("made-up".into())));
        }
        assert_eq!(source.fetches(), 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_the_old_keys() {
        let key = SigningKey::from_seed("k1", [1; 32]);
        let source = Arc::new(FlakySource {
            inner: StaticJwksSource::new(vec![]),
            failing: true.into(),
        });
        let cache = JwksCache::with_keys(
            source.clone(),
            KeySet::from_jwks(&[key.public_jwk()]).unwrap(),
            JwksCacheOptions::default(),
        );
        assert!(cache.refresh().await.is_err());
        assert!(
            cache
                .verify_at(&key.sign(&claims(NOW)), &expectations(), NOW)
                .await
                .is_ok()
        );
        // The failure counts for the rate limit: no second fetch at once.
        let other = SigningKey::from_seed("k2", [2; 32]);
        source.failing.store(false, Ordering::Relaxed);
        assert_eq!(
            cache
                .verify_at(&other.sign(&claims(NOW)), &expectations(), NOW)
                .await,
            Err(TokenError::UnknownKey("k2".into()))
        );
        assert_eq!(source.inner.fetches(), 1);
    }

    #[tokio::test]
    async fn a_refresh_replaces_the_keys() {
        let old = SigningKey::from_seed("k1", [1; 32]);
        let new = SigningKey::from_seed("k2", [2; 32]);
        let source = Arc::new(StaticJwksSource::new(vec![new.public_jwk()]));
        let cache = JwksCache::with_keys(
            source,
            KeySet::from_jwks(&[old.public_jwk()]).unwrap(),
            JwksCacheOptions::default(),
        );
        cache.refresh().await.unwrap();
        assert!(!cache.current().contains("k1"));
        assert!(cache.current().contains("k2"));
    }

    #[tokio::test]
    async fn the_refresher_fetches_at_start_and_stops_at_shutdown() {
        let key = SigningKey::from_seed("k1", [1; 32]);
        let source = Arc::new(StaticJwksSource::new(vec![key.public_jwk()]));
        let cache = Arc::new(JwksCache::new(source.clone(), JwksCacheOptions::default()));
        let shutdown = CancellationToken::new();
        let task = cache.spawn_refresher(shutdown.clone());
        // Bounded polling for the first fetch.
        for _ in 0..200 {
            if cache.current().contains("k1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.current().contains("k1"));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("refresher stops")
            .unwrap();
        assert_eq!(source.fetches(), 1);
    }
}
