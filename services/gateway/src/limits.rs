//! Rate limits per organization and endpoint class, by GCRA (the generic
//! cell rate algorithm): a limit of N per minute admits a burst of N and
//! then one request every 60/N seconds. Each bucket is one number, its
//! theoretical arrival time, kept in memory or — shared by every gateway
//! replica — in Redis, updated by one Lua script on Redis's own clock.
//!
//! Whose bucket: the organization the caller's token acts in (limits from
//! its plan, asked of billing and cached); a caller acting in none has a
//! bucket of its own, an anonymous caller one per client address, both
//! with the configured defaults. `auth` requests (sign-in, sign-up,
//! recovery) are also limited per client address, whoever asks.
//!
//! If Redis fails, the replica falls back to its own memory and says so in
//! a metric: limits loosen to per-replica, they never vanish.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenantry_kit::auth::Claims;
use tenantry_kit::cache::Cache;
use tenantry_proto::tenantry::billing::v1 as billing_pb;

use crate::routes::Class;

/// What a check decided, with what the RateLimit headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The limit per minute.
    pub limit: u64,
    /// Requests left right now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds to wait before retrying (denials only).
    pub retry_after_secs: u64,
    /// Which bucket decided (`organization`, `principal`, `address`).
    pub scope: &'static str,
}

/// The emission interval and burst tolerance of a limit per minute, in
/// microseconds. Limits above a million a second are held at that rate.
fn shape(limit: u64) -> (u64, i64, i64) {
    let limit = limit.clamp(1, 60_000_000);
    let period = 60_000_000 / limit as i64;
    (limit, period, period * (limit as i64 - 1))
}

/// One bucket's state change: GCRA in microseconds.
fn gcra(tat_us: Option<i64>, now_us: i64, limit: u64) -> (Option<i64>, i64) {
    let (_, period, tolerance) = shape(limit);
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    if tat - now_us > tolerance {
        // Denied: wait until the arrival time is within the tolerance.
        return (None, tat - tolerance - now_us);
    }
    let new_tat = tat + period;
    (Some(new_tat), new_tat - now_us)
}

fn decide(allowed_after: Option<i64>, delta_us: i64, limit: u64, scope: &'static str) -> Decision {
    let (limit, period, tolerance) = shape(limit);
    match allowed_after {
        Some(_) => {
            // delta = new_tat - now: how far ahead the bucket now runs.
            let remaining = ((tolerance + period - delta_us) / period).max(0) as u64;
            Decision {
                allowed: true,
                limit,
                remaining,
                reset_secs: ceil_secs(delta_us),
                retry_after_secs: 0,
                scope,
            }
        }
        None => Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset_secs: ceil_secs(delta_us + tolerance),
            retry_after_secs: ceil_secs(delta_us).max(1),
            scope,
        },
    }
}

fn ceil_secs(us: i64) -> u64 {
    (us.max(0) as u64).div_ceil(1_000_000)
}

/// Most buckets one replica keeps in memory.
const MEMORY_BUCKETS: u64 = 100_000;

/// The buckets in this process. A bucket is kept until its arrival time:
/// by then it is full again, which is what no bucket at all means, so
/// forgetting it loses nothing. Beyond the capacity the least used buckets
/// go first (a flood of one-off addresses does not push out the busy ones).
#[derive(Debug)]
struct MemoryStore {
    buckets: Cache<String, i64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            buckets: Cache::new("gateway_rate_limit_buckets", MEMORY_BUCKETS),
        }
    }
}

impl MemoryStore {
    fn take(&self, key: &str, limit: u64, scope: &'static str) -> Decision {
        let now = tenantry_kit::db::now_micros();
        let (allowed, delta) = self.buckets.update(key.to_string(), |tat| {
            let (allowed, delta) = gcra(tat.copied(), now, limit);
            let keep = allowed.map(|tat| {
                let full_in = Duration::from_micros(u64::try_from(tat - now).unwrap_or(0));
                (tat, Instant::now() + full_in)
            });
            (keep, (allowed, delta))
        });
        decide(allowed, delta, limit, scope)
    }
}

