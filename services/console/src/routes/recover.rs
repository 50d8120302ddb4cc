//! A forgotten password: ask for a reset link by email, then set a new
//! password with the mailed token. Both pages come before sign-in.
//!
//! The mail links to `{identity.mailer.link_base_url}/reset-password?token=…`;
//! with `link_base_url` set to the console's URL (`…/console`) that is the
//! page below. `/console/reset` serves the same, for links typed by hand.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Query;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_proto::tenantry::identity::v1 as identity;

use super::{Console, Shared, forbidden, form};
use crate::calls::Failure;
use crate::pages::{csrf, failure};
use crate::session::State;

pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/console/forgot-password", get(forgot_page).post(forgot))
        .route("/console/reset-password", get(reset_page).post(reset))
        .route("/console/reset", get(reset_page).post(reset))
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    csrf: String,
    email: String,
}

async fn forgot_page(console: Shared, headers: HeaderMap) -> Response {
    let state = console.any_session(&headers);
    let body = forgot_form(&state, "", None);
    console.pre_session(
        &headers,
        &state,
        StatusCode::OK,
        "Reset your password",
        body,
    )
}

fn forgot_form(state: &State, email: &str, error: Option<&Failure>) -> Markup {
    html! {
        (failure(error))
        form.card method="post" action="/console/forgot-password" {
            (csrf(&state.csrf))
            p { "Enter the email address of your account; we will mail you a link to set a new password." }
            div.field { label for="email" { "Email" } input #email type="email" name="email" value=(email) autocomplete="username" required; }
            button type="submit" { "Send reset link" }
        }
        p { a href="/console/sign-in" { "Back to sign in" } }
    }
}

/// Identity answers the same whether or not the account exists, and so
/// does this page: only a malformed address is refused.
async fn forgot(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: ForgotForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let Some(state) = console.pre_post(&headers, &input.csrf) else {
        return forbidden();
    };
    let answer = console
        .identity()
        .request_password_reset(identity::RequestPasswordResetRequest {
            email: input.email.clone(),
        })
        .await;
    match answer {
        Ok(_) => {
            let body = html! {
                div.card role="status" {
                    p { "If an account exists for " strong { (input.email) } ", we sent it a link to set a new password." }
                    p { "The link works once and expires soon. Open it from your mail, then sign in with the new password." }
                }
                p { a href="/console/sign-in" { "Back to sign in" } }
            };
            console.pre_session(&headers, &state, StatusCode::OK, "Check your mail", body)
        }
        Err(status) => {
            let failure = Failure::from(status);
            let status = failure.status();
            let body = forgot_form(&state, &input.email, Some(&failure));
            console.pre_session(&headers, &state, status, "Reset your password", body)
        }
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The mailed link's page: the token rides on in the form's body.
async fn reset_page(console: Shared, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let state = console.any_session(&headers);
    let body = reset_form(&state, &q.token, None);
    console.pre_session(&headers, &state, StatusCode::OK, "Set a new password", body)
}

fn reset_form(state: &State, token: &str, error: Option<&Failure>) -> Markup {
    html! {
        (failure(error))
        @if token.is_empty() {
            p { "This page needs the link from the reset mail. "
                a href="/console/forgot-password" { "Ask for a new link" } "." }
        } @else {
            form.card method="post" action="/console/reset-password" {
                (csrf(&state.csrf))
                input type="hidden" name="token" value=(token);
                div.field {
                    label for="new_password" { "New password" }
                    input #new_password type="password" name="new_password" autocomplete="new-password" required;
                }
                button type="submit" { "Set new password" }
            }
            p { "Link expired or used? " a href="/console/forgot-password" { "Ask for a new one" } "." }
        }
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    new_password: String,
}

async fn reset(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: ResetForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let Some(state) = console.pre_post(&headers, &input.csrf) else {
        return forbidden();
    };
    let answer = console
        .identity()
        .reset_password(identity::ResetPasswordRequest {
            token: input.token.clone(),
            new_password: input.new_password,
        })
        .await;
    match answer {
        Ok(_) => {
            let body = html! {
                div.card role="status" {
                    p { "Your password is changed, and every session of your account has ended." }
                    p { a href="/console/sign-in" { "Sign in" } " with the new password." }
                }
            };
            console.pre_session(&headers, &state, StatusCode::OK, "Password changed", body)
        }
        Err(status) => {
            let failure = refused_reset(status);
            let code = failure.status();
            let body = reset_form(&state, &input.token, Some(&failure));
            console.pre_session(&headers, &state, code, "Set a new password", body)
        }
    }
}

/// A refused reset in words: a bad token says what to do about it.
fn refused_reset(status: tonic::Status) -> Failure {
    let mut failure = Failure::from(status);
    if failure.fields.iter().any(|(field, _)| field == "token") {
        failure.message = "This reset link is not valid: it was already used, has expired, or was \
                           copied incompletely. Ask for a new link."
            .into();
        failure.fields.retain(|(field, _)| field != "token");
    }
    failure
}
