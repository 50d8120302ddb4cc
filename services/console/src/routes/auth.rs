//! Signing in (password, then a second factor when asked), signing up,
//! verifying an address, signing out, switching organization.

use axum::body::Bytes;
use axum::extract::Query;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{HeaderMap, StatusCode};
use maud::html;
use serde::Deserialize;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;

use super::{Console, Posted, Shared, Signed, forbidden, form, tokens_of};
use crate::calls::{Failure, as_user};
use crate::pages::{self, csrf, failure};
use crate::session::{State, safe_next, same_origin};

pub fn routes() -> axum::Router<std::sync::Arc<Console>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-in/mfa", get(mfa_page).post(mfa))
        .route("/console/sign-up", get(sign_up_page).post(sign_up))
        .route("/console/verify", get(verify))
        // Where identity's mail links when `[identity.mailer] link_base_url`
        // is the console's URL (`…/console`).
        .route("/console/verify-email", get(verify))
        .route("/console/sign-out", post(sign_out))
        .route("/console/sign-out-everywhere", post(sign_out_everywhere))
        .route("/console/switch", post(switch))
}

#[derive(Deserialize, Default)]
pub struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn sign_in_page(console: Shared, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let state = console.any_session(&headers);
    let body = sign_in_form(&state, &safe_next(q.next.as_deref()), "", None);
    console.pre_session(&headers, &state, StatusCode::OK, "Sign in", body)
}

fn sign_in_form(state: &State, next: &str, email: &str, error: Option<&Failure>) -> maud::Markup {
    html! {
        (failure(error))
        form.card method="post" action="/console/sign-in" {
            (csrf(&state.csrf))
            input type="hidden" name="next" value=(next);
            div.field { label for="email" { "Email" } input #email type="email" name="email" value=(email) autocomplete="username" required; }
            div.field { label for="password" { "Password" } input #password type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
        p { a href="/console/forgot-password" { "Forgot your password?" } }
        p { "No account yet? " a href="/console/sign-up" { "Sign up" } "." }
    }
}

pub async fn sign_in(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: SignInForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let Some(mut state) = console.pre_post(&headers, &input.csrf) else {
        return forbidden();
    };
    let next = safe_next(input.next.as_deref());
    let answer = console
        .identity()
        .login(identity::LoginRequest {
            email: input.email.clone(),
            password: input.password,
            organization: String::new(),
        })
        .await;
    match answer.map(|a| a.into_inner().result) {
        Ok(Some(identity::login_response::Result::Tokens(tokens))) => {
            let (tokens, enrol) = console.settle(tokens).await;
            let next = landing(enrol, &next);
            state.tokens = Some(tokens_of(tokens));
            state.mfa_token = None;
            console.with_cookie(&headers, &state, Redirect::to(&next).into_response())
        }
        Ok(Some(identity::login_response::Result::MfaChallenge(challenge))) => {
            state.mfa_token = Some(challenge.mfa_token);
            let query = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
            console.with_cookie(
                &headers,
                &state,
                Redirect::to(&format!("/console/sign-in/mfa?{query}")).into_response(),
            )
        }
        Ok(None) => unreachable_answer(&console, &headers, &state),
        Err(status) => {
            let body = sign_in_form(
                &state,
                &next,
                &input.email,
                Some(&Failure::of_credentials(status)),
            );
            console.pre_session(&headers, &state, StatusCode::UNAUTHORIZED, "Sign in", body)
        }
    }
}

fn unreachable_answer(console: &Console, headers: &HeaderMap, state: &State) -> Response {
    let failure = Failure {
        message: "Identity answered nothing; try again.".into(),
        ..Failure::default()
    };
    console.pre_session(
        headers,
        state,
        StatusCode::BAD_GATEWAY,
        "Sign in",
        failure_page(&failure),
    )
}

pub(super) fn failure_page(error: &Failure) -> maud::Markup {
    html! { (failure(Some(error))) p { a href="/console/sign-in" { "Back to sign in" } } }
}

#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    csrf: String,
    code: String,
    next: Option<String>,
}

pub async fn mfa_page(console: Shared, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let state = console.any_session(&headers);
    let body = mfa_form(&state, &safe_next(q.next.as_deref()), None);
    console.pre_session(&headers, &state, StatusCode::OK, "Second factor", body)
}

fn mfa_form(state: &State, next: &str, error: Option<&Failure>) -> maud::Markup {
    html! {
        (failure(error))
        form.card method="post" action="/console/sign-in/mfa" {
            (csrf(&state.csrf))
            input type="hidden" name="next" value=(next);
            div.field {
                label for="code" { "Code from your authenticator app, or a recovery code" }
                input #code name="code" autocomplete="one-time-code" required;
            }
            button type="submit" { "Continue" }
        }
    }
}

pub async fn mfa(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: MfaForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let Some(mut state) = console.pre_post(&headers, &input.csrf) else {
        return forbidden();
    };
    let next = safe_next(input.next.as_deref());
    let Some(mfa_token) = state.mfa_token.clone() else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let code = input.code.trim().to_string();
    let factor = match code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        true => identity::complete_mfa_login_request::Factor::TotpCode(code),
        false => identity::complete_mfa_login_request::Factor::RecoveryCode(code),
    };
    let answer = console
        .identity()
        .complete_mfa_login(identity::CompleteMfaLoginRequest {
            mfa_token,
            factor: Some(factor),
        })
        .await;
    match answer.map(|a| a.into_inner().tokens) {
        Ok(Some(tokens)) => {
            let (tokens, enrol) = console.settle(tokens).await;
            let next = landing(enrol, &next);
            state.tokens = Some(tokens_of(tokens));
            state.mfa_token = None;
            console.with_cookie(&headers, &state, Redirect::to(&next).into_response())
        }
        Ok(None) => unreachable_answer(&console, &headers, &state),
        Err(status) => {
            let body = mfa_form(&state, &next, Some(&Failure::of_credentials(status)));
            console.pre_session(
                &headers,
                &state,
                StatusCode::UNAUTHORIZED,
                "Second factor",
                body,
            )
        }
    }
}

#[derive(Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    csrf: String,
    display_name: String,
    email: String,
    password: String,
    #[serde(default)]
    organization: String,
}

