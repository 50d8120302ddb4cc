//! Start-up against dependencies that may not be up yet.
//!
//! A pod restarted during a database or NATS outage must not crash-loop: it
//! keeps its ports, reports NOT_SERVING, and retries with back-off. What is
//! worth retrying is typed: a dependency that did not answer is
//! [`Unreachable`]; a configuration mistake is any other error and stops the
//! start at once, because no amount of waiting fixes it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A dependency (database, bus, peer) that did not answer. The message
/// names it with its address redacted.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// Whether `error` says a dependency was unreachable (worth retrying).
pub fn is_unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Unreachable>())
}

/// The first wait between attempts; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds, fails with something other than
/// [`Unreachable`], or `stop` is cancelled (then an error). Each failure is
/// logged with the attempt number and the next wait.
pub async fn retry_unreachable<T, F, Fut>(
    what: &str,
    stop: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut wait = FIRST_BACKOFF;
    for number in 1u32.. {
        let error = match attempt().await {
            Ok(value) => {
                if number > 1 {
                    tracing::info!(attempts = number, "{what}: reached");
                }
                return Ok(value);
            }
            Err(error) if is_unreachable(&error) => error,
            Err(error) => return Err(error),
        };
        tracing::warn!(
            attempt = number,
            retry_in_ms = wait.as_millis() as u64,
            "{what}: {error:#}; not serving until it answers"
        );
        tokio::select! {
            _ = stop.cancelled() => anyhow::bail!("stopped while waiting for {what}"),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(MAX_BACKOFF);
    }
    unreachable!("the attempt counter does not run out")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_an_unreachable_dependency_until_it_answers() {
        let calls = AtomicU32::new(0);
        let value = retry_unreachable("db", &CancellationToken::new(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(anyhow::Error::new(Unreachable("down".into()))),
                _ => Ok(7),
            }
        })
        .await
        .unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (7, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_configuration_error_stops_at_once() {
        let calls = AtomicU32::new(0);
        let error = retry_unreachable("db", &CancellationToken::new(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(anyhow::anyhow!("invalid configuration: `database_url`"))
        })
        .await
        .unwrap_err();
        assert!(error.to_string().contains("invalid configuration"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_ends_the_wait() {
        let stop = CancellationToken::new();
        stop.cancel();
        let error = retry_unreachable("nats", &stop, || async {
            Err::<(), _>(anyhow::Error::new(Unreachable("down".into())).context("connect"))
        })
        .await
        .unwrap_err();
        assert!(error.to_string().contains("stopped while waiting for nats"));
    }
}