/// GCRA on Redis's clock; returns `{allowed, delta_us}`.
const SCRIPT: &str = r"
local period = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, tat - tolerance - now}
end
local new_tat = tat + period
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1000)
return {1, new_tat - now}
";

struct RedisStore {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
}

impl RedisStore {
    async fn take(
        &self,
        key: &str,
        limit: u64,
        scope: &'static str,
    ) -> redis::RedisResult<Decision> {
        let (_, period, tolerance) = shape(limit);
        let mut connection = self.connection.clone();
        let (allowed, delta): (i64, i64) = self
            .script
            .key(key)
            .arg(period)
            .arg(tolerance)
            .invoke_async(&mut connection)
            .await?;
        Ok(decide((allowed == 1).then_some(0), delta, limit, scope))
    }
}

/// Rate-limit settings (part of the gateway's options).
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Limits per class for callers without an organization.
    pub defaults: BTreeMap<String, u64>,
    /// `auth` requests per client address and minute.
    pub auth_per_address: u64,
    /// How long an organization's plan limits are reused.
    pub plan_ttl: Duration,
    /// Prefix of the keys in Redis.
    pub key_prefix: String,
}

/// An organization's limits per class, shared between requests.
type PlanLimits = Arc<BTreeMap<String, u64>>;

/// Most organizations whose plan limits one replica keeps.
const PLAN_CAPACITY: u64 = 100_000;

