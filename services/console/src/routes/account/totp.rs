//! Two-factor authentication with an authenticator app (TOTP): set it up
//! (the secret as a QR code and as text, confirmed with a first code, then
//! the recovery codes shown once), new recovery codes, turning it off.
//!
//! The secret and the recovery codes are shown in the answer to the POST
//! that produced them, never stored by the console nor put in a URL.

use std::sync::Arc;

use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use tenantry_proto::tenantry::identity::v1 as identity;

use super::{Part, Refusal, failure_of, reason, refused, wrong_password};
use crate::calls::Failure;
use crate::pages::{csrf, failure};
use crate::routes::auth::Nothing;
use crate::routes::{Console, Posted, Shared, Signed, View, tokens_of};

pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::post;
    axum::Router::new()
        .route("/console/account/totp", post(enrol))
        .route("/console/account/totp/confirm", post(confirm))
        .route("/console/account/totp/disable", post(disable))
        .route("/console/account/recovery-codes", post(regenerate))
}

/// Whether a refused switch (or call) says the organization requires a
/// second factor the session does not have.
pub fn mfa_required(status: &tonic::Status) -> bool {
    matches!(
        reason(status).as_deref(),
        Some("MFA_REQUIRED" | "MFA_ENROLLMENT_REQUIRED")
    )
}

const SETUP: &str = "Set up two-factor authentication";

pub fn section(view: &View, user: &identity::User, error: Refusal) -> Markup {
    html! {
        h2 #two-factor { "Two-factor authentication" }
        (failure_of(error, Part::TwoFactor))
        @if user.mfa_enabled {
            p { "On: signing in asks for a code from your authenticator app. "
                (user.recovery_codes_remaining) " recovery codes left." }
            form.card method="post" action="/console/account/recovery-codes" {
                (csrf(view.csrf()))
                div.field {
                    label for="codes_password" { "Current password" }
                    input #codes_password type="password" name="current_password" autocomplete="current-password" required;
                }
                button.secondary type="submit" { "Get new recovery codes" }
            }
            form.card method="post" action="/console/account/totp/disable" {
                (csrf(view.csrf()))
                div.field {
                    label for="disable_password" { "Current password" }
                    input #disable_password type="password" name="current_password" autocomplete="current-password" required;
                }
                button.secondary type="submit" { "Turn off two-factor authentication" }
            }
        } @else {
            p { "Off. With it on, signing in also asks for a code from an authenticator app on your phone." }
            form method="post" action="/console/account/totp" {
                (csrf(view.csrf()))
                button type="submit" { (SETUP) }
            }
        }
    }
}

async fn enrol(console: Shared, posted: Posted<Nothing>) -> Response {
    let signed = posted.signed;
    let answer = console
        .identity()
        .enroll_totp(signed.request(identity::EnrollTotpRequest {}))
        .await;
    match answer {
        Ok(enrolment) => {
            let enrolment = enrolment.into_inner();
            let secret = Secret {
                text: enrolment.secret,
                uri: enrolment.otpauth_uri,
            };
            show(&console, signed, SETUP, None, |view| {
                enrol_body(view, &secret, None)
            })
            .await
        }
        Err(status) => refused(&console, signed, Part::TwoFactor, status).await,
    }
}

/// The new secret, carried by the confirm form so that a mistyped code can
/// be tried again with the same QR code.
#[derive(Deserialize)]
pub struct Secret {
    #[serde(rename = "secret", default)]
    text: String,
    #[serde(default)]
    uri: String,
}

fn enrol_body(view: &View, secret: &Secret, error: Option<&Failure>) -> Markup {
    html! {
        ol {
            li { "Open your authenticator app and add an account by scanning this code:" }
        }
        div.card.qr { (qr(&secret.uri)) }
        p { "Or enter this key by hand: " code.key { (secret.text) } }
        details { summary { "Setup link (otpauth URI)" } p { code.key { (secret.uri) } } }
        (failure(error))
        form.card method="post" action="/console/account/totp/confirm" {
            (csrf(view.csrf()))
            input type="hidden" name="secret" value=(secret.text);
            input type="hidden" name="uri" value=(secret.uri);
            div.field {
                label for="totp_code" { "Code from your authenticator app" }
                input #totp_code name="code" inputmode="numeric" autocomplete="one-time-code" required;
            }
            button type="submit" { "Turn on two-factor authentication" }
        }
        p { a href="/console/account" { "Cancel" } }
    }
}

