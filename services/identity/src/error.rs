//! The reasons the identity service refuses a request: one enum, converted
//! once into the kit error (code, reason, ErrorInfo domain `crate::NAME`).
//! Generic refusals (a bad field, a hidden object, a missing permission)
//! are the kit's own.

use std::time::Duration;

use tenantry_kit::error::{Code, Error as KitError};

/// The request field a password policy violation names.
const PASSWORD_FIELD: &str = "password";

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A sign-in failed, whatever failed: one answer, so nobody learns
    /// which accounts exist.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A re-authentication with the caller's current password failed.
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    /// A single-use token (in request field `field`) is unknown, used or
    /// expired.
    #[error("the token is invalid, used or expired")]
    TokenInvalid {
        /// The request field that held the token.
        field: &'static str,
    },
    /// The session behind a call or refresh token was revoked, expired or
    /// never existed.
    #[error("the session is invalid or has ended")]
    SessionInvalid,
    /// A call only a signed-in user may make came from another kind of
    /// principal.
    #[error("only a signed-in user may call this")]
    UserRequired,
    /// A session was to switch into a deactivated organization.
    #[error("the organization is deactivated")]
    OrganizationDeactivated,
    /// A session without MFA was to switch into an organization that
    /// requires it.
    #[error("the organization requires MFA; sign in with MFA first")]
    MfaRequired,
    /// The second factor of a sign-in was wrong.
    #[error("the code is not valid")]
    InvalidMfaCode,
    /// The first code confirming a TOTP enrollment was wrong.
    #[error("the code is not valid")]
    InvalidEnrollmentCode,
    /// TOTP enrollment started for a user who has TOTP on.
    #[error("TOTP is already enabled")]
    MfaAlreadyEnabled,
    /// TOTP was to be confirmed with no enrollment started (or it expired).
    #[error("start TOTP enrollment first")]
    NoPendingEnrollment,
    /// TOTP was to be turned off, or its recovery codes replaced, for a
    /// user without it.
    #[error("TOTP is not enabled")]
    MfaNotEnabled,
    /// Another account has the address.
    #[error("an account with this email exists")]
    EmailTaken,
    /// Too many failed sign-ins for the account or the client address.
    #[error("too many failed attempts; retry later")]
    LoginThrottled {
        /// When the next attempt may come.
        retry_after: Duration,
    },
    /// An API key was to carry a permission its creator does not hold.
    #[error("a key cannot carry a permission its creator lacks")]
    PermissionNotHeld {
        /// The request field naming the permission.
        field: String,
    },
    /// An administrative change of a user named a version it no longer has.
    #[error("the user changed since it was read")]
    EtagMismatch,
    /// An administrator was to disable their own account.
    #[error("administrators cannot disable themselves")]
    CannotDisableSelf,
    /// An administrator was to delete their own account.
    #[error("administrators cannot delete themselves")]
    CannotDeleteSelf,
    /// A peer service could not answer; its status is logged, not answered.
    #[error("{what} is unavailable")]
    DependencyUnavailable {
        /// The peer, as the message names it.
        what: &'static str,
        /// What the peer answered.
        status: tonic::Status,
    },
    /// A new password is longer than the policy allows.
    #[error("the password is too long")]
    PasswordTooLong {
        /// The most code points allowed.
        max_length: usize,
    },
    /// A new password is shorter than the policy allows.
    #[error("the password is too short")]
    PasswordTooShort {
        /// The fewest code points allowed.
        min_length: usize,
    },
    /// A new password is on the list of common and breached passwords.
    #[error("the password is too common")]
    PasswordTooCommon,
    /// A new password is the user's own email address or name.
    #[error("the password is too common")]
    PasswordIsPersonal,
    /// A new password is too easy to guess.
    #[error("the password is too easy to guess")]
    PasswordTooWeak {
        /// The estimator's warning, as ` (warning)`, or empty.
        hint: String,
        /// The password's score.
        strength: u8,
        /// The lowest score allowed.
        min_strength: u8,
    },
}

