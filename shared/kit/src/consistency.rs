//! Consistency tokens: how every caller reads its own writes, on any service
//! and any replica, without doing anything.
//!
//! Every decision in the suite is answered from one clock: the revision of
//! the authorization index (rbac's change log). rbac's own writes log their
//! changes there; a write of another service that changes what a check
//! answers (an organization created, a project deleted, a user disabled) is
//! applied there before the write returns (see `IndexService.ApplyEvents`).
//! A [`Token`] names such a revision and, in the rare case where a write
//! could not reach the index at once, the event it still waits for.
//!
//! How a token travels:
//! - every write answers with it in the [`HEADER`] response metadata (the
//!   gateway passes the header on to REST and gRPC-Web clients);
//! - a client may send its last token back in the same metadata on any
//!   call; reads then reflect at least that state, as with
//!   `Consistency.at_least_as_fresh`;
//! - each process remembers the newest token of each principal for a while
//!   ([`ConsistencyLayer`]), so the same caller's next call needs none;
//! - a service calling another on the caller's behalf passes the caller's
//!   token along ([`inject`]).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::auth::Principal;
use crate::cache::Cache;
use crate::error::Error;

/// The metadata key (and gateway header) that carries a token.
pub const HEADER: &str = "x-tenantry-consistency-token";

/// How long a process remembers a principal's newest token.
const REMEMBER: Duration = Duration::from_secs(300);
/// Most principals remembered per process.
const REMEMBERED: u64 = 100_000;

/// A point the answers must reflect: an index revision and, when a write's
/// events could not be applied at once, the last such event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token {
    /// The index revision, 0 for none.
    pub revision: i64,
    /// An event (by id) that must be applied too, if any.
    pub pending_event: Option<String>,
}

impl Token {
    /// The token of a revision.
    pub fn at(revision: i64) -> Token {
        Token {
            revision,
            pending_event: None,
        }
    }

    /// Whether the token asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.revision <= 0 && self.pending_event.is_none()
    }

    /// The later of two tokens: the higher revision, and the newer pending
    /// event (ids are UUIDv7, ordered by time).
    pub fn merge(&mut self, other: &Token) {
        self.revision = self.revision.max(other.revision);
        if other.pending_event > self.pending_event {
            self.pending_event.clone_from(&other.pending_event);
        }
    }

    /// Reads a token's text: `r<revision>`, optionally `.e<event id>`.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let (revision, pending) = match text.split_once(".e") {
            Some((revision, event)) => (revision, Some(event)),
            None => (text, None),
        };
        let revision = revision
            .strip_prefix('r')
            .filter(|d| !d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or(TokenError)?;
        let pending_event = match pending {
            Some(id) => Some(
                uuid::Uuid::try_parse(id)
                    .map_err(|_| TokenError)?
                    .hyphenated()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Token {
            revision,
            pending_event,
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.revision)?;
        if let Some(event) = &self.pending_event {
            write!(f, ".e{event}")?;
        }
        Ok(())
    }
}

/// A token's text is not one this suite issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not a consistency token")]
pub struct TokenError;

/// What the request being served must reflect and what it wrote, kept for
/// the request's task by [`ConsistencyLayer`].
#[derive(Debug, Default)]
struct Session {
    required: std::sync::Mutex<Token>,
    written: std::sync::Mutex<Token>,
}

tokio::task_local! {
    static SESSION: Arc<Session>;
}

fn with_session<R>(f: impl FnOnce(&Session) -> R) -> Option<R> {
    SESSION.try_with(|session| f(session)).ok()
}

/// What reads in this request must reflect: the caller's token (sent, or
/// remembered by this process) and whatever the request wrote so far.
pub fn required() -> Token {
    with_session(|s| {
        let mut token = lock(&s.required).clone();
        token.merge(&lock(&s.written));
        token
    })
    .unwrap_or_default()
}

/// Records that the request wrote up to `token`: its answer carries it,
/// its later reads and the caller's next calls reflect it.
pub fn record_write(token: &Token) {
    with_session(|s| lock(&s.written).merge(token));
}

/// Adds the request's token (see [`required`]) to an outgoing call made on
/// the caller's behalf, so the next service reflects what the caller did.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let token = required();
    if !token.is_empty()
        && let Ok(value) = token.to_string().parse()
    {
        metadata.insert(HEADER, value);
    }
}

/// Takes in the token of a write this request made through another
/// service (its answer's metadata), so the request's own answer covers it.
pub fn absorb(metadata: &tonic::metadata::MetadataMap) {
    if let Some(token) = metadata
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|text| Token::parse(text).ok())
    {
        record_write(&token);
    }
}

