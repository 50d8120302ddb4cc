//! A REST request from start to end: find the route, admit the caller,
//! read the body (within the limit), build the request message, call the
//! backend with a deadline, answer JSON (or NDJSON for streams).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use prost_reflect::DynamicMessage;

use crate::Gateway;
use crate::admit::{Admitted, admit, forward_headers, rate_headers};
use crate::edge::AccessInfo;
use crate::error::Error as Refusal;
use crate::errors::ApiError;
use crate::routes::{BodyRule, Lookup, Route};
use crate::upstream::DynamicCodec;
use tenantry_kit::net::ClientAddress;

/// Serves one REST request.
pub async fn handle(gateway: Gateway, request: Request) -> Response {
    let mut info = AccessInfo::default();
    let deadline = Duration::from_secs(gateway.inner.options.timeout_secs);
    let outcome = tokio::time::timeout(deadline, serve(&gateway, request, &mut info)).await;
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(&gateway.inner.pool),
        Err(_) => ApiError::from_status(tonic::Status::deadline_exceeded(format!(
            "no answer within {} s",
            deadline.as_secs()
        )))
        .into_response(&gateway.inner.pool),
    };
    response.extensions_mut().insert(info);
    response
}

async fn serve(
    gateway: &Gateway,
    request: Request,
    info: &mut AccessInfo,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let (route, bindings) = match gateway.inner.routes.lookup(&parts.method, path) {
        Lookup::Found(route, bindings) => (route, bindings),
        Lookup::BadPath(error) => {
            return Err(ApiError::invalid(
                error.field,
                format!("path parameter {}", error.description),
            ));
        }
        Lookup::MethodNotAllowed(allowed) => {
            let allow = allowed
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Refusal::MethodNotAllowed {
                method: parts.method.clone(),
                allow,
            }
            .into());
        }
        Lookup::NotFound => {
            return Err(Refusal::NoRoute {
                method: parts.method.clone(),
                path: path.to_string(),
            }
            .into());
        }
    };
    info.route = format!("{} {}", route.http_method, route.template);
    let client = ClientAddress::of(&parts.extensions);
    let Admitted { caller, decision } = admit(
        gateway,
        &parts.headers,
        route.class,
        route.public,
        client,
        info,
    )
    .await?;

    let body = read_body(gateway, route, &parts.headers, body).await?;
    let message = crate::transcode::request(route, bindings, parts.uri.query(), &body)?;
    let forwarded = forward_headers(&parts.headers, &caller, client);
    let mut response = if route.method.is_server_streaming() {
        stream(gateway, route, message, forwarded).await?
    } else {
        unary(gateway, route, message, forwarded).await?
    };
    if let Some(decision) = decision {
        for (name, value) in rate_headers(&decision, route.class) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// The body of a REST request: JSON when the route takes one, within the
/// limit.
async fn read_body(
    gateway: &Gateway,
    route: &Route,
    headers: &http::HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    refuse_declared_too_large(gateway, headers)?;
    if !matches!(route.body, BodyRule::None)
        && let Some(content_type) = headers.get(http::header::CONTENT_TYPE)
    {
        let json = content_type
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(Refusal::UnsupportedMediaType.into());
        }
    }
    read_limited(gateway, headers, body).await
}

/// A request body, refused early when `Content-Length` says it is larger
/// than `max_body_bytes`, and cut off with 413 when it turns out to be.
pub(crate) async fn read_limited(
    gateway: &Gateway,
    headers: &http::HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    refuse_declared_too_large(gateway, headers)?;
    let limit = gateway.inner.options.max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_big = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_big {
            Refusal::BodyTooLarge { limit }.into()
        } else {
            ApiError::invalid("body", "could not be read")
        }
    })
}

fn refuse_declared_too_large(gateway: &Gateway, headers: &http::HeaderMap) -> Result<(), ApiError> {
    let limit = gateway.inner.options.max_body_bytes;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Refusal::BodyTooLarge { limit }.into());
    }
    Ok(())
}

/// A gRPC request carrying the forwarded headers and a deadline.
pub(crate) fn grpc_request(
    message: DynamicMessage,
    headers: http::HeaderMap,
    deadline: Duration,
) -> tonic::Request<DynamicMessage> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
    request.set_timeout(deadline);
    request
}

/// A ready client of the backend serving `grpc_path`.
pub(crate) async fn client(
    gateway: &Gateway,
    grpc_path: &str,
) -> Result<tonic::client::Grpc<crate::upstream::Upstream>, ApiError> {
    let channel = gateway
        .inner
        .upstreams
        .for_path(grpc_path)
        .cloned()
        .ok_or_else(|| {
            ApiError::from_status(tonic::Status::unimplemented(
                "no backend serves this method",
            ))
        })?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| {
        ApiError::from_status(tonic::Status::unavailable(format!(
            "backend unavailable: {e}"
        )))
    })?;
    Ok(grpc)
}

/// `grpc_path` as the path of an outgoing call.
pub(crate) fn grpc_path(grpc_path: &str) -> Result<http::uri::PathAndQuery, ApiError> {
    http::uri::PathAndQuery::try_from(grpc_path)
        .map_err(|e| ApiError::from_status(tonic::Status::internal(e.to_string())))
}

async fn unary(
    gateway: &Gateway,
    route: &Route,
    message: DynamicMessage,
    headers: http::HeaderMap,
) -> Result<Response, ApiError> {
    let deadline = Duration::from_secs(gateway.inner.options.timeout_secs);
    let mut grpc = client(gateway, &route.grpc_path).await?;
    let response = grpc
        .unary(
            grpc_request(message, headers, deadline),
            grpc_path(&route.grpc_path)?,
            DynamicCodec::new(route.method.output()),
        )
        .await
        .map_err(ApiError::from_status)?;
    let json = crate::transcode::response(route, response.get_ref())?;
    let mut reply = ([(http::header::CONTENT_TYPE, "application/json")], json).into_response();
    // A write's consistency token, for clients that send it back.
    if let Some(token) = response
        .metadata()
        .get(tenantry_kit::consistency::HEADER)
        .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        reply
            .headers_mut()
            .insert(tenantry_kit::consistency::HEADER, token);
    }
    Ok(reply)
}

/// A server stream as newline-delimited JSON; an error after the first
/// message becomes a last line `{"error": …}` (the status is already sent).
async fn stream(
    gateway: &Gateway,
    route: &Route,
    message: DynamicMessage,
    headers: http::HeaderMap,
) -> Result<Response, ApiError> {
    let deadline = Duration::from_secs(gateway.inner.options.stream_timeout_secs);
    let mut grpc = client(gateway, &route.grpc_path).await?;
    let response = grpc
        .server_streaming(
            grpc_request(message, headers, deadline),
            grpc_path(&route.grpc_path)?,
            DynamicCodec::new(route.method.output()),
        )
        .await
        .map_err(ApiError::from_status)?;
    let route = route.clone();
    let pool = gateway.inner.pool.clone();
    let lines = response.into_inner().map(move |item| {
        let mut line = match item {
            Ok(message) => match crate::transcode::response(&route, &message) {
                Ok(json) => json,
                Err(error) => serde_json::to_vec(&error.body(&pool)).unwrap_or_default(),
            },
            Err(status) => {
                serde_json::to_vec(&ApiError::from_status(status).body(&pool)).unwrap_or_default()
            }
        };
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