/// The otpauth URI as a QR code: inline SVG, drawn here (no script, no
/// image from elsewhere).
fn qr(uri: &str) -> Markup {
    use qrcodegen::{QrCode, QrCodeEcc};
    let Ok(code) = QrCode::encode_text(uri, QrCodeEcc::Medium) else {
        return html! { p { "The code could not be drawn; enter the key by hand." } };
    };
    let border = 4;
    let size = code.size() + border * 2;
    let mut path = String::new();
    for y in 0..code.size() {
        for x in 0..code.size() {
            if code.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (size) " " (size) } width="232" height="232"
            role="img" aria-label="QR code of the authenticator setup link" shape-rendering="crispEdges" {
            rect width="100%" height="100%" fill="#fff" {}
            path d=(PreEscaped(path)) fill="#000" {}
        }
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    code: String,
    #[serde(flatten)]
    secret: Secret,
}

async fn confirm(console: Shared, posted: Posted<ConfirmForm>) -> Response {
    let Posted { mut signed, form } = posted;
    let answer = console
        .identity()
        .confirm_totp(signed.request(identity::ConfirmTotpRequest {
            code: form.code.trim().to_string(),
        }))
        .await;
    match answer {
        Ok(confirmed) => {
            let confirmed = confirmed.into_inner();
            if let Some(tokens) = confirmed.tokens.filter(|t| !t.access_token.is_empty()) {
                let refresh = signed.tokens().refresh.clone();
                let mut tokens = tokens_of(console.settle(tokens).await.0);
                if tokens.refresh.is_empty() {
                    tokens.refresh = refresh;
                }
                signed.state.tokens = Some(tokens);
                signed.renewed = true;
            }
            let codes = confirmed.recovery_codes;
            show(&console, signed, "Save your recovery codes", None, |_| {
                codes_body(&codes)
            })
            .await
        }
        Err(status) => {
            let failure = Failure::from(status);
            if failure.signed_out {
                return refused_failure(&console, signed, failure).await;
            }
            let code = status_of(&failure);
            show(&console, signed, SETUP, Some(code), |view| {
                enrol_body(view, &form.secret, Some(&failure))
            })
            .await
        }
    }
}

fn codes_body(codes: &[String]) -> Markup {
    html! {
        div.card role="status" {
            p { "Two-factor authentication is on. Keep these recovery codes somewhere safe: each one signs you in once \
                 when you do not have your phone. They are shown only now." }
            ul.codes { @for code in codes { li { code { (code) } } } }
        }
        p { a href="/console/" { "Continue to the console" } " or " a href="/console/account" { "back to your account" } "." }
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
}

async fn disable(console: Shared, posted: Posted<PasswordForm>) -> Response {
    let Posted { signed, form } = posted;
    let answer = console
        .identity()
        .disable_totp(signed.request(identity::DisableTotpRequest {
            current_password: form.current_password,
        }))
        .await;
    match answer {
        Ok(_) => console.done(&signed, "/console/account?done=disabled"),
        Err(status) => refused(&console, signed, Part::TwoFactor, wrong_password(status)).await,
    }
}

async fn regenerate(console: Shared, posted: Posted<PasswordForm>) -> Response {
    let Posted { signed, form } = posted;
    let answer = console
        .identity()
        .regenerate_recovery_codes(signed.request(identity::RegenerateRecoveryCodesRequest {
            current_password: form.current_password,
        }))
        .await;
    match answer {
        Ok(answer) => {
            let codes = answer.into_inner().recovery_codes;
            show(&console, signed, "Save your recovery codes", None, |_| {
                codes_body(&codes)
            })
            .await
        }
        Err(status) => refused(&console, signed, Part::TwoFactor, wrong_password(status)).await,
    }
}

fn status_of(failure: &Failure) -> http::StatusCode {
    match failure.request_id {
        Some(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        None => http::StatusCode::BAD_REQUEST,
    }
}

/// A page answered straight to the POST (what it shows is shown once),
/// with the navigation bar and, when the tokens changed, the new cookie.
async fn show(
    console: &Console,
    signed: Signed,
    title: &str,
    status: Option<http::StatusCode>,
    body: impl FnOnce(&View) -> Markup,
) -> Response {
    let view = match console.view(signed).await {
        Ok(view) => view,
        Err(answer) => return answer,
    };
    let markup = body(&view);
    let mut response = console.render(&view, title, Ok(markup));
    if let Some(status) = status {
        *response.status_mut() = status;
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

async fn refused_failure(console: &Console, signed: Signed, failure: Failure) -> Response {
    console
        .refused(signed, SETUP, failure, async |_, _| Ok(html! {}))
        .await
}
