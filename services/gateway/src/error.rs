//! The reasons the gateway itself refuses a request: one enum, converted
//! once into the kit error (code, reason, ErrorInfo domain
//! [`DOMAIN`](crate::errors::DOMAIN)) and into the [`ApiError`] a REST
//! client is answered with (its HTTP status and headers). Generic refusals
//! (a bad field, missing credentials) are the kit's own; [`crate::errors`]
//! renders every error at the edge.

use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use tenantry_kit::{Code, Error as KitError};

use crate::errors::{ApiError, DOMAIN};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A body over `max_body_bytes`, as declared or as read.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The most bytes a body may have.
        limit: usize,
    },
    /// A request body that is not JSON.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// A path that has routes, but none for this method.
    #[error("{method} is not allowed here; use {allow}")]
    MethodNotAllowed {
        /// The request's method.
        method: Method,
        /// The methods the path takes, comma-separated.
        allow: String,
    },
    /// A method and path no route has.
    #[error("no route for {method} {path}")]
    NoRoute {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
    },
    /// A request over the rate limit of its class.
    #[error("too many {class} requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// The class of the route (`read`, `write`, …).
        class: &'static str,
        /// The bucket that refused (`organization`, `principal`, `address`).
        scope: &'static str,
        /// That bucket's limit per minute.
        limit_per_minute: u64,
        /// Seconds to wait before retrying.
        retry_after_secs: u64,
    },
}

impl Error {
    /// The code and the stable reason clients branch on.
    fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Error::BodyTooLarge { .. } => (Code::InvalidArgument, "BODY_TOO_LARGE"),
            Error::UnsupportedMediaType => (Code::InvalidArgument, "UNSUPPORTED_MEDIA_TYPE"),
            Error::MethodNotAllowed { .. } => (Code::Unimplemented, "METHOD_NOT_ALLOWED"),
            Error::NoRoute { .. } => (Code::NotFound, "NO_ROUTE"),
            Error::RateLimited { .. } => (Code::ResourceExhausted, "RATE_LIMITED"),
        }
    }

    /// The HTTP status, where it is not the code's: 413, 415 and 405 have
    /// no gRPC code of their own.
    fn http(&self) -> Option<StatusCode> {
        match self {
            Error::BodyTooLarge { .. } => Some(StatusCode::PAYLOAD_TOO_LARGE),
            Error::UnsupportedMediaType => Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            Error::MethodNotAllowed { .. } => Some(StatusCode::METHOD_NOT_ALLOWED),
            Error::NoRoute { .. } | Error::RateLimited { .. } => None,
        }
    }
}

impl From<Error> for KitError {
    fn from(error: Error) -> KitError {
        let (code, reason) = error.code_and_reason();
        let kit = KitError::new(code, reason, error.to_string()).with_domain(DOMAIN);
        match error {
            Error::BodyTooLarge { limit } => kit.with_metadata("limit_bytes", limit),
            Error::RateLimited {
                class,
                scope,
                limit_per_minute,
                retry_after_secs,
            } => kit
                .with_metadata("class", class)
                .with_metadata("scope", scope)
                .with_metadata("limit_per_minute", limit_per_minute)
                .with_retry_after(Duration::from_secs(retry_after_secs)),
            _ => kit,
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let http = error.http();
        // `Allow` names the methods the path takes, when they make a header.
        let allow = match &error {
            Error::MethodNotAllowed { allow, .. } => HeaderValue::from_str(allow).ok(),
            _ => None,
        };
        let mut api = ApiError::edge(error.into());
        if let Some(http) = http {
            api = api.with_http(http);
        }
        if let Some(allow) = allow {
            api = api.with_header(http::header::ALLOW, allow);
        }
        api
    }
}