pub async fn sign_up_page(console: Shared, headers: HeaderMap) -> Response {
    let state = console.any_session(&headers);
    let body = sign_up_form(&state, None, None);
    console.pre_session(&headers, &state, StatusCode::OK, "Sign up", body)
}

fn sign_up_form(
    state: &State,
    input: Option<&SignUpForm>,
    error: Option<&Failure>,
) -> maud::Markup {
    let value = |pick: fn(&SignUpForm) -> &str| input.map(pick).unwrap_or_default().to_string();
    html! {
        (failure(error))
        form.card method="post" action="/console/sign-up" {
            (csrf(&state.csrf))
            div.field { label for="display_name" { "Your name" } input #display_name name="display_name" value=(value(|f| &f.display_name)) autocomplete="name" required; }
            div.field { label for="email" { "Email" } input #email type="email" name="email" value=(value(|f| &f.email)) autocomplete="username" required; }
            div.field { label for="password" { "Password" } input #password type="password" name="password" autocomplete="new-password" required; }
            div.field { label for="organization" { "Organization name (optional)" } input #organization name="organization" value=(value(|f| &f.organization)); }
            button type="submit" { "Create account" }
        }
        p { "Have an account? " a href="/console/sign-in" { "Sign in" } "." }
    }
}

pub async fn sign_up(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
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
            organization_display_name: input.organization.clone(),
            ..Default::default()
        })
        .await;
    match answer.map(|a| a.into_inner()) {
        Ok(signed_up) => match signed_up.tokens.filter(|t| !t.access_token.is_empty()) {
            Some(tokens) if !signed_up.verification_required => {
                state.tokens = Some(tokens_of(tokens));
                console.with_cookie(&headers, &state, Redirect::to("/console/").into_response())
            }
            _ => {
                let body = html! {
                    div.card {
                        p { "Check your mail: we sent a link to " strong { (input.email) } "." }
                        p { "Open it to confirm your address, then " a href="/console/sign-in" { "sign in" } "." }
                    }
                };
                console.pre_session(&headers, &state, StatusCode::OK, "Check your mail", body)
            }
        },
        Err(status) => {
            let body = sign_up_form(&state, Some(&input), Some(&status.into()));
            console.pre_session(&headers, &state, StatusCode::BAD_REQUEST, "Sign up", body)
        }
    }
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    #[serde(default)]
    token: String,
}

/// The link of the verification mail, when it points at the console.
pub async fn verify(console: Shared, headers: HeaderMap, Query(q): Query<VerifyQuery>) -> Response {
    let mut state = console.any_session(&headers);
    let answer = console
        .identity()
        .verify_email(identity::VerifyEmailRequest { token: q.token })
        .await;
    match answer.map(|a| a.into_inner().tokens) {
        Ok(Some(tokens)) if !tokens.access_token.is_empty() => {
            let (tokens, enrol) = console.settle(tokens).await;
            let next = landing(enrol, "/console/");
            state.tokens = Some(tokens_of(tokens));
            console.with_cookie(&headers, &state, Redirect::to(&next).into_response())
        }
        Ok(_) => {
            let body = html! { p { "Your address is confirmed. " a href="/console/sign-in" { "Sign in" } "." } };
            console.pre_session(&headers, &state, StatusCode::OK, "Address confirmed", body)
        }
        Err(status) => {
            let body = failure_page(&status.into());
            console.pre_session(
                &headers,
                &state,
                StatusCode::BAD_REQUEST,
                "Confirm your address",
                body,
            )
        }
    }
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub struct Nothing {}

pub async fn sign_out(console: Shared, posted: Posted<Nothing>) -> Response {
    end_session(&console, posted.signed, false).await
}

pub async fn sign_out_everywhere(console: Shared, posted: Posted<Nothing>) -> Response {
    end_session(&console, posted.signed, true).await
}

async fn end_session(console: &Console, signed: Signed, everywhere: bool) -> Response {
    let tokens = signed.tokens();
    let ended = match everywhere {
        true => console
            .identity()
            .logout_everywhere(as_user(
                identity::LogoutEverywhereRequest {
                    keep_current_session: false,
                },
                &tokens.access,
            ))
            .await
            .map(drop),
        false => console
            .identity()
            .logout(as_user(
                identity::LogoutRequest {
                    refresh_token: tokens.refresh.clone(),
                },
                &tokens.access,
            ))
            .await
            .map(drop),
    };
    if let Err(status) = ended {
        let failure: Failure = status.into();
        if !failure.signed_out {
            return console.failed(&signed, "Sign out", failure);
        }
    }
    // A new session: the old CSRF secret goes with the old tokens.
    console.with_cookie(
        &signed.headers,
        &State::fresh(),
        Redirect::to("/console/sign-in").into_response(),
    )
}

#[derive(Deserialize)]
pub struct SwitchForm {
    organization: String,
}

pub async fn switch(console: Shared, posted: Posted<SwitchForm>) -> Response {
    let Posted { mut signed, form } = posted;
    let answer = console
        .identity()
        .switch_organization(signed.request(identity::SwitchOrganizationRequest {
            organization: form.organization,
        }))
        .await;
    match answer.map(|a| a.into_inner().tokens) {
        Ok(Some(tokens)) => {
            signed.state.tokens = Some(tokens_of(tokens));
            console.with_cookie(
                &signed.headers,
                &signed.state,
                Redirect::to("/console/").into_response(),
            )
        }
        Ok(None) => console.failed(
            &signed,
            "Switch organization",
            Failure {
                message: "Identity issued no tokens.".into(),
                ..Failure::default()
            },
        ),
        Err(status) if super::account::mfa_required(&status) => {
            console.done(&signed, super::account::ENROL)
        }
        Err(status) => console.failed(&signed, "Switch organization", status.into()),
    }
}

/// Where a sign-in lands: `next`, unless the organization requires a second
/// factor the user has not set up.
pub(super) fn landing(enrol: bool, next: &str) -> String {
    match enrol {
        true => super::account::ENROL.to_string(),
        false => next.to_string(),
    }
}

impl Console {
    /// Tokens that act in an organization: a sign-in names none, so the
    /// console switches into the first organization the user belongs to
    /// (the switcher changes it). A user of no organization keeps the
    /// tokens as they are, and the pages say so. True besides when the
    /// organization requires a second factor the user has not set up: the
    /// tokens then act in none (or may only enrol one), and the user is
    /// sent to enrol.
    pub(super) async fn settle(
        &self,
        tokens: identity::AuthTokens,
    ) -> (identity::AuthTokens, bool) {
        if tokens.mfa_enrollment_required {
            return (tokens, true);
        }
        if !tokens.organization.is_empty() {
            return (tokens, false);
        }
        let mine = self
            .org_service()
            .list_my_organizations(as_user(
                organization::ListMyOrganizationsRequest {
                    page_size: 1,
                    ..Default::default()
                },
                &tokens.access_token,
            ))
            .await;
        let first = mine
            .ok()
            .and_then(|m| m.into_inner().organizations.into_iter().next())
            .and_then(|m| m.organization);
        let Some(first) = first else {
            return (tokens, false);
        };
        let switched = self
            .identity()
            .switch_organization(as_user(
                identity::SwitchOrganizationRequest {
                    organization: first.name,
                },
                &tokens.access_token,
            ))
            .await;
        match switched.map(|s| s.into_inner().tokens) {
            Ok(Some(switched)) => (switched, false),
            Err(status) => (tokens, super::account::mfa_required(&status)),
            Ok(None) => (tokens, false),
        }
    }

    /// The session of a POST before sign-in: it must carry the cookie's
    /// CSRF secret and come from this host.
    pub(super) fn pre_post(&self, headers: &HeaderMap, csrf: &str) -> Option<State> {
        let state = self.sessions.read(headers)?;
        (same_origin(headers) && state.csrf_matches(csrf)).then_some(state)
    }

    /// A page before sign-in, with the session's cookie (its CSRF secret
    /// is what the page's form carries).
    pub(super) fn pre_session(
        &self,
        headers: &HeaderMap,
        state: &State,
        status: StatusCode,
        title: &str,
        body: maud::Markup,
    ) -> Response {
        let response = (status, Html(pages::page(title, None, body).into_string())).into_response();
        self.with_cookie(headers, state, response)
    }
}
