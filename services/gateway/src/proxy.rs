//! gRPC-Web and plain gRPC through the gateway. tonic-web turns a gRPC-Web
//! call (HTTP/1.1 or 2, binary or base64) into gRPC and back; plain gRPC
//! over HTTP/2 passes as is. Either way the call is admitted like a REST
//! call (edge authentication, rate limit of its method's class) and
//! forwarded to the service owning its package, with the exchanged
//! credential in place of the client's.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use tower::{Layer as _, Service, ServiceExt as _};

use crate::Gateway;
use crate::admit::{admit, forward_headers, rate_headers};
use crate::edge::AccessInfo;
use tenantry_kit::net::ClientAddress;

/// Serves one gRPC or gRPC-Web call.
pub async fn handle(gateway: Gateway, request: Request) -> Response {
    let service = tonic_web::GrpcWebLayer::new().layer(Forward { gateway });
    match service.oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// The inner service: a gRPC request in, the backend's response out.
#[derive(Clone)]
struct Forward {
    gateway: Gateway,
}

impl Service<http::Request<tonic::body::Body>> for Forward {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let gateway = self.gateway.clone();
        Box::pin(async move { Ok(forward(gateway, request).await) })
    }
}

async fn forward(
    gateway: Gateway,
    request: http::Request<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let path = request.uri().path().to_string();
    // Only known methods name their route: a metric label must not take
    // whatever path a client makes up.
    let mut info = AccessInfo {
        route: if gateway.inner.routes.method(&path).is_some() {
            path.clone()
        } else {
            "unknown gRPC method".to_string()
        },
        ..Default::default()
    };
    let mut response = match call(&gateway, request, &mut info).await {
        Ok(response) => response,
        Err(status) => status.into_http(),
    };
    response.extensions_mut().insert(info);
    response
}

async fn call(
    gateway: &Gateway,
    request: http::Request<tonic::body::Body>,
    info: &mut AccessInfo,
) -> Result<http::Response<tonic::body::Body>, tonic::Status> {
    let path = request.uri().path().to_string();
    let (Some(method), Some(channel)) = (
        gateway.inner.routes.method(&path),
        gateway.inner.upstreams.for_path(&path),
    ) else {
        return Err(tonic::Status::unimplemented(format!(
            "unknown method {path}"
        )));
    };
    let client = ClientAddress::of(request.extensions());
    let admitted = admit(
        gateway,
        request.headers(),
        method.class,
        method.public,
        client,
        info,
    )
    .await
    .map_err(|error| {
        let mut status = error.status;
        for (name, value) in error.headers {
            if let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
                && let Ok(key) = tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes())
            {
                status.metadata_mut().insert(key, value);
            }
        }
        status
    })?;

    let (mut parts, body) = request.into_parts();
    let forwarded = forward_headers(&parts.headers, &admitted.caller, client);
    // Keep the gRPC protocol headers; replace everything the edge vouches for.
    for name in [
        "authorization",
        "x-api-key",
        tenantry_kit::auth::internal::HEADER,
        "x-forwarded-for",
        "traceparent",
        "tracestate",
        "host",
        "connection",
    ] {
        parts.headers.remove(name);
    }
    parts.headers.extend(forwarded);
    parts.version = http::Version::HTTP_2;
    let mut channel = channel.clone();
    let request = http::Request::from_parts(parts, body);
    let ready = channel
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("backend unavailable: {e}")))?;
    let mut response = ready
        .call(request)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("backend unavailable: {e}")))?;
    if let Some(decision) = admitted.decision {
        for (name, value) in rate_headers(&decision, method.class) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}
