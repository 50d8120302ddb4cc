//! Requests refused over an organization's rate limit, reported to the
//! audit log. A burst is activity an organization's administrators want to
//! see ("who hammered our API, when"), but not as a row per request: each
//! replica counts refusals per organization, caller, endpoint class and
//! window (a minute by default) and, once a window has closed, reports it
//! to the audit service, which records it as one
//! `gateway.requests.rate_limited` event.
//!
//! The gateway holds no internal key; it reports with an edge credential
//! that only the audit service accepts (see `tenantry_kit::auth::internal`).
//! Reports are retried until the audit service takes them; what is not yet
//! reported lives in this replica's memory, bounded, so a replica that is
//! killed loses at most its open windows — counts of refusals, never a
//! change of state. Refusals outside an organization's budget (anonymous
//! callers, sign-in attempts per address) belong to no organization's log
//! and are counted in metrics only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::upstream::Upstream;
use tenantry_kit::auth::{Claims, InternalKey, Principal, internal};
use tenantry_proto::tenantry::audit::v1 as audit_pb;
use tokio_util::sync::CancellationToken;

/// Most (organization, caller, class) windows open at once; refusals for
/// more are counted in a metric only.
const MAX_OPEN: usize = 100_000;
/// Most closed windows waiting to be reported; beyond, the oldest go.
const MAX_CLOSED: usize = 10_000;
/// Most bursts in one report (the audit service's limit).
const BATCH: usize = 500;

/// One window's count of refusals.
#[derive(Debug, Clone)]
struct Burst {
    /// The window's index (time ÷ window length).
    window: i64,
    count: u64,
    limit: u64,
    client_address: String,
    user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    organization: String,
    actor_kind: i32,
    actor_id: String,
    actor_name: String,
    class: &'static str,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<Key, Burst>,
    closed: Vec<audit_pb::RateLimitedBurst>,
    /// Numbers the closed bursts of this replica: with the replica's id, a
    /// burst's id, so a report retried is recorded once.
    closed_count: u64,
}

/// This replica's refusal counts.
#[derive(Debug)]
pub struct Refusals {
    state: Mutex<State>,
    window_us: i64,
    replica: String,
}

/// One refused request, as the tally sees it.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// The verified claims of the caller (their `org` is the budget spent).
    pub claims: &'a Claims,
    /// The endpoint class.
    pub class: &'static str,
    /// The limit per minute that refused it.
    pub limit: u64,
    /// The client's address.
    pub client_address: &'a str,
    /// The client's user agent.
    pub user_agent: &'a str,
}

impl Refusals {
    /// Counts with windows of `window`.
    pub fn new(window: Duration) -> Refusals {
        Refusals {
            state: Mutex::default(),
            window_us: i64::try_from(window.as_micros()).unwrap_or(i64::MAX).max(1),
            replica: tenantry_kit::id::new_id().to_string(),
        }
    }

    /// Counts one refusal at `now_us`; a refusal outside any organization
    /// is not counted here.
    pub fn record(&self, refused: Refused<'_>, now_us: i64) {
        let Some(organization) = &refused.claims.org else {
            return;
        };
        let actor = tenantry_kit::request::actor(&Principal::from(refused.claims.clone()));
        let key = Key {
            organization: organization.clone(),
            actor_kind: actor.kind,
            actor_id: actor.id,
            actor_name: actor.display_name,
            class: refused.class,
        };
        let window = now_us / self.window_us;
        let mut state = self.state.lock().expect("refusals lock");
        let state = &mut *state;
        if let Some(burst) = state.open.get_mut(&key) {
            if burst.window != window {
                let done = std::mem::replace(
                    burst,
                    Burst {
                        window,
                        count: 0,
                        limit: 0,
                        client_address: String::new(),
                        user_agent: String::new(),
                    },
                );
                let closed = self.close(&key, done, &mut state.closed_count);
                push_closed(&mut state.closed, closed);
            }
            burst.count += 1;
            burst.limit = refused.limit;
            refused.client_address.clone_into(&mut burst.client_address);
            refused.user_agent.clone_into(&mut burst.user_agent);
            return;
        }
        if state.open.len() >= MAX_OPEN {
            metrics::counter!("tenantry_gateway_rate_limit_reports_dropped_total").increment(1);
            return;
        }
        state.open.insert(
            key,
            Burst {
                window,
                count: 1,
                limit: refused.limit,
                client_address: refused.client_address.to_string(),
                user_agent: refused.user_agent.to_string(),
            },
        );
    }

