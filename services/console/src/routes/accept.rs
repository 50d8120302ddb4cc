//! Accepting an invitation from its mail link.
//!
//! rbac mails `{rbac.mailer.link_base_url}/invitations/accept?token=…`;
//! with `link_base_url` set to the console's URL (`…/console`) that is this
//! page. It shows what the invitation gives (`LookupInvitation`, which needs
//! no sign-in), then: a signed-in user accepts with a button and lands in
//! the organization; anyone else signs in and comes back here, or signs up
//! with the invited address (identity's `SignUp` accepts the invitation).
//!
//! The token is in the link's query, which the gateway does not log (it
//! logs paths); from there it travels in form bodies only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::{Console, Posted, Shared, Signed, forbidden, form, tokens_of};
use crate::calls::Failure;
use crate::pages::{csrf, failure};
use crate::session::State;

const PATH: &str = "/console/invitations/accept";

pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(PATH, get(page).post(accept))
        .route("/console/invitations/accept/sign-up", post(sign_up))
}

impl Console {
    /// What the invitation gives, or why the token is refused.
    async fn preview(&self, token: &str) -> Result<rbac::InvitationPreview, Failure> {
        if token.is_empty() {
            return Err(not_valid());
        }
        let answer = self
            .invitation_service()
            .lookup_invitation(rbac::LookupInvitationRequest {
                token: token.to_string(),
            })
            .await;
        match answer {
            Ok(answer) => answer.into_inner().preview.ok_or_else(not_valid),
            Err(status) if status.code() == tonic::Code::NotFound => Err(not_valid()),
            Err(status) => Err(status.into()),
        }
    }
}

