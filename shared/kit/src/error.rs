//! The error every Tenantry RPC answers with, and its one mapping to
//! `tonic::Status` with `google.rpc` details.
//!
//! Services keep their own `thiserror` enums for their domain and convert
//! them into [`Error`]; this type decides the gRPC code, whether the failure
//! is worth retrying, whether it is logged, and which details travel to the
//! client (`ErrorInfo` with a stable reason, `BadRequest` field violations,
//! `RetryInfo`). Internal failures are logged here with their cause and
//! answered with a generic message, so nothing internal leaks to a client.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tonic_types::{ErrorDetails, StatusExt};

/// The closed set of outcomes an RPC can fail with.
///
/// Every code answers, by an exhaustive match, whether a client may retry and
/// whether the server logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request is malformed; retrying it unchanged fails again.
    InvalidArgument,
    /// The object does not exist, or the caller may not know that it does.
    NotFound,
    /// An object with the same unique key exists.
    AlreadyExists,
    /// The system is not in a state that allows the operation.
    FailedPrecondition,
    /// A concurrent change won (stale etag, serialization failure).
    Aborted,
    /// The caller is known but lacks the permission.
    PermissionDenied,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// A quota or rate limit is exhausted.
    ResourceExhausted,
    /// A value is valid on its own but a result would not fit (a total
    /// that would overflow).
    OutOfRange,
    /// A dependency (database, bus, another service) is unreachable for now.
    Unavailable,
    /// The operation ran out of time.
    DeadlineExceeded,
    /// The RPC exists in the contract but this server does not serve it.
    Unimplemented,
    /// A bug or an unexpected failure; details are logged, never answered.
    Internal,
}

impl Code {
    /// Whether a client may retry the same request later and expect success.
    pub fn is_retryable(self) -> bool {
        match self {
            Code::Aborted
            | Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted => true,
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented
            | Code::OutOfRange
            | Code::Internal => false,
        }
    }

    /// Whether the server logs the failure: only failures an operator must
    /// look at, never a client's mistakes.
    pub fn is_logged(self) -> bool {
        match self {
            Code::Internal | Code::Unavailable | Code::DeadlineExceeded => true,
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::Unimplemented => false,
        }
    }

    /// The gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::NotFound => tonic::Code::NotFound,
            Code::AlreadyExists => tonic::Code::AlreadyExists,
            Code::FailedPrecondition => tonic::Code::FailedPrecondition,
            Code::Aborted => tonic::Code::Aborted,
            Code::PermissionDenied => tonic::Code::PermissionDenied,
            Code::Unauthenticated => tonic::Code::Unauthenticated,
            Code::ResourceExhausted => tonic::Code::ResourceExhausted,
            Code::OutOfRange => tonic::Code::OutOfRange,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Code::Unimplemented => tonic::Code::Unimplemented,
            Code::Internal => tonic::Code::Internal,
        }
    }
}

/// An RPC failure: a code, a stable machine-readable reason, a human message
/// and the details a client needs to act on it. Boxed: errors are the cold
/// path, and a small `Result` keeps the hot one cheap.
pub struct Error(Box<Inner>);

struct Inner {
    code: Code,
    reason: &'static str,
    message: String,
    domain: &'static str,
    metadata: HashMap<String, String>,
    violations: Vec<(String, String)>,
    retry_after: Option<Duration>,
    source: Option<anyhow::Error>,
}

