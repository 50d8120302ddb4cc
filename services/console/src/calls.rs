//! Calling the services as the signed-in user, and putting their refusals
//! into words for the page.

use tonic_types::StatusExt as _;

/// A request carrying the user's access token, as any client sends it.
pub fn as_user<T>(message: T, access_token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {access_token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Why a call failed, as the page shows it.
#[derive(Debug, Default)]
pub struct Failure {
    /// What went wrong, in words.
    pub message: String,
    /// Field → what is wrong with it (the status's field violations).
    pub fields: Vec<(String, String)>,
    /// For failures on the server's side: the id the log has it under.
    pub request_id: Option<String>,
    /// The session is gone (expired or revoked): sign in again.
    pub signed_out: bool,
    /// The service's answer, for the page's status code.
    pub code: Option<tonic::Code>,
}

impl Failure {
    /// The HTTP status of a page showing this failure: 503 (with the
    /// request id) for the server's own faults, 403 for a refusal of
    /// permission, 404 for what does not exist (or may not be known), 409
    /// for a stale form, 400 for the rest (bad input, a rule of the
    /// product).
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        if self.request_id.is_some() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match self.code {
            Some(tonic::Code::PermissionDenied) => StatusCode::FORBIDDEN,
            Some(tonic::Code::NotFound) => StatusCode::NOT_FOUND,
            Some(tonic::Code::Aborted) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl Failure {
    /// A refused sign-in (wrong password or code): identity's own words,
    /// not "your session has ended".
    pub fn of_credentials(status: tonic::Status) -> Failure {
        match status.code() {
            tonic::Code::Unauthenticated => Failure {
                message: status.message().to_string(),
                ..Failure::default()
            },
            _ => status.into(),
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        use tonic::Code;
        let code = Some(status.code());
        let failure = match status.code() {
            Code::Unauthenticated => Failure {
                message: "Your session has ended; sign in again.".into(),
                signed_out: true,
                ..Failure::default()
            },
            Code::Internal | Code::Unknown | Code::Unavailable | Code::DataLoss => {
                let request_id = uuid::Uuid::now_v7().to_string();
                tracing::error!(%request_id, code = ?status.code(), message = status.message(), "a console call failed");
                Failure {
                    message: "Something went wrong on our side; try again in a moment.".into(),
                    request_id: Some(request_id),
                    ..Failure::default()
                }
            }
            _ => {
                let fields = status
                    .get_details_bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .into_iter()
                            .map(|v| (v.field, v.description))
                            .collect()
                    })
                    .unwrap_or_default();
                Failure {
                    message: status.message().to_string(),
                    fields,
                    ..Failure::default()
                }
            }
        };
        Failure { code, ..failure }
    }
}
