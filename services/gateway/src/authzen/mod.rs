//! The OpenID AuthZEN Authorization API 1.0 on the gateway: access
//! evaluation(s) and the subject, resource and action searches under
//! `/access/v1/`, and the metadata at `/.well-known/authzen-configuration`.
//!
//! A request is admitted like every API call (edge authentication, the
//! `read` rate limit), read into Tenantry's terms ([`model`]) and answered
//! by the authorization service with the caller's credential ([`decide`]).
//! Errors are the specification's: an HTTP status (400 for a missing or
//! malformed member, 401, 403, 429, 500…) with the message as text.

pub mod decide;
pub mod model;
pub mod openapi;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::Gateway;
use crate::admit::{Admitted, admit, forward_headers, rate_headers};
use crate::edge::AccessInfo;
use crate::errors::{ApiError, http_status};
use crate::rest::read_limited;
use crate::routes::Class;
use decide::Pdp;
use model::{BadRequest, Target};
use tenantry_kit::net::ClientAddress;

/// The endpoints, by their default paths.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Evaluation,
    Evaluations,
    Search(Target),
}

impl Endpoint {
    const ALL: [(Endpoint, &'static str, &'static str); 5] = [
        (
            Endpoint::Evaluation,
            "/access/v1/evaluation",
            "access_evaluation_endpoint",
        ),
        (
            Endpoint::Evaluations,
            "/access/v1/evaluations",
            "access_evaluations_endpoint",
        ),
        (
            Endpoint::Search(Target::Subject),
            "/access/v1/search/subject",
            "search_subject_endpoint",
        ),
        (
            Endpoint::Search(Target::Resource),
            "/access/v1/search/resource",
            "search_resource_endpoint",
        ),
        (
            Endpoint::Search(Target::Action),
            "/access/v1/search/action",
            "search_action_endpoint",
        ),
    ];
}

/// The AuthZEN routes.
pub fn router() -> Router<Gateway> {
    let mut router = Router::new().route("/.well-known/authzen-configuration", get(metadata));
    for (endpoint, path, _) in Endpoint::ALL {
        router = router.route(
            path,
            post(move |State(gateway): State<Gateway>, request: Request| {
                serve(gateway, request, endpoint, path)
            }),
        );
    }
    router
}

/// The Policy Decision Point metadata: the endpoints under the public URL
/// (`gateway.public_url`, or the URL this request reached).
async fn metadata(State(gateway): State<Gateway>, request: Request) -> Response {
    let base = match &gateway.inner.options.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    let mut document = serde_json::Map::new();
    document.insert("policy_decision_point".into(), base.clone().into());
    for (_, path, parameter) in Endpoint::ALL {
        document.insert(parameter.into(), format!("{base}{path}").into());
    }
    axum::Json(Value::Object(document)).into_response()
}

async fn serve(gateway: Gateway, request: Request, endpoint: Endpoint, path: &str) -> Response {
    let mut info = AccessInfo {
        route: format!("POST {path}"),
        ..Default::default()
    };
    let deadline = Duration::from_secs(gateway.inner.options.timeout_secs);
    let outcome =
        tokio::time::timeout(deadline, answer(&gateway, request, endpoint, &mut info)).await;
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => refusal(error),
        Err(_) => refusal(ApiError::from_status(tonic::Status::deadline_exceeded(
            "no answer within the deadline",
        ))),
    };
    response.extensions_mut().insert(info);
    response
}

async fn answer(
    gateway: &Gateway,
    request: Request,
    endpoint: Endpoint,
    info: &mut AccessInfo,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let client = ClientAddress::of(&parts.extensions);
    let Admitted { caller, decision } =
        admit(gateway, &parts.headers, Class::Read, false, client, info).await?;
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(crate::error::Error::UnsupportedMediaType.into());
    }
    let body = read_limited(gateway, &parts.headers, body).await?;
    let body = model::object(&body).map_err(bad_request)?;
    let channel = gateway
        .inner
        .upstreams
        .for_path("/tenantry.authz.v1.AuthorizationService/CheckPermission")
        .cloned()
        .ok_or_else(|| {
            ApiError::from_status(tonic::Status::unavailable("no authorization service"))
        })?;
    let forwarded = forward_headers(&parts.headers, &caller, client);
    let deadline = Duration::from_secs(gateway.inner.options.timeout_secs);
    let mut pdp = Pdp::new(channel, forwarded, deadline);
    let result = match endpoint {
        Endpoint::Evaluation => {
            let evaluation = model::evaluation(&body).map_err(bad_request)?;
            let consistency = model::consistency(&evaluation.context).map_err(bad_request)?;
            pdp.evaluate(&evaluation, consistency).await
        }
        Endpoint::Evaluations => {
            let batch = model::batch(&body).map_err(bad_request)?;
            pdp.evaluate_batch(&batch).await
        }
        Endpoint::Search(target) => {
            let search = model::search(&body, target).map_err(bad_request)?;
            match target {
                Target::Subject => pdp.search_subjects(&search).await,
                Target::Resource => pdp.search_resources(&search).await,
                Target::Action => pdp.search_actions(&search).await,
            }
        }
    };
    let mut response = axum::Json(result.map_err(ApiError::from_status)?).into_response();
    if let Some(decision) = decision {
        response
            .headers_mut()
            .extend(rate_headers(&decision, Class::Read));
    }
    Ok(response)
}

fn bad_request(BadRequest(message): BadRequest) -> ApiError {
    ApiError::from_status(tonic::Status::invalid_argument(message))
}

/// An error as the specification has it: the status, the message as text
/// (and the edge's headers: `Retry-After`, `Allow`, rate limits).
fn refusal(error: ApiError) -> Response {
    // The gateway's own refusals (413, 415) keep their status; a quota is
    // a plain 429 here, as it has no AuthZEN meaning of its own.
    let status = match error.http {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => error.http,
        _ => http_status(error.status.code()),
    };
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        error.status.message().to_string(),
    )
        .into_response();
    for (name, value) in error.headers {
        response.headers_mut().append(name, value);
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