/// The rate limiter.
#[derive(Clone)]
pub struct Limiter {
    memory: Arc<MemoryStore>,
    redis: Option<Arc<RedisStore>>,
    /// Each organization's limits, until it is time to ask billing again.
    plans: Arc<Cache<String, PlanLimits>>,
    billing: crate::upstream::Upstream,
    settings: LimitSettings,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter keeping buckets in memory, or in Redis at `redis_url`.
    pub async fn new(
        settings: LimitSettings,
        redis_url: Option<&str>,
        billing: crate::upstream::Upstream,
    ) -> anyhow::Result<Limiter> {
        let redis = match redis_url {
            Some(url) => {
                let client = redis::Client::open(url).map_err(|e| {
                    anyhow::anyhow!("invalid configuration: `gateway.redis_url`: {e}")
                })?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_millis(500)));
                let connection = client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("cannot reach Redis at `gateway.redis_url`: {e}")
                    })?;
                Some(Arc::new(RedisStore {
                    connection,
                    script: redis::Script::new(SCRIPT),
                }))
            }
            None => None,
        };
        Ok(Limiter {
            memory: Arc::default(),
            redis,
            plans: Arc::new(Cache::new("gateway_plan_limits", PLAN_CAPACITY)),
            billing,
            settings,
        })
    }

    /// Checks (and counts) one request of `class`. `authorization` is the
    /// caller's, used to read their organization's plan limits.
    pub async fn check(
        &self,
        class: Class,
        claims: Option<&Claims>,
        authorization: Option<&http::HeaderValue>,
        client: IpAddr,
    ) -> Option<Decision> {
        let mut decisions = Vec::with_capacity(2);
        if class == Class::Auth {
            let key = format!("rl:auth-address:{client}");
            decisions.push(
                self.take(&key, self.settings.auth_per_address, "address")
                    .await,
            );
        }
        let (key, limit, scope) = match claims {
            Some(claims) => match &claims.org {
                Some(org) => {
                    let plan = self.plan_limits(org, authorization).await;
                    (
                        format!("rl:{}:org:{org}", class.as_str()),
                        plan.get(class.as_str()).copied(),
                        "organization",
                    )
                }
                None => (
                    format!("rl:{}:principal:{}", class.as_str(), claims.sub),
                    self.settings.defaults.get(class.as_str()).copied(),
                    "principal",
                ),
            },
            None => (
                format!("rl:{}:address:{client}", class.as_str()),
                self.settings.defaults.get(class.as_str()).copied(),
                "address",
            ),
        };
        if let Some(limit) = limit.filter(|l| *l > 0) {
            decisions.push(self.take(&key, limit, scope).await);
        }
        // A denial wins; among admissions, the one with the least left.
        decisions
            .iter()
            .find(|d| !d.allowed)
            .or_else(|| decisions.iter().min_by_key(|d| d.remaining))
            .copied()
    }

    async fn take(&self, key: &str, limit: u64, scope: &'static str) -> Decision {
        if let Some(redis) = &self.redis {
            let key = format!("{}{key}", self.settings.key_prefix);
            match redis.take(&key, limit, scope).await {
                Ok(decision) => return decision,
                Err(error) => {
                    metrics::counter!("tenantry_gateway_rate_limit_store_errors_total")
                        .increment(1);
                    tracing::warn!(%error, "Redis rate-limit store failed; using this replica's memory");
                }
            }
        }
        self.memory.take(key, limit, scope)
    }

    /// An organization's limits per class: from its plan (billing), reused
    /// for the plan TTL; the defaults when billing cannot say.
    async fn plan_limits(
        &self,
        org: &str,
        authorization: Option<&http::HeaderValue>,
    ) -> Arc<BTreeMap<String, u64>> {
        if let Some(limits) = self.plans.get(org) {
            return limits;
        }
        let mut client = billing_pb::entitlement_service_client::EntitlementServiceClient::new(
            self.billing.clone(),
        );
        let mut request = tonic::Request::new(billing_pb::GetRateLimitsRequest {
            organization: format!("organizations/{org}"),
        });
        request.set_timeout(Duration::from_secs(2));
        if let Some(value) = authorization
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
        {
            request.metadata_mut().insert("authorization", value);
        }
        let (limits, ttl) = match client.get_rate_limits(request).await {
            Ok(response) => (
                response
                    .into_inner()
                    .rate_limits_per_minute
                    .into_iter()
                    .filter_map(|(class, limit)| u64::try_from(limit).ok().map(|l| (class, l)))
                    .collect(),
                self.settings.plan_ttl,
            ),
            Err(status) => {
                tracing::debug!(code = ?status.code(), "no plan limits for an organization; using defaults");
                // Ask again soon, not on every request.
                (
                    self.settings.defaults.clone(),
                    self.settings.plan_ttl.min(Duration::from_secs(10)),
                )
            }
        };
        let limits = Arc::new(limits);
        self.plans.insert(org.to_string(), limits.clone(), ttl);
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A naive reference: a sliding log of admitted arrival times, where a
    /// request is admitted when fewer than N were admitted in the window
    /// that a steady rate of N per minute would have drained.
    #[test]
    fn gcra_admits_a_burst_then_the_steady_rate() {
        let limit = 60; // one per second
        let mut tat = None;
        let start = 1_000_000_000i64;
        let mut admitted = 0;
        for _ in 0..100 {
            let (next, _) = gcra(tat, start, limit);
            if let Some(next) = next {
                tat = Some(next);
                admitted += 1;
            }
        }
        assert_eq!(admitted, 60, "a full bucket admits exactly the burst");
        // Denied now; the answer says to wait about a second.
        let (denied, wait) = gcra(tat, start, limit);
        assert!(denied.is_none());
        assert_eq!(decide(None, wait, limit, "t").retry_after_secs, 1);
        // After 2.5 seconds two more fit, not three.
        let later = start + 2_500_000;
        let mut more = 0;
        for _ in 0..5 {
            let (next, _) = gcra(tat, later, limit);
            if let Some(next) = next {
                tat = Some(next);
                more += 1;
            }
        }
        assert_eq!(more, 2);
    }

    #[test]
    fn remaining_counts_down_from_the_limit() {
        let store = MemoryStore::default();
        let first = store.take("k", 5, "t");
        assert!(first.allowed);
        assert_eq!((first.limit, first.remaining), (5, 4));
        for expected in [3, 2, 1, 0] {
            assert_eq!(store.take("k", 5, "t").remaining, expected);
        }
        let denied = store.take("k", 5, "t");
        assert!(!denied.allowed);
        assert!(denied.retry_after_secs >= 1 && denied.retry_after_secs <= 12);
        // Other keys are other buckets.
        assert!(store.take("other", 5, "t").allowed);
        // Absurd limits neither panic nor wrap.
        assert!(store.take("huge", u64::MAX, "t").allowed);
        assert!(store.take("zero", 0, "t").allowed);
    }
}
