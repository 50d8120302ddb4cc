//! The Connect protocol (connectrpc.com/docs/protocol) on the gateway's
//! HTTP port: a call is `POST /package.Service/Method`, the content type
//! picks the shape and codec (`application/json` or `application/proto`
//! for unary calls, `application/connect+json` or `+proto` for server
//! streams), and the call is admitted and forwarded like every other
//! (edge authentication, the method's rate-limit class, the forwarded
//! headers, the access log).
//!
//! Unary: the body is the message (gzip with `Content-Encoding`); the
//! answer is the message, or a Connect error with the code's HTTP status.
//! Methods the contracts mark `NO_SIDE_EFFECTS` (gets, lists, checks,
//! lookups) also take GET with the message in the query; their answers
//! say `Cache-Control: private, no-store`, as a decision must follow the
//! caller's writes.
//! Streams: the body is one enveloped message; the answer is 200 with an
//! envelope per message and an end-of-stream envelope carrying the error,
//! if any, and the trailers.

pub mod error;
pub mod wire;

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

use crate::Gateway;
use crate::admit::{Admitted, admit, forward_headers, rate_headers};
use crate::edge::AccessInfo;
use crate::errors::ApiError;
use crate::rest::{client, grpc_path, grpc_request, read_limited};
use crate::routes::MethodInfo;
use crate::upstream::DynamicCodec;
use tenantry_kit::net::ClientAddress;
use wire::{Codec, Compression, GetQuery, Shape};

/// Whether a request names a method of the contracts by its path (and is
/// therefore a Connect call, unless its content type says gRPC).
pub fn is_method_path(gateway: &Gateway, path: &str) -> bool {
    gateway.inner.routes.method(path).is_some()
}

/// Serves one Connect call to a known method.
pub async fn handle(gateway: Gateway, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let mut info = AccessInfo {
        route: path.clone(),
        ..Default::default()
    };
    let method = gateway.inner.routes.method(&path).cloned();
    let shape = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Shape::of);
    let verb = request.method().clone();
    let mut response = match (method, shape) {
        (None, _) => StatusCode::NOT_FOUND.into_response(),
        (Some(method), _) if verb == Method::GET && takes_get(&method) => {
            let call = unary(&gateway, &method, &path, Carrier::Query, request, &mut info);
            match call.await {
                Ok(mut response) => {
                    // The answer is the caller's and must follow their
                    // writes: no cache may keep it.
                    response.headers_mut().insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("private, no-store"),
                    );
                    response
                }
                Err(error) => error::unary_response(&gateway.inner.pool, error),
            }
        }
        (Some(method), _) if verb != Method::POST => method_not_allowed(&method),
        (Some(method), Some(Shape::Unary(codec))) if !method.descriptor.is_server_streaming() => {
            let call = unary(
                &gateway,
                &method,
                &path,
                Carrier::Body(codec),
                request,
                &mut info,
            );
            match call.await {
                Ok(response) => response,
                Err(error) => error::unary_response(&gateway.inner.pool, error),
            }
        }
        (Some(method), Some(Shape::Streaming(codec)))
            if method.descriptor.is_server_streaming() =>
        {
            stream(&gateway, &method, &path, codec, request, &mut info).await
        }
        (Some(method), _) => unsupported_media_type(&method),
    };
    response.extensions_mut().insert(info);
    response
}

/// Whether Connect may call a method with GET: a unary method the
/// contract marks free of side effects.
fn takes_get(method: &MethodInfo) -> bool {
    method.no_side_effects && !method.descriptor.is_server_streaming()
}