/// The result type of fallible Tenantry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error. `reason` is UPPER_SNAKE and stable: clients branch on it.
    pub fn new(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            code,
            reason,
            message: message.into(),
            domain: "tenantry",
            metadata: HashMap::new(),
            violations: Vec::new(),
            retry_after: None,
            source: None,
        }))
    }

    /// A request field is missing or malformed.
    /// The message names the field and the rule, for whoever reads only
    /// the message (grpcurl, curl); the details carry the same violation.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        let (field, description) = (field.into(), description.into());
        Error::new(
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            format!("invalid `{field}`: {description}"),
        )
        .with_violation(field, description)
    }

    /// The object does not exist or the caller may not see it. The message
    /// names only the kind of object, never anything about another tenant.
    pub fn not_found(kind: &str) -> Self {
        Error::new(Code::NotFound, "NOT_FOUND", format!("{kind} not found"))
            .with_metadata("resource_type", kind)
    }

    /// The caller did not authenticate.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::new(Code::Unauthenticated, "UNAUTHENTICATED", message)
    }

    /// The caller lacks `permission`.
    pub fn permission_denied(permission: impl AsRef<str>) -> Self {
        Error::new(
            Code::PermissionDenied,
            "PERMISSION_DENIED",
            "permission denied",
        )
        .with_metadata("permission", permission.as_ref())
    }

    /// A dependency is unavailable; the cause is logged, not answered.
    pub fn unavailable(what: &'static str, cause: impl Into<anyhow::Error>) -> Self {
        Error::new(
            Code::Unavailable,
            "UNAVAILABLE",
            format!("{what} is unavailable"),
        )
        .with_source(cause)
    }

    /// An unexpected failure; the cause is logged, the client sees a generic
    /// message.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Error::new(Code::Internal, "INTERNAL", "internal error").with_source(cause)
    }

    /// Sets the ErrorInfo domain, usually the service's name.
    pub fn with_domain(mut self, domain: &'static str) -> Self {
        self.0.domain = domain;
        self
    }

    /// Adds an ErrorInfo metadata entry, such as the limit that was hit.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.0.metadata.insert(key.into(), value.to_string());
        self
    }

    /// Adds a BadRequest field violation.
    pub fn with_violation(
        mut self,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.0.violations.push((field.into(), description.into()));
        self
    }

    /// Tells the client when to retry (RetryInfo).
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.0.retry_after = Some(delay);
        self
    }

    /// Attaches the underlying cause, for the log only.
    pub fn with_source(mut self, source: impl Into<anyhow::Error>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// The error's code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The error's stable reason.
    pub fn reason(&self) -> &'static str {
        self.0.reason
    }

    /// The message the client sees.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// One of the error's metadata values (ErrorInfo), if set.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.0.metadata.get(key).map(String::as_str)
    }

    /// Converts into a `tonic::Status`, logging it first when its code says
    /// an operator should see it.
    pub fn into_status(self) -> tonic::Status {
        let inner = *self.0;
        if inner.code.is_logged() {
            match &inner.source {
                Some(source) => tracing::error!(
                    code = ?inner.code,
                    reason = inner.reason,
                    error = format!("{source:#}"),
                    "request failed"
                ),
                None => {
                    tracing::error!(code = ?inner.code, reason = inner.reason, "request failed")
                }
            }
        }
        let mut details = ErrorDetails::new();
        details.set_error_info(inner.reason, inner.domain, inner.metadata);
        if !inner.violations.is_empty() {
            let violations: Vec<_> = inner
                .violations
                .into_iter()
                .map(|(field, description)| tonic_types::FieldViolation::new(field, description))
                .collect();
            details.set_bad_request(violations);
        }
        if inner.retry_after.is_some() {
            details.set_retry_info(inner.retry_after);
        }
        tonic::Status::with_error_details(inner.code.grpc(), inner.message, details)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.0.code)
            .field("reason", &self.0.reason)
            .field("message", &self.0.message)
            .field("metadata", &self.0.metadata)
            .field("violations", &self.0.violations)
            .field("source", &self.0.source.as_ref().map(|s| format!("{s:#}")))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.reason, self.0.message)?;
        if let Some(source) = &self.0.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        error.into_status()
    }
}

