//! The console's routes and what every page shares: reading the session,
//! refreshing it, checking a POST, answering with the cookie.

// A refusal here is the answer itself (a redirect, a 403), returned once
// per request straight to the client: its size costs nothing.
#![allow(clippy::result_large_err)]

mod auth;
mod org;

use std::sync::Arc;

use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::Markup;
use tenantry_kit::peer::{Peer, PeerChannel};
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;

use crate::calls::{Failure, as_user};
use crate::pages::{self, Nav};
use crate::session::{Sessions, State, Tokens};
use crate::{Deps, Options};

/// The console's state, shared by every request.
pub struct Console {
    sessions: Sessions,
    identity: PeerChannel,
    organization: PeerChannel,
    rbac: PeerChannel,
    billing: PeerChannel,
}

type Shared = axum::extract::State<Arc<Console>>;

impl Console {
    pub fn new(options: &Options, deps: Deps) -> anyhow::Result<Console> {
        let secure = options
            .public_url
            .as_deref()
            .map(|url| url.starts_with("https://"));
        Ok(Console {
            sessions: Sessions::new(&deps.key, secure),
            identity: deps.peers.channel(Peer::Identity)?,
            organization: deps.peers.channel(Peer::Organization)?,
            rbac: deps.peers.channel(Peer::Rbac)?,
            billing: deps.peers.channel(Peer::Billing)?,
        })
    }

    fn identity(&self) -> identity::identity_service_client::IdentityServiceClient<PeerChannel> {
        identity::identity_service_client::IdentityServiceClient::new(self.identity.clone())
    }
}

pub fn router(console: Arc<Console>) -> axum::Router {
    axum::Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(org::overview))
        .route("/console/static/{file}", get(stylesheet))
        .route(
            "/console/sign-in",
            get(auth::sign_in_page).post(auth::sign_in),
        )
        .route("/console/sign-in/mfa", get(auth::mfa_page).post(auth::mfa))
        .route(
            "/console/sign-up",
            get(auth::sign_up_page).post(auth::sign_up),
        )
        .route("/console/verify", get(auth::verify))
        .route("/console/sign-out", post(auth::sign_out))
        .route(
            "/console/sign-out-everywhere",
            post(auth::sign_out_everywhere),
        )
        .route("/console/switch", post(auth::switch))
        .route(
            "/console/projects",
            get(org::projects).post(org::create_project),
        )
        .route("/console/projects/delete", post(org::delete_project))
        .route("/console/members", get(org::members))
        .route(
            "/console/invitations",
            get(org::invitations).post(org::create_invitation),
        )
        .route("/console/invitations/revoke", post(org::revoke_invitation))
        .with_state(console)
}

async fn stylesheet(uri: http::Uri) -> Response {
    if uri.path() != pages::style_path() {
        return not_found().await;
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        pages::STYLE,
    )
        .into_response()
}

pub async fn not_found() -> Response {
    let body = pages::page(
        "Not found",
        None,
        maud::html! {
            p { "There is no such page. " a href="/console/" { "Go to the overview." } }
        },
    );
    (StatusCode::NOT_FOUND, Html(body.into_string())).into_response()
}

/// A signed-in user's request: the session, and whether it was renewed
/// (so the answer carries the new cookie).
pub struct Signed {
    pub state: State,
    renewed: bool,
    headers: HeaderMap,
}

impl Signed {
    pub fn tokens(&self) -> &Tokens {
        self.state
            .tokens
            .as_ref()
            .expect("a signed-in session has tokens")
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        as_user(message, &self.tokens().access)
    }
}

impl Console {
    /// The session of a page that needs a signed-in user: refreshed when
    /// its access token has expired; otherwise a redirect to sign in and
    /// come back to `path`.
    async fn signed_in(&self, headers: &HeaderMap, path: &str) -> Result<Signed, Response> {
        let Some(mut state) = self.sessions.read(headers).filter(|s| s.tokens.is_some()) else {
            return Err(to_sign_in(path));
        };
        let tokens = state.tokens.as_ref().expect("filtered on tokens");
        let now = chrono::Utc::now().timestamp();
        if tokens.access_expires > now + 5 {
            return Ok(Signed {
                state,
                renewed: false,
                headers: headers.clone(),
            });
        }
        let refreshed = self
            .identity()
            .refresh(identity::RefreshRequest {
                refresh_token: tokens.refresh.clone(),
            })
            .await;
        match refreshed.ok().and_then(|r| r.into_inner().tokens) {
            Some(fresh) => {
                state.tokens = Some(tokens_of(fresh));
                Ok(Signed {
                    state,
                    renewed: true,
                    headers: headers.clone(),
                })
            }
            None => Err(to_sign_in(path)),
        }
    }

