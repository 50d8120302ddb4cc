//! Errors in Connect's JSON form:
//!
//! ```json
//! {"code": "not_found", "message": "…",
//!  "details": [{"type": "google.rpc.ErrorInfo", "value": "<base64>", "debug": {…}}]}
//! ```
//!
//! The code is the gRPC code's Connect name, the HTTP status of a unary
//! error is that code's (Connect's table is google.rpc's), and each
//! `google.rpc.Status` detail becomes a Connect detail: its type name, its
//! bytes in unpadded standard base64 (what Connect clients decode into the
//! type), and its JSON for people reading the wire.

use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use prost_reflect::DescriptorPool;
use serde_json::{Value, json};

use crate::errors::{ApiError, detail_json, http_status, status_details};

/// The Connect name of a gRPC code.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "ok",
        C::Cancelled => "canceled",
        C::Unknown => "unknown",
        C::InvalidArgument => "invalid_argument",
        C::DeadlineExceeded => "deadline_exceeded",
        C::NotFound => "not_found",
        C::AlreadyExists => "already_exists",
        C::PermissionDenied => "permission_denied",
        C::ResourceExhausted => "resource_exhausted",
        C::FailedPrecondition => "failed_precondition",
        C::Aborted => "aborted",
        C::OutOfRange => "out_of_range",
        C::Unimplemented => "unimplemented",
        C::Internal => "internal",
        C::Unavailable => "unavailable",
        C::DataLoss => "data_loss",
        C::Unauthenticated => "unauthenticated",
    }
}

/// The error object: code, message, details.
pub fn body(pool: &DescriptorPool, status: &tonic::Status) -> Value {
    let mut error = json!({ "code": code_name(status.code()) });
    if !status.message().is_empty() {
        error["message"] = status.message().into();
    }
    let details: Vec<Value> = status_details(status.details())
        .iter()
        .map(|any| {
            let name = any.type_url.rsplit('/').next().unwrap_or_default();
            let mut detail = json!({
                "type": name,
                "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value),
            });
            if let Some(debug) = detail_json(pool, any) {
                detail["debug"] = debug;
            }
            detail
        })
        .collect();
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    error
}

/// The metadata a status carries that a client may read (the consistency
/// token, above all), as Connect's `{name: [values]}`; the gRPC protocol's
/// own headers stay behind.
pub fn metadata(map: &tonic::metadata::MetadataMap) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for (name, value) in map.clone().into_headers().iter() {
        if is_protocol_header(name.as_str()) {
            continue;
        }
        if let Ok(text) = value.to_str() {
            let entry = out
                .entry(name.as_str().to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(values) = entry {
                values.push(text.into());
            }
        }
    }
    out
}

/// Headers of the gRPC protocol, which mean nothing to a Connect client.
pub fn is_protocol_header(name: &str) -> bool {
    name.starts_with("grpc-")
        || matches!(
            name,
            "content-type" | "content-length" | "te" | "trailer" | "date" | "content-encoding"
        )
}

/// A unary call's error response: the code's HTTP status, the error as
/// JSON, the edge's headers (`Retry-After`, rate limits) and the status's
/// metadata as headers.
pub fn unary_response(pool: &DescriptorPool, error: ApiError) -> Response {
    let status = http_status(error.status.code());
    let mut response = (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&body(pool, &error.status)).unwrap_or_default(),
    )
        .into_response();
    let headers = response.headers_mut();
    for (name, value) in error.status.metadata().clone().into_headers().iter() {
        if !is_protocol_header(name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in error.headers {
        headers.append(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_carry_type_bytes_and_json() {
        let pool = crate::routes::pool().unwrap();
        let status: tonic::Status = tenantry_kit::Error::not_found("organization").into_status();
        let error = body(&pool, &status);
        assert_eq!(error["code"], "not_found");
        let info = &error["details"][0];
        assert_eq!(info["type"], "google.rpc.ErrorInfo");
        assert_eq!(info["debug"]["reason"], "NOT_FOUND");
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(info["value"].as_str().unwrap())
            .unwrap();
        let decoded = <tonic_types::pb::ErrorInfo as prost::Message>::decode(bytes.as_slice());
        assert_eq!(decoded.unwrap().reason, "NOT_FOUND");
    }
}
