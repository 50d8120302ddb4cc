//! Edge hygiene around every request: the request id (accepted when sane,
//! generated otherwise, returned and passed on: tower-http's request-id
//! layers, see [`request_id_layers`]), the client address
//! (`X-Forwarded-For` believed only from trusted proxies), a span parented
//! on the caller's W3C trace context, metrics, and one access-log line
//! without credentials or query strings. The access log is our own rather
//! than tower-http's `TraceLayer`: its line carries what the handler
//! learned (route template, principal, organization, endpoint class),
//! which only the response's extensions know.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::Gateway;
use tenantry_kit::net::{ClientAddress, client_address};

/// What the handler learned, for the access log (set on the response).
#[derive(Debug, Clone, Default)]
pub struct AccessInfo {
    /// The route template or gRPC method.
    pub route: String,
    /// The principal id, when authenticated.
    pub principal: Option<String>,
    /// The organization the caller acts in.
    pub organization: Option<String>,
    /// The endpoint class.
    pub class: Option<&'static str>,
}

/// `router` with request ids: a client's id that is not safe to log and
/// pass on is dropped, a request without one gets a new UUIDv7, and the
/// response carries the request's id.
pub fn with_request_ids<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    // The last layer added runs first.
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(NewRequestId))
        .layer(axum::middleware::map_request(drop_unsafe_request_id))
}

/// Makes the id of a request that came without one.
#[derive(Debug, Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Drops a client's request id unless it is 1–128 visible ASCII characters.
async fn drop_unsafe_request_id(mut request: Request) -> Request {
    let unsafe_id = request.headers().get(REQUEST_ID).is_some_and(|value| {
        let bytes = value.as_bytes();
        bytes.is_empty() || bytes.len() > 128 || !bytes.iter().all(|b| b.is_ascii_graphic())
    });
    if unsafe_id {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// The header carrying the request id.
const REQUEST_ID: &str = "x-request-id";

/// The middleware: request id, client address, span, metrics, access log.
pub async fn middleware(
    State(gateway): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .cloned()
        .unwrap_or(HeaderValue::from_static("-"));
    let client = client_address(peer.ip(), request.headers(), &gateway.inner.trusted_proxies);
    request.extensions_mut().insert(ClientAddress(client));

    let method = request.method().clone();
    // The path only: query strings may carry tokens (verification links).
    let path = request.uri().path().to_string();
    let parent = tenantry_kit::telemetry::parent_context(request.headers());
    // Named by its route template once routing has found it (semantic
    // conventions: `{method} {route}`), never by the raw path.
    let span = tracing::info_span!(
        "http",
        otel.name = %method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        url.path = %path,
        request_id = ?request_id,
    );
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let info = response
        .extensions()
        .get::<AccessInfo>()
        .cloned()
        .unwrap_or_default();
    let status = response.status().as_u16();
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let route = if info.route.is_empty() {
        "unmatched".to_string()
    } else {
        info.route.clone()
    };
    record_route(&span, &method, &info.route, status);
    metrics::counter!(
        "tenantry_gateway_requests_total",
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("tenantry_gateway_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(
        target: "tenantry::access",
        %method,
        %path,
        route = %route,
        status,
        grpc_status = %grpc_status,
        duration_us = elapsed.as_micros() as u64,
        request_id = %request_id.to_str().unwrap_or("-"),
        client = %client,
        principal = info.principal.as_deref().unwrap_or("-"),
        organization = info.organization.as_deref().unwrap_or("-"),
        class = info.class.unwrap_or("-"),
        "request"
    );
    response
}

/// Names the request's span by its route (a REST template such as
/// `POST /v1/{parent=organizations/*}/projects`, or a gRPC method) and
/// records its status; a 5xx marks it failed.
fn record_route(span: &tracing::Span, method: &http::Method, route: &str, status: u16) {
    if !route.is_empty() {
        // A REST route already names its method.
        let template = route.strip_prefix(&format!("{method} ")).unwrap_or(route);
        span.record("http.route", template);
        // Renamed on the started span itself: a recorded `otel.name` only
        // names a span not yet started.
        use opentelemetry::trace::TraceContextExt as _;
        span.context()
            .span()
            .update_name(format!("{method} {template}"));
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id the handler saw and the id the response carries, for a
    /// request sent with `id`.
    async fn ids(id: HeaderValue) -> (String, String) {
        use tower::ServiceExt as _;
        let router = with_request_ids(Router::new().route(
            "/",
            axum::routing::get(|request: Request| async move {
                request.headers()[REQUEST_ID].to_str().unwrap().to_string()
            }),
        ));
        let request = http::Request::builder()
            .uri("/")
            .header(REQUEST_ID, id)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let answered = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (String::from_utf8(body.to_vec()).unwrap(), answered)
    }

    #[tokio::test]
    async fn a_sane_request_id_is_kept_and_answered() {
        let (seen, answered) = ids(HeaderValue::from_static("abc-123")).await;
        assert_eq!((seen.as_str(), answered.as_str()), ("abc-123", "abc-123"));
    }

    #[tokio::test]
    async fn an_unsafe_request_id_is_replaced_by_a_new_one() {
        for id in ["has space", &"x".repeat(129), ""] {
            let (seen, answered) = ids(HeaderValue::from_str(id).unwrap()).await;
            assert_eq!(seen, answered);
            assert!(uuid::Uuid::parse_str(&seen).is_ok(), "{id:?} became {seen}");
        }
    }
}