    /// Closes the windows that ended by `now_us` (every window when
    /// `everything`) and takes what is waiting to be reported.
    fn take_closed(&self, now_us: i64, everything: bool) -> Vec<audit_pb::RateLimitedBurst> {
        let current = now_us / self.window_us;
        let mut state = self.state.lock().expect("refusals lock");
        let state = &mut *state;
        let ended: Vec<Key> = state
            .open
            .iter()
            .filter(|(_, burst)| everything || burst.window < current)
            .map(|(key, _)| key.clone())
            .collect();
        for key in ended {
            if let Some(burst) = state.open.remove(&key) {
                let closed = self.close(&key, burst, &mut state.closed_count);
                push_closed(&mut state.closed, closed);
            }
        }
        metrics::gauge!("tenantry_gateway_rate_limit_reports_open").set(state.open.len() as f64);
        std::mem::take(&mut state.closed)
    }

    /// Puts back what could not be reported, ahead of anything newer.
    fn put_back(&self, mut unsent: Vec<audit_pb::RateLimitedBurst>) {
        let mut state = self.state.lock().expect("refusals lock");
        unsent.append(&mut state.closed);
        let excess = unsent.len().saturating_sub(MAX_CLOSED);
        if excess > 0 {
            metrics::counter!("tenantry_gateway_rate_limit_reports_dropped_total")
                .increment(excess as u64);
            unsent.drain(..excess);
        }
        state.closed = unsent;
    }

    fn close(&self, key: &Key, burst: Burst, closed_count: &mut u64) -> audit_pb::RateLimitedBurst {
        *closed_count += 1;
        let at = |us: i64| prost_types::Timestamp {
            seconds: us.div_euclid(1_000_000),
            nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
        };
        let start = burst.window * self.window_us;
        audit_pb::RateLimitedBurst {
            id: format!("{}.{closed_count}", self.replica),
            organization_id: key.organization.clone(),
            actor: Some(tenantry_proto::tenantry::events::v1::Actor {
                kind: key.actor_kind,
                id: key.actor_id.clone(),
                display_name: key.actor_name.clone(),
            }),
            class: key.class.to_string(),
            count: burst.count,
            limit_per_minute: burst.limit,
            window_start_time: Some(at(start)),
            window_end_time: Some(at(start + self.window_us)),
            client_address: burst.client_address,
            user_agent: burst.user_agent,
        }
    }

    /// How often closed windows are looked for: a quarter window, from
    /// 100 ms to 5 s.
    fn tick(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.window_us / 4).unwrap_or(0))
            .clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
}

fn push_closed(closed: &mut Vec<audit_pb::RateLimitedBurst>, burst: audit_pb::RateLimitedBurst) {
    if closed.len() >= MAX_CLOSED {
        metrics::counter!("tenantry_gateway_rate_limit_reports_dropped_total").increment(1);
        closed.remove(0);
    }
    closed.push(burst);
}

/// Reports closed windows to the audit service until `stop`, then the
/// windows still open, once.
pub async fn report(
    refusals: Arc<Refusals>,
    audit: Upstream,
    key: InternalKey,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(refusals.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let everything = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        let now = tenantry_kit::db::now_micros();
        let closed = refusals.take_closed(now, everything);
        match send(&audit, &key, closed).await {
            Ok(()) => {}
            Err(unsent) if everything => {
                metrics::counter!("tenantry_gateway_rate_limit_reports_dropped_total")
                    .increment(unsent.len() as u64);
                tracing::warn!(
                    bursts = unsent.len(),
                    "rate-limited bursts not reported before shutdown are dropped"
                );
            }
            Err(unsent) => refusals.put_back(unsent),
        }
        if everything {
            return;
        }
    }
}

