//! The signed-in user's own account: profile, password, two-factor
//! authentication (in `totp`), and sessions.
//!
//! A session whose organization requires two-factor authentication the
//! user has not set up may only enrol (identity's `mfa_enrollment_required`
//! tokens); every page sends it here, where only that section shows.

mod totp;

use std::sync::Arc;

use axum::extract::Query;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_proto::tenantry::identity::v1 as identity;

use super::{Console, NameForm, PAGE_SIZE, Posted, Shared, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, next_page};
use crate::session::Tokens;

pub use totp::mfa_required;

/// Where a user who must set up two-factor authentication is sent.
pub const ENROL: &str = "/console/account?mfa=required#two-factor";

const PATH: &str = "/console/account";
const TITLE: &str = "Account";

pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(PATH, get(account))
        .route("/console/account/profile", post(profile))
        .route("/console/account/password", post(password))
        .route("/console/account/sessions/revoke", post(revoke))
        .merge(totp::routes())
}

/// Whether the session's tokens may only enrol a second factor. The console
/// reads its own token's claims only to pick the page; the services decide.
pub fn enrolment_only(tokens: &Tokens) -> bool {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        mfa_pending: bool,
    }
    tokens
        .access
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Claims>(&json).ok())
        .is_some_and(|claims| claims.mfa_pending)
}

/// `?done=`: what the last form changed, said once at the top.
#[derive(Deserialize, Default)]
struct AccountQuery {
    #[serde(default)]
    done: String,
    #[serde(default)]
    page_token: String,
    /// `required`: the user was sent here because an organization requires
    /// a second factor (identity refused the organization for that).
    #[serde(default)]
    mfa: String,
}

/// Which of the page's forms a failure belongs next to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Profile,
    Password,
    TwoFactor,
    Sessions,
}

type Refusal<'a> = Option<(Part, &'a Failure)>;

fn failure_of(error: Refusal, part: Part) -> Markup {
    failure(error.filter(|(p, _)| *p == part).map(|(_, f)| f))
}

async fn account(console: Shared, view: View, Query(q): Query<AccountQuery>) -> Response {
    let body = account_body(&console, &view, &q, None).await;
    console.render(&view, TITLE, body)
}

async fn account_body(
    console: &Console,
    view: &View,
    q: &AccountQuery,
    error: Refusal<'_>,
) -> Result<Markup, Failure> {
    let me = console
        .identity()
        .me(view.request(identity::MeRequest {}))
        .await?
        .into_inner();
    let user = me.user.clone().unwrap_or_default();
    let requiring: Vec<&str> = me
        .memberships
        .iter()
        .filter(|m| m.require_mfa && !user.mfa_enabled)
        .map(|m| match m.organization_display_name.as_str() {
            "" => m.organization_slug.as_str(),
            name => name,
        })
        .collect();
    let only_enrol = enrolment_only(view.signed.tokens());
    let required =
        !user.mfa_enabled && (only_enrol || q.mfa == "required" || !requiring.is_empty());
    Ok(html! {
        @if required {
            div.notice role="alert" {
                p { "Your organization requires two-factor authentication"
                    @if !requiring.is_empty() { " (" (requiring.join(", ")) ")" }
                    ". Set it up below to keep working there." }
            }
        }
        (done(&q.done))
        @if !only_enrol {
            (profile_section(view, &user, error))
            (password_section(view, error))
        }
        (totp::section(view, &user, error))
        @if only_enrol {
            p { "The rest of your account opens once two-factor authentication is on." }
        } @else {
            (sessions_section(console, view, &q.page_token, error).await?)
        }
    })
}