/// 405 naming the HTTP methods the method takes.
fn method_not_allowed(method: &MethodInfo) -> Response {
    let allow = if takes_get(method) {
        "GET, POST"
    } else {
        "POST"
    };
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// 415 naming the content types the method takes.
fn unsupported_media_type(method: &MethodInfo) -> Response {
    let accepted = if method.descriptor.is_server_streaming() {
        "application/connect+json, application/connect+proto"
    } else {
        "application/json, application/proto"
    };
    let mut response = StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    response
        .headers_mut()
        .insert("accept-post", HeaderValue::from_static(accepted));
    response
}

/// What a call asks of the protocol: its deadline and compressions.
struct Ask {
    deadline: Duration,
    request: Compression,
    response: Compression,
}

/// Reads the protocol headers: version, deadline, compression (the
/// unary ones or the streaming ones, by `prefix`).
fn ask(headers: &HeaderMap, cap: Duration, prefix: &str) -> Result<Ask, ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(version) = headers.get("connect-protocol-version")
        && version != "1"
    {
        return Err(ApiError::invalid("connect-protocol-version", "must be 1"));
    }
    let deadline = wire::timeout(text("connect-timeout-ms"), cap)?;
    let request =
        Compression::named(text(&format!("{prefix}content-encoding"))).ok_or_else(|| {
            ApiError::from_status(tonic::Status::unimplemented(format!(
                "unknown compression; use one of {}",
                wire::ACCEPTED
            )))
            .with_header(
                http::HeaderName::try_from(format!("{prefix}accept-encoding"))
                    .unwrap_or(header::ACCEPT_ENCODING),
                HeaderValue::from_static(wire::ACCEPTED),
            )
        })?;
    let response = Compression::preferred(text(&format!("{prefix}accept-encoding")));
    Ok(Ask {
        deadline,
        request,
        response,
    })
}

/// Admits the caller; the headers to forward with the call.
async fn admitted(
    gateway: &Gateway,
    method: &MethodInfo,
    parts: &http::request::Parts,
    info: &mut AccessInfo,
) -> Result<(Admitted, HeaderMap), ApiError> {
    let client = ClientAddress::of(&parts.extensions);
    let admitted = admit(
        gateway,
        &parts.headers,
        method.class,
        method.public,
        client,
        info,
    )
    .await?;
    let forwarded = forward_headers(&parts.headers, &admitted.caller, client);
    Ok((admitted, forwarded))
}

/// Admits the caller and reads the body (still compressed).
async fn admitted_body(
    gateway: &Gateway,
    method: &MethodInfo,
    request: Request,
    info: &mut AccessInfo,
) -> Result<(Admitted, HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let (admitted, forwarded) = admitted(gateway, method, &parts, info).await?;
    let body = read_limited(gateway, &parts.headers, body).await?;
    Ok((admitted, forwarded, body))
}

/// Where a unary call's message is.
enum Carrier {
    /// A POST's body, in the content type's codec and `Content-Encoding`.
    Body(Codec),
    /// A GET's query (`encoding`, `compression`, `message`, `base64`).
    Query,
}

async fn unary(
    gateway: &Gateway,
    method: &MethodInfo,
    path: &str,
    carrier: Carrier,
    request: Request,
    info: &mut AccessInfo,
) -> Result<Response, ApiError> {
    let cap = Duration::from_secs(gateway.inner.options.timeout_secs);
    let limit = gateway.inner.options.max_body_bytes;
    let ask = ask(request.headers(), cap, "")?;
    let (codec, compression, body, admitted, forwarded) = match carrier {
        Carrier::Body(codec) => {
            let (admitted, forwarded, body) = admitted_body(gateway, method, request, info).await?;
            (codec, ask.request, body, admitted, forwarded)
        }
        Carrier::Query => {
            let query = GetQuery::parse(request.uri().query())?;
            if query.message.len() > limit {
                return Err(crate::error::Error::BodyTooLarge { limit }.into());
            }
            let (parts, _) = request.into_parts();
            let (admitted, forwarded) = admitted(gateway, method, &parts, info).await?;
            (
                query.codec,
                query.compression,
                query.message,
                admitted,
                forwarded,
            )
        }
    };
    let body = compression.decompress(body, limit)?;
    let message = codec.decode(method.descriptor.input(), &body)?;
    let mut grpc = client(gateway, path).await?;
    let call = grpc.unary(
        grpc_request(message, forwarded, ask.deadline),
        grpc_path(path)?,
        DynamicCodec::new(method.descriptor.output()),
    );
    let reply = match tokio::time::timeout(ask.deadline, call).await {
        Ok(reply) => reply.map_err(ApiError::from_status)?,
        Err(_) => {
            return Err(ApiError::from_status(tonic::Status::deadline_exceeded(
                "no answer within the deadline",
            )));
        }
    };
    let (metadata, message, _) = reply.into_parts();
    let bytes = ask.response.compress(codec.encode(&message)?);
    let mut response = (
        [(header::CONTENT_TYPE, Shape::Unary(codec).content_type())],
        bytes,
    )
        .into_response();
    let headers = response.headers_mut();
    if ask.response == Compression::Gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    copy_metadata(&metadata, headers);
    if let Some(decision) = admitted.decision {
        headers.extend(rate_headers(&decision, method.class));
    }
    Ok(response)
}

