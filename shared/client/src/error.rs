//! Typed errors: a gRPC status with its `google.rpc` details decoded.
//!
//! Every service answers errors as a status code with an `ErrorInfo` (a
//! stable UPPER_SNAKE `reason`, the answering service as `domain`, and
//! values in `metadata`), `BadRequest` field violations for bad input and
//! `RetryInfo` on throttling. [`Error`] carries all of it, so callers match
//! on `reason()` instead of parsing messages.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;

/// The domain of the errors this client makes itself (no server answered).
pub const CLIENT_DOMAIN: &str = "client.tenantry";

/// The reason of an error this client made because the endpoint could not be
/// reached (refused, unresolvable, timed out while connecting).
pub const UNREACHABLE: &str = "UNREACHABLE";

/// The reason of an error this client made because its credentials could
/// not be turned into an access token (a refresh or an exchange failed).
pub const CREDENTIALS_REJECTED: &str = "CREDENTIALS_REJECTED";

/// One bad field of a request, from `google.rpc.BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, such as `organization.slug`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// An error of a call: its gRPC code, message and decoded details.
#[derive(Debug, Clone)]
pub struct Error(Box<Details>);

#[derive(Debug, Clone)]
struct Details {
    code: Code,
    message: String,
    reason: Option<String>,
    domain: Option<String>,
    metadata: BTreeMap<String, String>,
    field_violations: Vec<FieldViolation>,
    retry_delay: Option<Duration>,
}

/// The result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error the client makes itself, with a reason of [`CLIENT_DOMAIN`].
    pub fn local(code: Code, reason: &str, message: impl Into<String>) -> Error {
        Error(Box::new(Details {
            code,
            message: message.into(),
            reason: Some(reason.to_string()),
            domain: Some(CLIENT_DOMAIN.to_string()),
            metadata: BTreeMap::new(),
            field_violations: Vec::new(),
            retry_delay: None,
        }))
    }

    /// The gRPC status code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The server's message (lowercase words, no values).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The stable reason of `google.rpc.ErrorInfo`, such as `SLUG_TAKEN`.
    pub fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// The domain of `ErrorInfo`: the service that answered.
    pub fn domain(&self) -> Option<&str> {
        self.0.domain.as_deref()
    }

    /// The values of `ErrorInfo`, such as the field or resource concerned.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.0.metadata
    }

    /// The bad fields of an INVALID_ARGUMENT, from `BadRequest`.
    pub fn field_violations(&self) -> &[FieldViolation] {
        &self.0.field_violations
    }

    /// How long the server asks the caller to wait, from `RetryInfo`.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.0.retry_delay
    }

    /// Whether the endpoint could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        self.is_local(UNREACHABLE)
    }

    /// Whether the caller's credentials were refused: an invalid or expired
    /// token, a revoked key, or a refresh that failed.
    pub fn is_unauthenticated(&self) -> bool {
        self.0.code == Code::Unauthenticated || self.is_local(CREDENTIALS_REJECTED)
    }

    fn is_local(&self, reason: &str) -> bool {
        self.0.domain.as_deref() == Some(CLIENT_DOMAIN) && self.0.reason.as_deref() == Some(reason)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.message)?;
        if let Some(reason) = &self.0.reason {
            write!(f, " ({reason})")?;
        }
        for violation in &self.0.field_violations {
            write!(f, "; {}: {}", violation.field, violation.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Error {
        let details = status.get_error_details();
        let info = details.error_info();
        let field_violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| FieldViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Error(Box::new(Details {
            code: status.code(),
            message: status.message().to_string(),
            reason: info.map(|i| i.reason.clone()).filter(|r| !r.is_empty()),
            domain: info.map(|i| i.domain.clone()).filter(|d| !d.is_empty()),
            metadata: info
                .map(|i| {
                    i.metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            field_violations,
            retry_delay: details.retry_info().and_then(|r| r.retry_delay),
        }))
    }
}

impl From<Error> for tonic::Status {
    /// Back into a status, details included, for the generated clients'
    /// error channel.
    fn from(error: Error) -> tonic::Status {
        let mut details = tonic_types::ErrorDetails::new();
        if let (Some(reason), Some(domain)) = (&error.0.reason, &error.0.domain) {
            details.set_error_info(
                reason.clone(),
                domain.clone(),
                error
                    .0
                    .metadata
                    .clone()
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
        if let Some(delay) = error.0.retry_delay {
            details.set_retry_info(Some(delay));
        }
        if !error.0.field_violations.is_empty() {
            details.set_bad_request(
                error
                    .0
                    .field_violations
                    .iter()
                    .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
                    .collect::<Vec<_>>(),
            );
        }
        tonic::Status::with_error_details(error.0.code, error.0.message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_survive_a_round_trip_through_a_status() {
        let mut details = tonic_types::ErrorDetails::new();
        details.set_error_info(
            "SLUG_TAKEN",
            "organization.tenantry",
            [("slug".to_string(), "acme".to_string())],
        );
        details.add_bad_request_violation("organization.slug", "is taken");
        let status = tonic::Status::with_error_details(Code::AlreadyExists, "taken", details);
        let error = Error::from(status);
        assert_eq!(error.reason(), Some("SLUG_TAKEN"));
        assert_eq!(error.domain(), Some("organization.tenantry"));
        assert_eq!(error.metadata()["slug"], "acme");
        assert_eq!(error.field_violations()[0].field, "organization.slug");
        let again = Error::from(tonic::Status::from(error.clone()));
        assert_eq!(again.reason(), error.reason());
        assert_eq!(
            again.to_string(),
            "taken (SLUG_TAKEN); organization.slug: is taken"
        );
    }

    #[test]
    fn a_local_error_says_what_kind_it_is() {
        let error = Error::local(Code::Unavailable, UNREACHABLE, "cannot reach http://x");
        assert!(error.is_unreachable());
        assert!(!error.is_unauthenticated());
        let plain = Error::from(tonic::Status::unavailable("index behind"));
        assert!(!plain.is_unreachable());
        assert_eq!(plain.reason(), None);
    }
}