/// What the last form changed, in words.
fn done(what: &str) -> Markup {
    let said = match what {
        "name" => "Your name is saved.",
        "password" => "Your password is changed; your other sessions have ended.",
        "revoked" => "The session has ended.",
        "disabled" => "Two-factor authentication is off.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (said) } }
}

fn profile_section(view: &View, user: &identity::User, error: Refusal) -> Markup {
    html! {
        h2 { "Profile" }
        (failure_of(error, Part::Profile))
        form.card method="post" action="/console/account/profile" {
            (csrf(view.csrf()))
            p { "Email: " strong { (user.email) } }
            div.field {
                label for="display_name" { "Display name" }
                input #display_name name="display_name" value=(user.display_name) autocomplete="name" required;
            }
            button type="submit" { "Save name" }
        }
    }
}

fn password_section(view: &View, error: Refusal) -> Markup {
    html! {
        h2 { "Password" }
        (failure_of(error, Part::Password))
        form.card method="post" action="/console/account/password" {
            (csrf(view.csrf()))
            div.field {
                label for="current_password" { "Current password" }
                input #current_password type="password" name="current_password" autocomplete="current-password" required;
            }
            div.field {
                label for="new_password" { "New password" }
                input #new_password type="password" name="new_password" autocomplete="new-password" required;
            }
            p.small { "Changing it ends your other sessions." }
            button type="submit" { "Change password" }
        }
    }
}

async fn sessions_section(
    console: &Console,
    view: &View,
    page_token: &str,
    error: Refusal<'_>,
) -> Result<Markup, Failure> {
    let listed = console
        .identity()
        .list_sessions(view.request(identity::ListSessionsRequest {
            parent: "users/me".into(),
            page_size: PAGE_SIZE,
            page_token: page_token.to_string(),
        }))
        .await?
        .into_inner();
    Ok(html! {
        h2 { "Sessions" }
        (failure_of(error, Part::Sessions))
        @if listed.sessions.is_empty() {
            p.empty { "No other sessions." }
        } @else {
            table {
                thead { tr { th { "Device" } th { "Address" } th { "Signed in" } th { "Last seen" } th { span.small { "Actions" } } } }
                tbody {
                    @for session in &listed.sessions {
                        tr {
                            td { (device(session)) @if session.mfa_authenticated { " " span.small { "(two-factor)" } } }
                            td { (session.client_address) }
                            td { (when(session.create_time.as_ref())) }
                            td { (when(session.last_seen_time.as_ref())) }
                            td {
                                @if session.current {
                                    span.small { "This session" }
                                } @else {
                                    form method="post" action="/console/account/sessions/revoke" {
                                        (csrf(view.csrf()))
                                        input type="hidden" name="name" value=(session.name);
                                        button.secondary type="submit" aria-label={ "Revoke the session of " (device(session)) " signed in " (when(session.create_time.as_ref())) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (next_page(PATH, &listed.next_page_token))
        form method="post" action="/console/sign-out-everywhere" {
            (csrf(view.csrf()))
            button.secondary type="submit" { "Sign out everywhere" }
        }
    })
}

fn device(session: &identity::Session) -> &str {
    match session.device.as_str() {
        "" => "Unknown device",
        device => device,
    }
}

/// A timestamp as people read it.
fn when(time: Option<&prost_types::Timestamp>) -> String {
    time.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct ProfileForm {
    display_name: String,
}

async fn profile(console: Shared, posted: Posted<ProfileForm>) -> Response {
    let Posted { signed, form } = posted;
    let answer = console
        .identity()
        .update_user(signed.request(identity::UpdateUserRequest {
            user: Some(identity::User {
                name: "users/me".into(),
                display_name: form.display_name,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        }))
        .await;
    match answer {
        Ok(_) => console.done(&signed, "/console/account?done=name"),
        Err(status) => refused(&console, signed, Part::Profile, status).await,
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

async fn password(console: Shared, posted: Posted<PasswordForm>) -> Response {
    let Posted { signed, form } = posted;
    let answer = console
        .identity()
        .change_password(signed.request(identity::ChangePasswordRequest {
            current_password: form.current_password,
            new_password: form.new_password,
        }))
        .await;
    match answer {
        Ok(_) => console.done(&signed, "/console/account?done=password"),
        Err(status) => refused(&console, signed, Part::Password, wrong_password(status)).await,
    }
}

/// A wrong current password is UNAUTHENTICATED, which would otherwise
/// read as "your session has ended": it is a refusal of the form.
fn wrong_password(status: tonic::Status) -> tonic::Status {
    match reason(&status).as_deref() {
        Some("INVALID_CREDENTIALS") => tonic::Status::invalid_argument(
            "The current password is not right; nothing was changed.",
        ),
        _ => status,
    }
}

/// The stable reason of a refusal (its `ErrorInfo`), when it has one.
pub fn reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status.get_details_error_info().map(|info| info.reason)
}

async fn revoke(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let answer = console
        .identity()
        .revoke_session(signed.request(identity::RevokeSessionRequest { name: form.name }))
        .await;
    match answer {
        Ok(_) => console.done(&signed, "/console/account?done=revoked"),
        Err(status) => refused(&console, signed, Part::Sessions, status).await,
    }
}

/// Re-renders the account page after a refused form of `part`.
async fn refused(
    console: &Console,
    signed: super::Signed,
    part: Part,
    status: tonic::Status,
) -> Response {
    console
        .refused(signed, TITLE, status.into(), async |view, failure| {
            account_body(
                console,
                view,
                &AccountQuery::default(),
                Some((part, failure)),
            )
            .await
        })
        .await
}
