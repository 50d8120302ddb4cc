//! Which calls are retried on UNAVAILABLE, and how long to wait between
//! attempts.
//!
//! A call is sent again only when sending it twice cannot do twice what
//! once would:
//! - **reads** (methods named `Get…`, `List…`, `Check…`, `Lookup…`,
//!   `Read…`, `Verify…`, `Preview…`, `Export…`, `Watch`, `Me`,
//!   `AuthenticateApiKey`, `IssueServiceAccountToken`) on any UNAVAILABLE
//!   (a replica still loading, an index behind, a restart) and when the
//!   connection failed;
//! - **any call** whose UNAVAILABLE says that nothing was done:
//!   `INDEX_UNAVAILABLE` (a write refused before it committed),
//!   `KEYS_UNAVAILABLE` (a server that cannot verify tokens yet), and a
//!   connection that was refused (the request never left).
//!
//! Other writes are not retried on UNAVAILABLE (`DEPENDENCY_UNAVAILABLE`
//! may come after part of the work): the caller decides, with the write's
//! `request_id` to make a replay safe. `Refresh` is never retried: its
//! refresh token is single-use, and presenting it twice ends the session.

use std::time::Duration;

use rand::Rng as _;

/// How many times and how patiently calls are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before attempt `attempt + 1` (`attempt` ≥ 1): exponential
    /// with full jitter over its upper half, never below the server's
    /// `RetryInfo` delay.
    pub(crate) fn backoff(&self, attempt: u32, server_delay: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        let jittered = ceiling / 2 + ceiling.mul_f64(rand::rng().random::<f64>() / 2.0);
        jittered.max(server_delay.unwrap_or_default())
    }
}

/// Why an attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure<'a> {
    /// The server answered UNAVAILABLE with this reason (empty if none).
    Unavailable(&'a str),
    /// The connection was refused: nothing was sent.
    Refused,
    /// The connection failed otherwise (reset, timed out): the request may
    /// have arrived.
    Broken,
}

/// Whether a call of `path` (`/package.Service/Method`) that failed so may
/// be sent again.
pub(crate) fn may_retry(path: &str, failure: Failure<'_>) -> bool {
    match failure {
        Failure::Refused => true,
        Failure::Unavailable("INDEX_UNAVAILABLE" | "KEYS_UNAVAILABLE") => true,
        Failure::Unavailable(_) | Failure::Broken => is_read(path),
    }
}

fn is_read(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    const READ_PREFIXES: [&str; 8] = [
        "Get", "List", "Check", "Lookup", "Read", "Verify", "Preview", "Export",
    ];
    matches!(
        method,
        "Watch" | "Me" | "AuthenticateApiKey" | "IssueServiceAccountToken"
    ) || READ_PREFIXES.iter().any(|p| method.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_on_any_unavailable_writes_only_when_nothing_was_done() {
        let check = "/tenantry.authz.v1.AuthorizationService/CheckPermission";
        let create = "/tenantry.organization.v1.OrganizationService/CreateOrganization";
        let refresh = "/tenantry.identity.v1.IdentityService/Refresh";
        assert!(may_retry(check, Failure::Unavailable("INDEX_BEHIND")));
        assert!(may_retry(check, Failure::Broken));
        assert!(may_retry(create, Failure::Unavailable("INDEX_UNAVAILABLE")));
        assert!(may_retry(create, Failure::Refused));
        assert!(!may_retry(
            create,
            Failure::Unavailable("DEPENDENCY_UNAVAILABLE")
        ));
        assert!(!may_retry(create, Failure::Broken));
        assert!(!may_retry(refresh, Failure::Broken));
        assert!(!may_retry(refresh, Failure::Unavailable("")));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_honours_the_server() {
        let policy = RetryPolicy::default();
        for attempt in 1..10 {
            let wait = policy.backoff(attempt, None);
            let ceiling = (policy.initial_backoff * (1 << (attempt - 1))).min(policy.max_backoff);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{attempt}: {wait:?}"
            );
        }
        let asked = Duration::from_secs(7);
        assert_eq!(policy.backoff(1, Some(asked)), asked);
    }
}
