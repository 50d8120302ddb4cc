//! Edge hygiene around every request: the request id (accepted when sane,
//! generated otherwise, returned and passed on), the client address
//! (`X-Forwarded-For` believed only from trusted proxies), a span parented
//! on the caller's W3C trace context, metrics, and one access-log line
//! without credentials or query strings.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::Gateway;
use tenantry_kit::net::{ClientAddress, client_address};

/// The request id of a request, as the edge settled it.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

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

/// A request id the client sent, when it is safe to log and pass on:
/// 1–128 visible ASCII characters.
fn accepted_request_id(headers: &http::HeaderMap) -> Option<HeaderValue> {
    let value = headers.get("x-request-id")?;
    let bytes = value.as_bytes();
    (!bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic()))
        .then(|| value.clone())
}

/// The middleware: request id, client address, span, metrics, access log.
pub async fn middleware(
    State(gateway): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = accepted_request_id(request.headers()).unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .unwrap_or(HeaderValue::from_static("-"))
    });
    let client = client_address(peer.ip(), request.headers(), &gateway.inner.trusted_proxies);
    request
        .headers_mut()
        .insert("x-request-id", request_id.clone());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    request.extensions_mut().insert(ClientAddress(client));

    let method = request.method().clone();
    // The path only: query strings may carry tokens (verification links).
    let path = request.uri().path().to_string();
    let parent = tenantry_kit::telemetry::parent_context(request.headers());
    let span = tracing::info_span!(
        "http",
        http.method = %method,
        url.path = %path,
        request_id = ?request_id,
        otel.kind = "server",
    );
    let _ = span.set_parent(parent);
    let mut response = next.run(request).instrument(span).await;
    response
        .headers_mut()
        .insert("x-request-id", request_id.clone());

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_accepted_only_when_sane() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert!(accepted_request_id(&headers).is_some());
        headers.insert("x-request-id", HeaderValue::from_static("has space"));
        assert!(accepted_request_id(&headers).is_none());
        headers.insert(
            "x-request-id",
            HeaderValue::from_str(&"x".repeat(129)).unwrap(),
        );
        assert!(accepted_request_id(&headers).is_none());
    }
}
