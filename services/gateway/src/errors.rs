//! Errors at the edge: a gRPC status (from a backend, or made here) as an
//! HTTP response with Google's JSON error body, details included:
//!
//! ```json
//! {"error": {"code": 404, "status": "NOT_FOUND", "message": "…",
//!            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", …}]}}
//! ```

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tenantry_kit::Error;

/// The domain of errors the gateway itself raises.
pub const DOMAIN: &str = "gateway.tenantry";

/// An error on its way to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status; normally the gRPC code's, but 413 and 405 have no
    /// gRPC code of their own.
    pub http: StatusCode,
    /// The status, with its details.
    pub status: tonic::Status,
    /// Extra response headers (`Retry-After`, `Allow`, rate-limit headers).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error answered with the HTTP status of its gRPC code.
    pub fn from_status(status: tonic::Status) -> ApiError {
        ApiError {
            http: status_of(&status),
            status,
            headers: Vec::new(),
        }
    }

    /// An error made at the edge.
    pub fn edge(error: Error) -> ApiError {
        ApiError::from_status(error.with_domain(DOMAIN).into_status())
    }

    /// A bad request naming the offending field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ApiError {
        ApiError::edge(Error::invalid_field(field, description))
    }

    /// Replaces the HTTP status.
    pub fn with_http(mut self, http: StatusCode) -> ApiError {
        self.http = http;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: http::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// The JSON body: code, status name, message and rendered details.
    pub fn body(&self, pool: &DescriptorPool) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.http.as_u16(),
            "status": code_name(self.status.code()),
            "message": self.status.message(),
        });
        let details = details(pool, self.status.details());
        if !details.is_empty() {
            error["details"] = serde_json::Value::Array(details);
        }
        serde_json::json!({ "error": error })
    }

    /// The response.
    pub fn into_response(self, pool: &DescriptorPool) -> Response {
        let body = self.body(pool);
        let mut response = (self.http, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// The `google.rpc.Status` details as JSON objects with `@type`. A detail
/// of a type the gateway does not know keeps only its `@type`.
fn details(pool: &DescriptorPool, encoded: &[u8]) -> Vec<serde_json::Value> {
    status_details(encoded)
        .into_iter()
        .map(|any| {
            detail_json(pool, &any)
                .map(|mut value| {
                    if let serde_json::Value::Object(fields) = &mut value {
                        fields.insert("@type".into(), any.type_url.clone().into());
                    }
                    value
                })
                .unwrap_or_else(|| serde_json::json!({ "@type": any.type_url }))
        })
        .collect()
}

/// The details of an encoded `google.rpc.Status` (a status's
/// `grpc-status-details-bin`); none when it does not decode.
pub fn status_details(encoded: &[u8]) -> Vec<prost_types::Any> {
    if encoded.is_empty() {
        return Vec::new();
    }
    tenantry_proto::google::rpc::Status::decode(encoded)
        .map(|status| status.details)
        .unwrap_or_default()
}

/// A detail as proto3 JSON, when its type is in `pool`.
pub fn detail_json(pool: &DescriptorPool, any: &prost_types::Any) -> Option<serde_json::Value> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let descriptor = pool.get_message_by_name(name)?;
    let message = DynamicMessage::decode(descriptor, any.value.as_slice()).ok()?;
    serde_json::to_value(&message).ok()
}

/// The HTTP status of an answer: its code's, except that a plan limit
/// (`QUOTA_EXCEEDED`) is 402 Payment Required, so that a client tells it
/// from a rate limit (429, with `Retry-After`) without reading the body:
/// waiting does not lift a plan limit; upgrading, or freeing one, does.
pub fn status_of(status: &tonic::Status) -> StatusCode {
    use tonic_types::StatusExt as _;
    let quota = status.code() == tonic::Code::ResourceExhausted
        && status
            .get_details_error_info()
            .is_some_and(|info| info.reason == "QUOTA_EXCEEDED");
    match quota {
        true => StatusCode::PAYMENT_REQUIRED,
        false => http_status(status.code()),
    }
}

/// The HTTP status of a gRPC code (google.rpc.Code's mapping).
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code as C;
    match code {
        C::Ok => StatusCode::OK,
        C::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        C::InvalidArgument | C::FailedPrecondition | C::OutOfRange => StatusCode::BAD_REQUEST,
        C::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        C::NotFound => StatusCode::NOT_FOUND,
        C::AlreadyExists | C::Aborted => StatusCode::CONFLICT,
        C::PermissionDenied => StatusCode::FORBIDDEN,
        C::Unauthenticated => StatusCode::UNAUTHORIZED,
        C::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        C::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::Unknown | C::Internal | C::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The canonical name of a gRPC code (`NOT_FOUND`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Errors the edge raises, by the same rules as the services'.
pub fn unauthenticated(message: &str) -> ApiError {
    ApiError::edge(Error::unauthenticated(message.to_string()))
}