/// Maps a database error onto the closed set of codes. This is the only place
/// that looks at database error kinds (SQLSTATE on Postgres, extended result
/// codes on SQLite): a unique violation is ALREADY_EXISTS, a foreign key
/// violation FAILED_PRECONDITION, a serialization failure ABORTED, an
/// unreachable database UNAVAILABLE, and anything else INTERNAL.
pub fn db_error(error: sqlx::Error) -> Error {
    use sqlx::error::ErrorKind;
    match &error {
        sqlx::Error::RowNotFound => Error::not_found("object"),
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => Error::new(
                Code::AlreadyExists,
                "ALREADY_EXISTS",
                "the object already exists",
            ),
            ErrorKind::ForeignKeyViolation => Error::new(
                Code::FailedPrecondition,
                "REFERENCED_OBJECT_MISSING",
                "a referenced object does not exist or is still in use",
            ),
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                Error::internal(error).with_domain("database")
            }
            _ if is_transient(db.code().as_deref()) => Error::new(
                Code::Aborted,
                "CONCURRENT_UPDATE",
                "a concurrent change conflicted; retry the request",
            )
            .with_source(error),
            _ => Error::internal(error),
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => Error::unavailable("the database", error),
        _ => Error::internal(error),
    }
}

/// `?` on a database call maps its error through [`db_error`], the one
/// mapping of storage failures to what a client is told.
impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        db_error(error)
    }
}

/// The ErrorInfo reason of a status another service answered, if any.
pub fn reason_of(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

/// Postgres serialization failure and deadlock; SQLite busy and locked.
fn is_transient(code: Option<&str>) -> bool {
    matches!(code, Some("40001" | "40P01" | "5" | "6" | "517" | "262"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_survives_the_wire() {
        let status: tonic::Status = Error::new(
            Code::InvalidArgument,
            "UNKNOWN_PERMISSION",
            "no such permission",
        )
        .into();
        assert_eq!(reason_of(&status).as_deref(), Some("UNKNOWN_PERMISSION"));
        assert_eq!(reason_of(&tonic::Status::internal("plain")), None);
    }

    #[test]
    fn status_carries_error_info_and_field_violations() {
        let status: tonic::Status = Error::invalid_field("slug", "must be lowercase")
            .with_domain("organization")
            .with_metadata("max_length", 63)
            .into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.reason, "INVALID_ARGUMENT");
        assert_eq!(info.domain, "organization");
        assert_eq!(info.metadata["max_length"], "63");
        let bad = details.bad_request().expect("bad request");
        assert_eq!(bad.field_violations[0].field, "slug");
    }

    #[test]
    fn internal_errors_answer_a_generic_message() {
        let status: tonic::Status =
            Error::internal(anyhow::anyhow!("connection string postgres://secret")).into();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn the_log_form_keeps_the_cause_the_client_form_hides() {
        // Background work logs `%error`, never `error.message()`: a failing
        // statement retried forever must say why in the log.
        let error = Error::internal(anyhow::anyhow!("relation \"rbac_nodes\" does not exist"));
        assert_eq!(error.message(), "internal error");
        assert_eq!(
            error.to_string(),
            "INTERNAL: internal error: relation \"rbac_nodes\" does not exist"
        );
    }

    #[test]
    fn retry_info_travels_with_rate_limits() {
        let status: tonic::Status =
            Error::new(Code::ResourceExhausted, "RATE_LIMITED", "too many attempts")
                .with_retry_after(Duration::from_secs(3))
                .into();
        let details = status.get_error_details();
        let delay = details.retry_info().and_then(|r| r.retry_delay);
        assert_eq!(delay, Some(Duration::from_secs(3)));
    }

    #[test]
    fn every_code_has_an_answer() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unimplemented,
            Code::Internal,
        ] {
            // Retryable failures are never the client's fault.
            if code.is_retryable() {
                assert_ne!(code, Code::InvalidArgument);
            }
            assert_ne!(code.grpc(), tonic::Code::Ok);
        }
    }
}
