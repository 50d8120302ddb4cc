//! The channel every generated client of a [`Client`](crate::Client) runs
//! over: one tonic connection, with what each call needs added on the way
//! out (the access token, the newest consistency token) and read on the way
//! back (a newer consistency token), and failed attempts sent again where
//! [`retry`](crate::retry) allows.
//!
//! Requests are unary in every Tenantry contract but the bulk import
//! (responses may stream), so a request's body is one small message: it is
//! buffered, which is what lets an attempt be repeated. An import's stream
//! goes through as it comes, once: it cannot be sent again.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full};
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt as _;

use crate::consistency::{ConsistencyToken, HEADER};
use crate::credentials::Auth;
use crate::error::{Error, UNREACHABLE};
use crate::retry::{Failure, RetryPolicy, may_retry};

/// The methods whose requests stream: sent as they come, never repeated.
const STREAMED: &[&str] = &["/tenantry.bulk.v1.BulkService/Import"];

/// A tonic channel with Tenantry's credentials, session consistency and
/// retries. Cheap to clone; clones share the connection and the state.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

struct Shared {
    channel: Channel,
    endpoint: String,
    auth: Option<Arc<Auth>>,
    consistency: ConsistencyToken,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoint", &self.shared.endpoint)
            .finish()
    }
}

impl Transport {
    pub(crate) fn new(
        channel: Channel,
        endpoint: String,
        auth: Option<Arc<Auth>>,
        consistency: ConsistencyToken,
        retry: RetryPolicy,
    ) -> Transport {
        Transport {
            shared: Arc::new(Shared {
                channel,
                endpoint,
                auth,
                consistency,
                retry,
            }),
        }
    }

    async fn send(
        self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, tonic::Status> {
        let shared = &self.shared;
        let path = request.uri().path().to_string();
        let (parts, body) = request.into_parts();
        if STREAMED.contains(&path.as_str()) {
            return self.send_once(parts, body).await;
        }
        let body = body
            .collect()
            .await
            .map_err(|e| tonic::Status::internal(format!("cannot read the request: {e}")))?
            .to_bytes();
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            attempt += 1;
            let bearer = match &shared.auth {
                Some(auth) => auth.bearer().await.map_err(tonic::Status::from)?,
                None => None,
            };
            let request = self.attempt(
                &parts,
                Body::new(Full::new(body.clone())),
                bearer.as_deref(),
            );
            let may_repeat = attempt < shared.retry.max_attempts;
            match shared.channel.clone().oneshot(request).await {
                Ok(response) => {
                    if let Some(token) =
                        response.headers().get(HEADER).and_then(|v| v.to_str().ok())
                    {
                        shared.consistency.observe(token);
                    }
                    let Some(status) = tonic::Status::from_header_map(response.headers())
                        .filter(|s| s.code() != tonic::Code::Ok)
                    else {
                        return Ok(response);
                    };
                    if status.code() == tonic::Code::Unauthenticated
                        && !renewed
                        && let (Some(auth), Some(sent)) = (&shared.auth, &bearer)
                    {
                        renewed = true;
                        if auth
                            .renew_after_refusal(sent)
                            .await
                            .map_err(tonic::Status::from)?
                        {
                            continue;
                        }
                        return Ok(response);
                    }
                    if status.code() != tonic::Code::Unavailable || !may_repeat {
                        return Ok(response);
                    }
                    let error = Error::from(status);
                    let reason = error.reason().unwrap_or_default();
                    if !may_retry(&path, Failure::Unavailable(reason)) {
                        return Ok(response);
                    }
                    let wait = shared.retry.backoff(attempt, error.retry_delay());
                    tracing::debug!(path, attempt, ?wait, reason, "retrying an unavailable call");
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    let failure = if refused(&error) {
                        Failure::Refused
                    } else {
                        Failure::Broken
                    };
                    if !may_repeat || !may_retry(&path, failure) {
                        return Err(unreachable(&shared.endpoint, &error).into());
                    }
                    let wait = shared.retry.backoff(attempt, None);
                    tracing::debug!(path, attempt, ?wait, "retrying after a connection failure");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Sends a streamed request as it comes, in one attempt.
    async fn send_once(
        self,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<http::Response<Body>, tonic::Status> {
        let shared = &self.shared;
        let bearer = match &shared.auth {
            Some(auth) => auth.bearer().await.map_err(tonic::Status::from)?,
            None => None,
        };
        let request = self.attempt(&parts, body, bearer.as_deref());
        let response = shared
            .channel
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| tonic::Status::from(unreachable(&shared.endpoint, &error)))?;
        if let Some(token) = response.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
            shared.consistency.observe(token);
        }
        Ok(response)
    }

    /// One attempt's request: the caller's headers, plus the credential and
    /// the consistency token unless the caller set them on the request.
    fn attempt(
        &self,
        parts: &http::request::Parts,
        body: Body,
        bearer: Option<&str>,
    ) -> http::Request<Body> {
        let mut request = http::Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        let headers = request.headers_mut();
        if let Some(token) = bearer
            && !headers.contains_key(http::header::AUTHORIZATION)
            && let Ok(mut value) = http::HeaderValue::from_str(&format!("Bearer {token}"))
        {
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if !headers.contains_key(HEADER)
            && let Some(token) = self.shared.consistency.get()
            && let Ok(value) = http::HeaderValue::from_str(&token)
        {
            headers.insert(HEADER, value);
        }
        request
    }
}

impl tower::Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    // A `Status`: the generated clients hand it to the caller unchanged.
    type Error = tonic::Status;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call drives a clone of the channel to readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

/// Whether the connection was refused (or its address did not resolve):
/// then the request was never sent.
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            )
        {
            return true;
        }
        cause = current.source();
    }
    false
}

fn unreachable(endpoint: &str, error: &(dyn std::error::Error + 'static)) -> Error {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    Error::local(
        tonic::Code::Unavailable,
        UNREACHABLE,
        format!("cannot reach {endpoint}: {cause}"),
    )
}