/// Runs `future` as a request with its own session, outside any layer: a
/// background job whose writes and reads should chain like a caller's.
pub async fn scope<F: std::future::Future>(future: F) -> F::Output {
    SESSION.scope(Arc::default(), future).await
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tower layer on every gRPC server (inside the auth layer): reads the
/// caller's token, remembers each principal's newest token, and answers
/// writes with theirs.
#[derive(Debug, Clone)]
pub struct ConsistencyLayer {
    remembered: Arc<Cache<String, Token>>,
}

impl Default for ConsistencyLayer {
    fn default() -> Self {
        ConsistencyLayer {
            remembered: Arc::new(Cache::new("session_tokens", REMEMBERED)),
        }
    }
}

impl<S> tower::Layer<S> for ConsistencyLayer {
    type Service = Consistency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Consistency {
            inner,
            remembered: self.remembered.clone(),
        }
    }
}

/// The service made by [`ConsistencyLayer`].
#[derive(Debug, Clone)]
pub struct Consistency<S> {
    inner: S,
    remembered: Arc<Cache<String, Token>>,
}

/// Whose tokens are remembered together: a principal.
fn principal_key(principal: &Principal) -> String {
    format!("{}:{}", principal.kind.as_str(), principal.id)
}

impl<S, B, R> tower::Service<http::Request<B>> for Consistency<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let sent = match request.headers().get(HEADER).map(|v| v.to_str()) {
            None => None,
            Some(Ok(text)) => match Token::parse(text) {
                Ok(token) => Some(token),
                Err(error) => return refuse(error),
            },
            Some(Err(_)) => return refuse(TokenError),
        };
        let key = Principal::from_extensions(request.extensions()).map(principal_key);
        let mut required = key
            .as_ref()
            .and_then(|key| self.remembered.get(key))
            .unwrap_or_default();
        if let Some(sent) = &sent {
            required.merge(sent);
        }
        let session = Arc::new(Session {
            required: std::sync::Mutex::new(required),
            written: std::sync::Mutex::default(),
        });
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let remembered = self.remembered.clone();
        Box::pin(async move {
            let mut response = SESSION.scope(session.clone(), inner.call(request)).await?;
            let written = lock(&session.written).clone();
            if !written.is_empty() {
                if let Some(key) = key {
                    let mut newest = lock(&session.required).clone();
                    newest.merge(&written);
                    remembered.insert(key, newest, REMEMBER);
                }
                if let Ok(value) = written.to_string().parse() {
                    response.headers_mut().insert(HEADER, value);
                }
            }
            Ok(response)
        })
    }
}

/// A malformed token answers INVALID_ARGUMENT before anything runs.
fn refuse<T, E>(error: TokenError) -> BoxFuture<'static, Result<http::Response<T>, E>>
where
    T: Default + Send + 'static,
    E: Send + 'static,
{
    let status = Error::invalid_field(HEADER, error.to_string()).into_status();
    Box::pin(async move { Ok(status.into_http()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let event = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        for token in [
            Token::at(42),
            Token {
                revision: 7,
                pending_event: Some(event.into()),
            },
        ] {
            assert_eq!(Token::parse(&token.to_string()).unwrap(), token);
        }
        for bad in [
            "",
            "r",
            "42",
            "r-1",
            "rx",
            "r1e3",
            "r99999999999999999999",
            "r1.e",
            "r1.enot-a-uuid",
            "r1.e0193a1b2",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merging_keeps_the_later_of_each_part() {
        let mut token = Token::at(5);
        token.merge(&Token::at(3));
        assert_eq!(token, Token::at(5));
        let pending = Token {
            revision: 1,
            pending_event: Some("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into()),
        };
        token.merge(&pending);
        assert_eq!(token.revision, 5);
        assert_eq!(token.pending_event, pending.pending_event);
        token.merge(&Token::at(9));
        assert_eq!(token.revision, 9);
        assert!(token.pending_event.is_some());
    }

    #[tokio::test]
    async fn a_session_collects_writes_and_passes_them_on() {
        assert!(required().is_empty(), "no session outside a request");
        scope(async {
            record_write(&Token::at(12));
            assert_eq!(required(), Token::at(12));
            let mut metadata = tonic::metadata::MetadataMap::new();
            inject(&mut metadata);
            assert_eq!(metadata.get(HEADER).unwrap(), "r12");
        })
        .await;
    }
}
