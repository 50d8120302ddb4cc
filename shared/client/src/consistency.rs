//! Session consistency: the newest consistency token this client was
//! answered, sent back on every later call.
//!
//! Every write of every service answers with `x-tenantry-consistency-token`
//! metadata; a call that carries it is answered from a state at least as
//! new as that write, on any service and any replica. The server also
//! remembers a caller's newest token for a while, but only per process:
//! carrying it here makes "read your writes" hold across replicas, restarts
//! and the caller's other sessions (an API key used by several processes
//! shares one [`ConsistencyToken`] only if the caller passes it along).

use std::sync::{Arc, Mutex};

/// The metadata key (and gateway header) that carries a token.
pub const HEADER: &str = "x-tenantry-consistency-token";

/// The newest token seen, shared by every clone of a client.
#[derive(Debug, Clone, Default)]
pub struct ConsistencyToken {
    newest: Arc<Mutex<Option<String>>>,
}

impl ConsistencyToken {
    /// The newest token, if any call answered one.
    pub fn get(&self) -> Option<String> {
        self.lock().clone()
    }

    /// Takes `token` if it is newer than the one held (or none is held).
    pub fn observe(&self, token: &str) {
        if token.is_empty() {
            return;
        }
        let mut newest = self.lock();
        let replace = match newest.as_deref() {
            None => true,
            Some(held) => is_newer(token, held),
        };
        if replace {
            *newest = Some(token.to_string());
        }
    }

    /// Forgets the token (a new session starts from nothing).
    pub fn clear(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding this lock cannot leave a half-written token.
        self.newest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `candidate` stands for a later state than `held`. Tokens are
/// opaque to applications; this client ships with the server and reads their
/// current form, `r<revision>` with an optional `.e<event id>` (a UUIDv7, so
/// later ids sort later). A token of another form replaces the held one: the
/// later answer is the better guess.
fn is_newer(candidate: &str, held: &str) -> bool {
    match (parse(candidate), parse(held)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

fn parse(token: &str) -> Option<(u64, Option<&str>)> {
    let (revision, event) = match token.split_once(".e") {
        Some((revision, event)) => (revision, Some(event)),
        None => (token, None),
    };
    let revision = revision.strip_prefix('r')?.parse().ok()?;
    Some((revision, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_token() {
        let token = ConsistencyToken::default();
        token.observe("r7");
        token.observe("r5");
        assert_eq!(token.get().as_deref(), Some("r7"));
        token.observe("r7.e0190a3c4-0000-7000-8000-000000000001");
        token.observe("r12");
        assert_eq!(token.get().as_deref(), Some("r12"));
        token.observe("");
        assert_eq!(token.get().as_deref(), Some("r12"));
    }

    #[test]
    fn an_unknown_form_replaces_the_held_token() {
        let token = ConsistencyToken::default();
        token.observe("r9");
        token.observe("v2:abc");
        assert_eq!(token.get().as_deref(), Some("v2:abc"));
        token.clear();
        assert_eq!(token.get(), None);
    }
}