impl Error {
    /// The code and the stable reason clients branch on.
    fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Error::InvalidCredentials | Error::WrongCurrentPassword => {
                (Code::Unauthenticated, "INVALID_CREDENTIALS")
            }
            Error::TokenInvalid { .. } => (Code::InvalidArgument, "TOKEN_INVALID"),
            Error::SessionInvalid => (Code::Unauthenticated, "SESSION_INVALID"),
            Error::UserRequired => (Code::PermissionDenied, "USER_REQUIRED"),
            Error::OrganizationDeactivated => {
                (Code::FailedPrecondition, "ORGANIZATION_DEACTIVATED")
            }
            Error::MfaRequired => (Code::FailedPrecondition, "MFA_REQUIRED"),
            Error::InvalidMfaCode => (Code::Unauthenticated, "INVALID_MFA_CODE"),
            Error::InvalidEnrollmentCode => (Code::InvalidArgument, "INVALID_MFA_CODE"),
            Error::MfaAlreadyEnabled => (Code::FailedPrecondition, "MFA_ALREADY_ENABLED"),
            Error::NoPendingEnrollment => (Code::FailedPrecondition, "NO_PENDING_ENROLLMENT"),
            Error::MfaNotEnabled => (Code::FailedPrecondition, "MFA_NOT_ENABLED"),
            Error::EmailTaken => (Code::AlreadyExists, "EMAIL_TAKEN"),
            Error::LoginThrottled { .. } => (Code::ResourceExhausted, "LOGIN_THROTTLED"),
            Error::PermissionNotHeld { .. } => (Code::PermissionDenied, "PERMISSION_NOT_HELD"),
            Error::EtagMismatch => (Code::Aborted, "ETAG_MISMATCH"),
            Error::CannotDisableSelf => (Code::FailedPrecondition, "CANNOT_DISABLE_SELF"),
            Error::CannotDeleteSelf => (Code::FailedPrecondition, "CANNOT_DELETE_SELF"),
            Error::DependencyUnavailable { .. } => (Code::Unavailable, "DEPENDENCY_UNAVAILABLE"),
            Error::PasswordTooLong { .. } => (Code::InvalidArgument, "PASSWORD_TOO_LONG"),
            Error::PasswordTooShort { .. } => (Code::InvalidArgument, "PASSWORD_TOO_SHORT"),
            Error::PasswordTooCommon | Error::PasswordIsPersonal => {
                (Code::InvalidArgument, "PASSWORD_TOO_COMMON")
            }
            Error::PasswordTooWeak { .. } => (Code::InvalidArgument, "PASSWORD_TOO_WEAK"),
        }
    }
}

impl From<Error> for KitError {
    fn from(error: Error) -> KitError {
        let (code, reason) = error.code_and_reason();
        let kit = KitError::new(code, reason, error.to_string()).with_domain(crate::NAME);
        match error {
            Error::WrongCurrentPassword => kit.with_violation("current_password", "is wrong"),
            Error::TokenInvalid { field } => {
                kit.with_violation(field, "is invalid, used or expired")
            }
            Error::InvalidEnrollmentCode => kit.with_violation("code", "is not the current code"),
            Error::LoginThrottled { retry_after } => kit.with_retry_after(retry_after),
            Error::PermissionNotHeld { field } => {
                kit.with_violation(field, "is not held by the caller")
            }
            Error::DependencyUnavailable { status, .. } => kit.with_source(anyhow::anyhow!(
                "{}: {}",
                status.code(),
                status.message()
            )),
            Error::PasswordTooLong { max_length } => kit
                .with_violation(
                    PASSWORD_FIELD,
                    format!("must be at most {max_length} characters"),
                )
                .with_metadata("max_length", max_length),
            Error::PasswordTooShort { min_length } => kit
                .with_violation(
                    PASSWORD_FIELD,
                    format!("must be at least {min_length} characters"),
                )
                .with_metadata("min_length", min_length),
            Error::PasswordTooCommon => kit.with_violation(
                PASSWORD_FIELD,
                "is a commonly used or breached password; choose another",
            ),
            Error::PasswordIsPersonal => {
                kit.with_violation(PASSWORD_FIELD, "must not be your email address or name")
            }
            Error::PasswordTooWeak {
                hint,
                strength,
                min_strength,
            } => kit
                .with_violation(
                    PASSWORD_FIELD,
                    format!(
                        "is too easy to guess{hint}; a few uncommon words together make a strong password"
                    ),
                )
                .with_metadata("strength", strength)
                .with_metadata("min_strength", min_strength),
            Error::InvalidCredentials
            | Error::SessionInvalid
            | Error::UserRequired
            | Error::OrganizationDeactivated
            | Error::MfaRequired
            | Error::InvalidMfaCode
            | Error::MfaAlreadyEnabled
            | Error::NoPendingEnrollment
            | Error::MfaNotEnabled
            | Error::EmailTaken
            | Error::EtagMismatch
            | Error::CannotDisableSelf
            | Error::CannotDeleteSelf => kit,
        }
    }
}

/// A handler answers a refusal as the kit error's status.
impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        KitError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_code_reason_message_and_details() {
        let error = KitError::from(Error::PasswordTooLong { max_length: 256 });
        assert_eq!(
            (error.code(), error.reason()),
            (Code::InvalidArgument, "PASSWORD_TOO_LONG")
        );
        assert_eq!(error.message(), "the password is too long");
        assert_eq!(error.metadata("max_length"), Some("256"));

        let status = tonic::Status::from(Error::TokenInvalid { field: "mfa_token" });
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = String::from_utf8_lossy(status.details());
        assert!(details.contains(crate::NAME), "{details}");
        assert!(details.contains("mfa_token"), "{details}");
    }
}
