//! Exit codes scripts can rely on, and errors printed in words.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; for `check`, allowed |
//! | 1 | `check` (and `check-bulk`): denied |
//! | 2 | any other error (and a command line clap cannot parse) |
//! | 3 | the endpoint cannot be reached |
//! | 4 | unauthenticated: no, invalid or expired credentials |
//! | 5 | permission denied |
//! | 6 | invalid input: a bad argument, file or field |
//! | 7 | not found |

use std::fmt;

use tenantry_client::Error;

/// Denied (`check`).
pub const DENIED: u8 = 1;
/// Any other error.
pub const ERROR: u8 = 2;
/// The endpoint cannot be reached.
pub const UNREACHABLE: u8 = 3;
/// No, invalid or expired credentials.
pub const UNAUTHENTICATED: u8 = 4;
/// The caller may not do this.
pub const PERMISSION_DENIED: u8 = 5;
/// A bad argument, file or field.
pub const INVALID_INPUT: u8 = 6;
/// The object does not exist (or belongs to another tenant).
pub const NOT_FOUND: u8 = 7;

/// A command's end with an exit code other than 0; its message (if any) was
/// printed already.
#[derive(Debug)]
pub struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// A bad argument or file: exit code 6 with `message`.
#[derive(Debug)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Shorthand for an invalid-input error.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    Invalid(message.into()).into()
}

/// Prints `error` in words (with a hint where one helps) and returns the
/// exit code it stands for.
pub fn report(error: &anyhow::Error) -> u8 {
    if let Some(Exit(code)) = error.downcast_ref::<Exit>() {
        return *code;
    }
    if let Some(invalid) = error.downcast_ref::<Invalid>() {
        eprintln!("error: {invalid}");
        return INVALID_INPUT;
    }
    let Some(error) = error.chain().find_map(|e| e.downcast_ref::<Error>()) else {
        eprintln!("error: {error:#}");
        return ERROR;
    };
    eprintln!("error: {error}");
    let (code, hint) = classify(error);
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    code
}

fn classify(error: &Error) -> (u8, Option<&'static str>) {
    use tonic::Code;
    if error.is_unreachable() {
        return (
            UNREACHABLE,
            Some("is the server running? check the context's endpoint (`tenantry context show`)"),
        );
    }
    if error.is_unauthenticated() {
        return (
            UNAUTHENTICATED,
            Some("sign in again with `tenantry login`, or set a valid --api-key/--token"),
        );
    }
    match error.code() {
        Code::PermissionDenied => (PERMISSION_DENIED, None),
        Code::InvalidArgument | Code::OutOfRange => (INVALID_INPUT, None),
        Code::NotFound => (NOT_FOUND, None),
        _ => (ERROR, None),
    }
}