/// Sends `bursts` in batches; on a failure, gives back what was not taken.
async fn send(
    audit: &Upstream,
    key: &InternalKey,
    mut bursts: Vec<audit_pb::RateLimitedBurst>,
) -> Result<(), Vec<audit_pb::RateLimitedBurst>> {
    let mut client =
        audit_pb::edge_report_service_client::EdgeReportServiceClient::new(audit.clone());
    while !bursts.is_empty() {
        let rest = bursts.split_off(bursts.len().min(BATCH));
        let mut request = tonic::Request::new(audit_pb::ReportRateLimitedRequest {
            bursts: bursts.clone(),
        });
        request.set_timeout(Duration::from_secs(5));
        let credential = key.credential(internal::EDGE, chrono::Utc::now().timestamp());
        if let Ok(value) = credential.parse() {
            request.metadata_mut().insert(internal::HEADER, value);
        }
        match client.report_rate_limited(request).await {
            Ok(_) => {
                metrics::counter!("tenantry_gateway_rate_limit_reports_sent_total")
                    .increment(bursts.len() as u64);
                bursts = rest;
            }
            Err(status) => {
                tracing::warn!(
                    code = ?status.code(),
                    message = status.message(),
                    "rate-limited bursts could not be reported to the audit log"
                );
                bursts.extend(rest);
                return Err(bursts);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_kit::auth::PrincipalKind;

    fn claims(sub: &str, org: Option<&str>) -> Claims {
        Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: sub.into(),
            sid: None,
            org: org.map(Into::into),
            iat: 0,
            exp: 0,
            nbf: None,
            jti: String::new(),
            amr: vec!["pwd".into()],
            kind: PrincipalKind::User,
            perms: None,
            team: None,
            mfa_pending: false,
            name: Some("Ada".into()),
        }
    }

    fn refused<'a>(claims: &'a Claims, class: &'static str) -> Refused<'a> {
        Refused {
            claims,
            class,
            limit: 30,
            client_address: "192.0.2.1",
            user_agent: "curl",
        }
    }

    const SEC: i64 = 1_000_000;

    #[test]
    fn refusals_count_per_organization_caller_class_and_window() {
        let refusals = Refusals::new(Duration::from_secs(60));
        let ada = claims("ada", Some("org-a"));
        let bob = claims("bob", Some("org-a"));
        let nobody = claims("eve", None);
        let t0 = 1_000 * 60 * SEC;
        for i in 0..10 {
            refusals.record(refused(&ada, "read"), t0 + i * SEC);
        }
        refusals.record(refused(&ada, "write"), t0);
        refusals.record(refused(&bob, "read"), t0 + 59 * SEC);
        refusals.record(refused(&nobody, "read"), t0);
        assert!(
            refusals.take_closed(t0 + 59 * SEC, false).is_empty(),
            "nothing closed before the window ends"
        );
        // The next window opens for Ada's reads: her first closes.
        refusals.record(refused(&ada, "read"), t0 + 61 * SEC);
        let mut closed = refusals.take_closed(t0 + 61 * SEC, false);
        closed.sort_by_key(|b| (b.actor.as_ref().unwrap().id.clone(), b.class.clone()));
        let summary: Vec<(String, String, u64)> = closed
            .iter()
            .map(|b| {
                (
                    b.actor.as_ref().unwrap().id.clone(),
                    b.class.clone(),
                    b.count,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("ada".into(), "read".into(), 10),
                ("ada".into(), "write".into(), 1),
                ("bob".into(), "read".into(), 1),
            ]
        );
        let first = &closed[0];
        assert_eq!(first.organization_id, "org-a");
        assert_eq!(first.actor.as_ref().unwrap().display_name, "Ada");
        assert_eq!(first.window_start_time.unwrap().seconds, 1_000 * 60);
        assert_eq!(first.window_end_time.unwrap().seconds, 1_001 * 60);
        let ids: std::collections::HashSet<_> = closed.iter().map(|b| b.id.clone()).collect();
        assert_eq!(ids.len(), 3, "every burst has an id of its own");
        // At shutdown the open window goes too.
        let last = refusals.take_closed(t0 + 62 * SEC, true);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].count, 1);
    }

    #[test]
    fn unreported_bursts_are_kept_in_order_and_bounded() {
        let refusals = Refusals::new(Duration::from_secs(1));
        let t0 = 5 * SEC;
        let ada = claims("ada", Some("org-a"));
        refusals.record(refused(&ada, "read"), t0);
        let first = refusals.take_closed(t0 + 2 * SEC, false);
        refusals.record(refused(&ada, "read"), t0 + 3 * SEC);
        let newer = refusals.take_closed(t0 + 5 * SEC, false);
        refusals.put_back(newer.clone());
        refusals.put_back(first.clone());
        let again = refusals.take_closed(t0 + 5 * SEC, false);
        assert_eq!(
            again.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
            vec![first[0].id.clone(), newer[0].id.clone()],
            "the oldest first, with the ids they had"
        );
        let many: Vec<_> = (0..MAX_CLOSED + 5).map(|_| again[0].clone()).collect();
        refusals.put_back(many);
        assert_eq!(refusals.take_closed(t0 + 5 * SEC, false).len(), MAX_CLOSED);
    }
}