fn not_valid() -> Failure {
    Failure {
        message: "This invitation link is not valid: it was already used, revoked or has \
                  expired. Ask the person who invited you to send a new one."
            .into(),
        ..Failure::default()
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn page(console: Shared, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let path = format!(
        "{PATH}?{}",
        serde_urlencoded::to_string([("token", q.token.as_str())]).unwrap_or_default()
    );
    let preview = console.preview(&q.token).await;
    match console.signed_in(&headers, &path).await {
        Ok(signed) => {
            let view = match console.view(signed).await {
                Ok(view) => view,
                Err(answer) => return answer,
            };
            let body = signed_in_body(&view.signed.state, &q.token, &preview, None);
            let mut response = console.render(&view, TITLE, Ok(body));
            *response.status_mut() = status_of(&preview);
            private(response)
        }
        Err(_) => {
            let state = console.any_session(&headers);
            let body = signed_out_body(&state, &q.token, &path, &preview, None);
            private(console.pre_session(&headers, &state, status_of(&preview), TITLE, body))
        }
    }
}

const TITLE: &str = "Accept invitation";

fn status_of<T>(preview: &Result<T, Failure>) -> StatusCode {
    match preview {
        Ok(_) => StatusCode::OK,
        Err(failure) if failure.request_id.is_some() => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// A page whose address holds the token: kept out of caches.
fn private(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

fn what_it_gives(preview: &rbac::InvitationPreview) -> Markup {
    let organization = match preview.organization_display_name.as_str() {
        "" => preview.organization.as_str(),
        name => name,
    };
    let inviter = match preview.inviter_display_name.as_str() {
        "" => "Someone",
        name => name,
    };
    html! {
        div.card {
            p { (inviter) " invited " strong { (preview.email) } " to join " strong { (organization) } "." }
            @if preview.external {
                p { "You would join as an external user of its projects." }
            } @else if !preview.roles.is_empty() {
                p { "Roles: "
                    @for (i, role) in preview.roles.iter().enumerate() {
                        @if i > 0 { ", " }
                        strong { (role.rsplit('/').next().unwrap_or(role)) }
                    }
                }
            }
            @if !preview.projects.is_empty() {
                p { "Projects: " (preview.projects.len()) }
            }
        }
    }
}

fn signed_in_body(
    state: &State,
    token: &str,
    preview: &Result<rbac::InvitationPreview, Failure>,
    error: Option<&Failure>,
) -> Markup {
    html! {
        (failure(error))
        @match preview {
            Err(refused) => { (failure(Some(refused))) p { a href="/console/" { "Go to the overview" } } }
            Ok(preview) => {
                (what_it_gives(preview))
                form.card method="post" action=(PATH) {
                    (csrf(&state.csrf))
                    input type="hidden" name="token" value=(token);
                    button type="submit" { "Accept invitation" }
                }
                p { "Not for you? " a href="/console/" { "Go to the overview" } " and ignore it." }
            }
        }
    }
}

fn signed_out_body(
    state: &State,
    token: &str,
    back: &str,
    preview: &Result<rbac::InvitationPreview, Failure>,
    error: Option<&Failure>,
) -> Markup {
    let sign_in = format!(
        "/console/sign-in?{}",
        serde_urlencoded::to_string([("next", back)]).unwrap_or_default()
    );
    html! {
        (failure(error))
        @match preview {
            Err(refused) => { (failure(Some(refused))) p { a href="/console/sign-in" { "Sign in" } } }
            Ok(preview) => {
                (what_it_gives(preview))
                p { "Have an account? " a href=(sign_in) { "Sign in to accept" } "." }
                h2 { "New here? Create an account" }
                form.card method="post" action="/console/invitations/accept/sign-up" {
                    (csrf(&state.csrf))
                    input type="hidden" name="token" value=(token);
                    div.field { label for="display_name" { "Your name" } input #display_name name="display_name" autocomplete="name" required; }
                    div.field { label for="email" { "Email" } input #email type="email" name="email" value=(preview.email) autocomplete="username" required; }
                    div.field { label for="password" { "Password" } input #password type="password" name="password" autocomplete="new-password" required; }
                    button type="submit" { "Create account and accept" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    token: String,
}

async fn accept(console: Shared, posted: Posted<AcceptForm>) -> Response {
    let Posted { mut signed, form } = posted;
    let answer = console
        .invitation_service()
        .accept_invitation(signed.request(rbac::AcceptInvitationRequest {
            token: form.token.clone(),
        }))
        .await;
    let membership = match answer {
        Ok(answer) => answer.into_inner().membership,
        Err(status) => return refused(&console, signed, &form.token, status).await,
    };
    // An external user joins projects, not the organization: nothing to
    // switch into.
    let Some(organization) = membership.and_then(|m| {
        m.name
            .split_once("/memberships/")
            .map(|(organization, _)| organization.to_string())
    }) else {
        return console.done(&signed, "/console/");
    };
    let switched = console
        .identity()
        .switch_organization(signed.request(identity::SwitchOrganizationRequest { organization }))
        .await;
    match switched.map(|s| s.into_inner().tokens) {
        Ok(Some(tokens)) => {
            signed.state.tokens = Some(tokens_of(tokens));
            signed.renewed = true;
            console.done(&signed, "/console/")
        }
        Err(status) if super::account::mfa_required(&status) => {
            console.done(&signed, super::account::ENROL)
        }
        // Joined, but still acting elsewhere: the switcher lists it now.
        _ => console.done(&signed, "/console/"),
    }
}

async fn refused(
    console: &Console,
    signed: Signed,
    token: &str,
    status: tonic::Status,
) -> Response {
    let failure = match status.code() {
        tonic::Code::NotFound => not_valid(),
        _ => Failure::from(status),
    };
    if failure.signed_out {
        return Redirect::to("/console/sign-in").into_response();
    }
    let code = failure.status();
    let preview = console.preview(token).await;
    let view = match console.view(signed).await {
        Ok(view) => view,
        Err(answer) => return answer,
    };
    let body = signed_in_body(&view.signed.state, token, &preview, Some(&failure));
    let mut response = console.render(&view, TITLE, Ok(body));
    *response.status_mut() = code;
    private(response)
}

#[derive(Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    display_name: String,
    email: String,
    password: String,
}

/// A new user: identity's `SignUp` with the token creates the account (its
/// address proved by the invitation) and accepts, in one call.
async fn sign_up(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: SignUpForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let Some(mut state) = console.pre_post(&headers, &input.csrf) else {
        return forbidden();
    };
    let answer = console
        .identity()
        .sign_up(identity::SignUpRequest {
            email: input.email.clone(),
            password: input.password.clone(),
            display_name: input.display_name.clone(),
            invitation_token: input.token.clone(),
            ..Default::default()
        })
        .await;
    match answer.map(|a| a.into_inner()) {
        Ok(signed_up) => match signed_up.tokens.filter(|t| !t.access_token.is_empty()) {
            Some(tokens) => {
                let (tokens, enrol) = console.settle(tokens).await;
                state.tokens = Some(tokens_of(tokens));
                let next = super::auth::landing(enrol, "/console/");
                console.with_cookie(&headers, &state, Redirect::to(&next).into_response())
            }
            None => {
                let body = html! { p { "Your account is created. " a href="/console/sign-in" { "Sign in" } "." } };
                console.pre_session(&headers, &state, StatusCode::OK, TITLE, body)
            }
        },
        Err(status) => {
            let mut failure = Failure::from(status);
            if failure
                .fields
                .iter()
                .any(|(field, _)| field == "invitation_token")
            {
                failure = not_valid();
            }
            let code = failure.status();
            let back = format!(
                "{PATH}?{}",
                serde_urlencoded::to_string([("token", input.token.as_str())]).unwrap_or_default()
            );
            let preview = console.preview(&input.token).await;
            let body = signed_out_body(&state, &input.token, &back, &preview, Some(&failure));
            private(console.pre_session(&headers, &state, code, TITLE, body))
        }
    }
}
