//! Routes that exist only once the process has built its services (the
//! HTTP side; the gRPC port hands its connections over instead, see
//! `handover`).
//!
//! A process binds its ports and answers health checks before its storage
//! and bus are reachable, so a pod restarted during an outage reports
//! NOT_SERVING instead of crash-looping. Until the services are mounted,
//! every other call gets the `meanwhile` answer (503 or UNAVAILABLE: retry).

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures::future::{Either, Ready, ready};
use tower::ServiceExt as _;
use tower::util::Oneshot;

/// A router mounted later; cheap to clone (all clones see the mount).
#[derive(Clone)]
pub struct Late {
    routes: Arc<OnceLock<axum::Router>>,
    meanwhile: fn() -> Response,
}

impl Late {
    /// Answers `meanwhile()` until [`mount`](Self::mount) is called.
    pub fn new(meanwhile: fn() -> Response) -> Late {
        Late {
            routes: Arc::default(),
            meanwhile,
        }
    }

    /// Mounts the routes; later calls go to them. Only the first mount counts.
    pub fn mount(&self, routes: axum::Router) {
        let _ = self.routes.set(routes);
    }
}

impl tower::Service<Request> for Late {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Oneshot<axum::Router, Request>, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.routes.get() {
            Some(routes) => Either::Left(routes.clone().oneshot(request)),
            None => Either::Right(ready(Ok((self.meanwhile)()))),
        }
    }
}

/// The gRPC answer while the process starts: UNAVAILABLE, which clients
/// retry.
pub fn grpc_starting() -> Response {
    tonic::Status::unavailable("starting: the service is not serving yet")
        .into_http::<axum::body::Body>()
}

/// The HTTP answer while the process starts: 503.
pub fn http_starting() -> Response {
    use axum::response::IntoResponse as _;
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "starting: the service is not serving yet\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn answers_meanwhile_then_the_mounted_routes() {
        let late = Late::new(http_starting);
        let call = |late: Late| async move {
            let response = late
                .oneshot(Request::get("/x").body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            response.status()
        };
        assert_eq!(call(late.clone()).await, 503);
        late.mount(axum::Router::new().route("/x", get(|| async { "ok" })));
        assert_eq!(call(late.clone()).await, 200);
    }

    #[test]
    fn grpc_callers_are_told_to_retry() {
        let response = grpc_starting();
        assert_eq!(response.headers()["grpc-status"], "14");
    }
}