/// The backend's metadata (the consistency token, above all) as headers.
fn copy_metadata(metadata: &tonic::metadata::MetadataMap, headers: &mut HeaderMap) {
    for (name, value) in metadata.clone().into_headers().iter() {
        if !error::is_protocol_header(name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// A server stream: every outcome is 200 with envelopes, the last one
/// saying how the stream ended.
async fn stream(
    gateway: &Gateway,
    method: &MethodInfo,
    path: &str,
    codec: Codec,
    request: Request,
    info: &mut AccessInfo,
) -> Response {
    let cap = Duration::from_secs(gateway.inner.options.stream_timeout_secs);
    let pool = gateway.inner.pool.clone();
    let mut compression = Compression::Identity;
    let mut headers = HeaderMap::new();
    let opened = async {
        let ask = ask(request.headers(), cap, "connect-")?;
        compression = ask.response;
        let (admitted, forwarded, body) = admitted_body(gateway, method, request, info).await?;
        if let Some(decision) = admitted.decision {
            headers.extend(rate_headers(&decision, method.class));
        }
        let limit = gateway.inner.options.max_body_bytes;
        let body = wire::single_message(body, ask.request, limit)?;
        let message = codec.decode(method.descriptor.input(), &body)?;
        let mut grpc = client(gateway, path).await?;
        grpc.server_streaming(
            grpc_request(message, forwarded, ask.deadline),
            grpc_path(path)?,
            DynamicCodec::new(method.descriptor.output()),
        )
        .await
        .map_err(ApiError::from_status)
    }
    .await;
    let frames = match opened {
        Ok(response) => {
            let (metadata, messages, _) = response.into_parts();
            copy_metadata(&metadata, &mut headers);
            frames(messages, codec, compression, pool).boxed()
        }
        Err(error) => {
            headers.extend(error.headers.iter().cloned());
            let end = end_of_stream(&pool, Some(&error.status), error.status.metadata());
            futures::stream::once(async move { end }).boxed()
        }
    };
    let mut response = (
        [(header::CONTENT_TYPE, Shape::Streaming(codec).content_type())],
        Body::from_stream(frames.map(Ok::<_, std::convert::Infallible>)),
    )
        .into_response();
    if compression == Compression::Gzip {
        headers.insert("connect-content-encoding", HeaderValue::from_static("gzip"));
    }
    response.headers_mut().extend(headers);
    response
}

/// The envelopes of a stream's messages, then its end.
fn frames(
    messages: tonic::Streaming<DynamicMessage>,
    codec: Codec,
    compression: Compression,
    pool: DescriptorPool,
) -> impl futures::Stream<Item = Bytes> + Send {
    futures::stream::unfold(Some(messages), move |state| {
        let pool = pool.clone();
        async move {
            let mut messages = state?;
            let status = match messages.message().await {
                Ok(Some(message)) => match codec.encode(&message) {
                    Ok(bytes) => {
                        let flags = match compression {
                            Compression::Gzip => wire::FLAG_COMPRESSED,
                            Compression::Identity => 0,
                        };
                        let frame = wire::envelope(flags, &compression.compress(bytes));
                        return Some((frame, Some(messages)));
                    }
                    Err(error) => Some(error.status),
                },
                Ok(None) => None,
                Err(status) => Some(status),
            };
            let trailers = match &status {
                Some(status) => status.metadata().clone(),
                None => messages.trailers().await.ok().flatten().unwrap_or_default(),
            };
            Some((end_of_stream(&pool, status.as_ref(), &trailers), None))
        }
    })
}

/// The end-of-stream envelope: the error, if any, and the trailers.
fn end_of_stream(
    pool: &DescriptorPool,
    status: Option<&tonic::Status>,
    trailers: &tonic::metadata::MetadataMap,
) -> Bytes {
    let mut end = json!({});
    if let Some(status) = status {
        end["error"] = error::body(pool, status);
    }
    let metadata = error::metadata(trailers);
    if !metadata.is_empty() {
        end["metadata"] = Value::Object(metadata);
    }
    wire::envelope(
        wire::FLAG_END_STREAM,
        &serde_json::to_vec(&end).unwrap_or_default(),
    )
}