    /// The session of a POST: signed in, its CSRF token right, sent from a
    /// page of this host. Anything else: 403 and nothing done.
    async fn signed_post(
        &self,
        headers: &HeaderMap,
        csrf: &str,
        path: &str,
    ) -> Result<Signed, Response> {
        if !crate::session::same_origin(headers) {
            return Err(forbidden());
        }
        let signed = self.signed_in(headers, path).await?;
        if !signed.state.csrf_matches(csrf) {
            return Err(forbidden());
        }
        Ok(signed)
    }

    /// The session of any request (a fresh one when none opens), for the
    /// pages before sign-in.
    fn any_session(&self, headers: &HeaderMap) -> State {
        self.sessions.read(headers).unwrap_or_else(State::fresh)
    }

    /// `response` with the session's cookie when it changed.
    fn answer(&self, signed: &Signed, response: impl IntoResponse) -> Response {
        let response = response.into_response();
        match signed.renewed {
            true => self.with_cookie(&signed.headers, &signed.state, response),
            false => response,
        }
    }

    fn with_cookie(&self, headers: &HeaderMap, state: &State, mut response: Response) -> Response {
        if let Ok(value) = HeaderValue::from_str(&self.sessions.write(headers, state)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    /// The navigation bar of a signed-in page: the user from `Me`, the
    /// switcher from the organizations the user belongs to.
    async fn nav(&self, signed: &Signed) -> Result<Nav, Failure> {
        let me = self
            .identity()
            .me(signed.request(identity::MeRequest {}))
            .await?
            .into_inner();
        let mine = organization::organization_service_client::OrganizationServiceClient::new(
            self.organization.clone(),
        )
        .list_my_organizations(signed.request(organization::ListMyOrganizationsRequest {
            page_size: 100,
            ..Default::default()
        }))
        .await?
        .into_inner();
        Ok(Nav {
            email: me.user.map(|u| u.email).unwrap_or_default(),
            active: signed.tokens().organization.clone(),
            organizations: mine
                .organizations
                .into_iter()
                .filter_map(|mine| mine.organization)
                .map(|org| {
                    let display = match org.display_name.is_empty() {
                        true => org.slug,
                        false => org.display_name,
                    };
                    (org.name, display)
                })
                .collect(),
            csrf: signed.state.csrf.clone(),
        })
    }

    /// A signed-in page: the navigation bar and `body`, or where a failed
    /// call leads (sign-in when the session is gone).
    async fn render(
        &self,
        signed: &Signed,
        path: &str,
        title: &str,
        body: Result<Markup, Failure>,
    ) -> Response {
        let nav = match self.nav(signed).await {
            Ok(nav) => nav,
            Err(failure) => return self.failed(signed, path, title, failure),
        };
        let body = match body {
            Ok(body) => body,
            Err(failure) if failure.signed_out => return to_sign_in(path),
            Err(failure) => pages::failure(Some(&failure)),
        };
        self.answer(
            signed,
            Html(pages::page(title, Some(&nav), body).into_string()),
        )
    }

    fn failed(&self, signed: &Signed, path: &str, title: &str, failure: Failure) -> Response {
        if failure.signed_out {
            return to_sign_in(path);
        }
        let status = match failure.request_id {
            Some(_) => StatusCode::SERVICE_UNAVAILABLE,
            None => StatusCode::BAD_REQUEST,
        };
        let body = pages::page(title, None, pages::failure(Some(&failure)));
        self.answer(signed, (status, Html(body.into_string())))
    }
}

/// Tokens as the cookie keeps them.
fn tokens_of(tokens: identity::AuthTokens) -> Tokens {
    Tokens {
        access_expires: tokens.expire_time.map(|t| t.seconds).unwrap_or_default(),
        access: tokens.access_token,
        refresh: tokens.refresh_token,
        organization: tokens.organization,
    }
}

/// To the sign-in page, back to `path` after.
fn to_sign_in(path: &str) -> Response {
    let next = crate::session::safe_next(Some(path));
    let query = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
    Redirect::to(&format!("/console/sign-in?{query}")).into_response()
}

fn forbidden() -> Response {
    let body = pages::page(
        "Refused",
        None,
        maud::html! {
            p { "This form was stale or sent from another site, so nothing was changed. "
                a href="/console/" { "Reload the console" } " and try again." }
        },
    );
    (StatusCode::FORBIDDEN, Html(body.into_string())).into_response()
}

/// A form body (URL-encoded), or 400.
fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the form could not be read").into_response())
}
