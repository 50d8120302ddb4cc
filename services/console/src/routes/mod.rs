//! The console's routes and what every page shares: reading the session,
//! refreshing it, checking a POST, answering with the cookie.

// A refusal here is the answer itself (a redirect, a 403), returned once
// per request straight to the client: its size costs nothing.
#![allow(clippy::result_large_err)]

mod accept;
mod account;
mod audit;
mod auth;
mod billing;
mod invitations;
mod keys;
mod members;
mod organization;
mod overview;
mod project;
mod projects;
mod recover;
mod roles;
mod teams;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maud::Markup;
use tenantry_kit::peer::{Peer, PeerChannel};
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization_pb;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;

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
    audit: PeerChannel,
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
            audit: deps.peers.channel(Peer::Audit)?,
        })
    }

    pub(super) fn org_service(
        &self,
    ) -> organization_pb::organization_service_client::OrganizationServiceClient<PeerChannel> {
        organization_pb::organization_service_client::OrganizationServiceClient::new(
            self.organization.clone(),
        )
    }

    pub(super) fn team_service(
        &self,
    ) -> organization_pb::team_service_client::TeamServiceClient<PeerChannel> {
        organization_pb::team_service_client::TeamServiceClient::new(self.organization.clone())
    }

    pub(super) fn project_service(
        &self,
    ) -> organization_pb::project_service_client::ProjectServiceClient<PeerChannel> {
        organization_pb::project_service_client::ProjectServiceClient::new(
            self.organization.clone(),
        )
    }

    pub(super) fn membership_service(
        &self,
    ) -> rbac_pb::membership_service_client::MembershipServiceClient<PeerChannel> {
        rbac_pb::membership_service_client::MembershipServiceClient::new(self.rbac.clone())
    }

    pub(super) fn invitation_service(
        &self,
    ) -> rbac_pb::invitation_service_client::InvitationServiceClient<PeerChannel> {
        rbac_pb::invitation_service_client::InvitationServiceClient::new(self.rbac.clone())
    }

    pub(super) fn subscription_service(
        &self,
    ) -> billing_pb::subscription_service_client::SubscriptionServiceClient<PeerChannel> {
        billing_pb::subscription_service_client::SubscriptionServiceClient::new(
            self.billing.clone(),
        )
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
        .route("/console/static/{file}", get(stylesheet))
        .merge(auth::routes())
        .merge(account::routes())
        .merge(recover::routes())
        .merge(accept::routes())
        .merge(overview::routes())
        .merge(projects::routes())
        .merge(members::routes())
        .merge(invitations::routes())
        .merge(project::routes())
        .merge(roles::routes())
        .merge(keys::routes())
        .merge(billing::routes())
        .merge(audit::routes())
        .merge(organization::routes())
        .merge(teams::routes())
        .with_state(console)
}

/// Lists show this many rows a page.
pub const PAGE_SIZE: i32 = 20;

/// `?page_token=` of a paginated list.
#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    pub page_token: String,
}

/// A form naming one resource (`name`): delete, revoke, resend.
#[derive(serde::Deserialize)]
pub struct NameForm {
    pub name: String,
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
    /// The page to come back to after signing in again.
    path: String,
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

    /// The organization the session acts in (`organizations/…`), if any.
    pub fn organization(&self) -> Option<&str> {
        Some(self.tokens().organization.as_str()).filter(|o| !o.is_empty())
    }
}

/// A signed-in page's request: the session and the navigation bar, which
/// knows what the user may do in the active organization. Extracted from
/// the request; a request without a session is answered by a redirect to
/// sign in and come back.
pub struct View {
    pub signed: Signed,
    pub nav: Nav,
}

impl View {
    /// Whether the user holds `permission` on the active organization, as
    /// authorization answered when the page was built. The page hides what
    /// this denies; the services still decide every call.
    pub fn may(&self, permission: Permission) -> bool {
        self.nav.allowed.contains(&permission)
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.signed.request(message)
    }

    pub fn organization(&self) -> Option<&str> {
        self.signed.organization()
    }

    pub fn csrf(&self) -> &str {
        &self.signed.state.csrf
    }
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Signed, Response> {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/console/".into());
        console.signed_in(&parts.headers, &path).await
    }
}

impl FromRequestParts<Arc<Console>> for View {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<View, Response> {
        let signed = Signed::from_request_parts(parts, console).await?;
        console.view(signed).await
    }
}

/// A form POSTed by a signed-in user: the session (its CSRF token right,
/// sent from a page of this host) and the form. Anything else is answered
/// before the handler runs: 403 for a forged or stale form, 400 for one
/// that cannot be read, a redirect to sign in (and back to the page the
/// form was on) for a session that has ended.
pub struct Posted<T> {
    pub signed: Signed,
    pub form: T,
}

/// The largest form the console reads.
const FORM_LIMIT: usize = 64 * 1024;

impl<T: serde::de::DeserializeOwned> FromRequest<Arc<Console>> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Arc<Console>) -> Result<Self, Response> {
        #[derive(serde::Deserialize)]
        struct Csrf {
            #[serde(default)]
            csrf: String,
        }
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
            (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response()
        })?;
        let Csrf { csrf } = form(&body)?;
        let back = came_from(&parts.headers).unwrap_or_else(|| parts.uri.path().to_string());
        let signed = console.signed_post(&parts.headers, &csrf, &back).await?;
        let form = form(&body)?;
        Ok(Posted { signed, form })
    }
}

/// The console page a form was sent from (its `Referer`), to come back to.
fn came_from(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let path = referer.split_once("://")?.1;
    let path = &path[path.find('/')?..];
    Some(crate::session::safe_next(Some(path)))
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
        let mut renewed = false;
        if tokens.access_expires <= now + 5 {
            let refreshed = self
                .identity()
                .refresh(identity::RefreshRequest {
                    refresh_token: tokens.refresh.clone(),
                })
                .await;
            let Some(fresh) = refreshed.ok().and_then(|r| r.into_inner().tokens) else {
                return Err(to_sign_in(path));
            };
            state.tokens = Some(tokens_of(fresh));
            renewed = true;
        }
        Ok(Signed {
            state,
            renewed,
            headers: headers.clone(),
            path: path.to_string(),
        })
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

    /// After a POST that worked: back to `to` (POST, redirect, GET).
    pub fn done(&self, signed: &Signed, to: &str) -> Response {
        self.answer(signed, Redirect::to(to))
    }

    fn with_cookie(&self, headers: &HeaderMap, state: &State, mut response: Response) -> Response {
        if let Ok(value) = HeaderValue::from_str(&self.sessions.write(headers, state)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    /// A signed-in page's view: the navigation bar (the user from `Me`,
    /// with every organization they belong to) and what the user may do in
    /// the active organization, in one bulk check.
    pub async fn view(&self, signed: Signed) -> Result<View, Response> {
        // A session that may only enrol a second factor is sent to do so.
        if account::enrolment_only(signed.tokens()) && !signed.path.starts_with("/console/account")
        {
            return Err(self.done(&signed, account::ENROL));
        }
        match self.nav(&signed).await {
            Ok(nav) => Ok(View { signed, nav }),
            Err(failure) => Err(self.failed(&signed, "Console", failure)),
        }
    }

    async fn nav(&self, signed: &Signed) -> Result<Nav, Failure> {
        let me = self
            .identity()
            .me(signed.request(identity::MeRequest {}))
            .await?
            .into_inner();
        let user = me.user.unwrap_or_default();
        // A session that may only enrol a second factor may call nothing
        // else: its bar names the user and no organization.
        if account::enrolment_only(signed.tokens()) {
            return Ok(Nav {
                email: user.email,
                user: user.name,
                active: String::new(),
                organizations: Vec::new(),
                csrf: signed.state.csrf.clone(),
                allowed: Vec::new(),
            });
        }
        let (organizations, allowed) = tokio::join!(
            self.my_organizations(signed),
            self.allowed(signed, &user.name)
        );
        Ok(Nav {
            email: user.email,
            user: user.name,
            active: signed.tokens().organization.clone(),
            organizations: organizations?,
            csrf: signed.state.csrf.clone(),
            allowed: allowed?,
        })
    }

    /// (name, display name) of every organization the user belongs to, for
    /// the switcher.
    async fn my_organizations(&self, signed: &Signed) -> Result<Vec<(String, String)>, Failure> {
        let mine = self
            .org_service()
            .list_my_organizations(signed.request(organization_pb::ListMyOrganizationsRequest {
                page_size: 100,
                ..Default::default()
            }))
            .await?
            .into_inner();
        Ok(mine
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
            .collect())
    }

    /// The organization-level permissions `user` holds on the active
    /// organization, and [`Permission::PROJECT_READ`] when they may read at
    /// least one of its projects (a finance user reads none: no projects in
    /// their navigation).
    async fn allowed(&self, signed: &Signed, user: &str) -> Result<Vec<Permission>, Failure> {
        let Some(organization) = signed.organization() else {
            return Ok(Vec::new());
        };
        let user_id = last_segment(user);
        let items = ORGANIZATION_PERMISSIONS
            .iter()
            .map(|permission| {
                check_item(
                    "organization",
                    last_segment(organization),
                    *permission,
                    user_id,
                )
            })
            .collect();
        let (mut bulk, mut lookup) = (self.authorization(), self.authorization());
        let checks =
            bulk.check_bulk_permissions(signed.request(authz::CheckBulkPermissionsRequest {
                consistency: None,
                items,
            }));
        let projects = lookup.lookup_resources(signed.request(authz::LookupResourcesRequest {
            resource_type: "project".into(),
            permission: Permission::PROJECT_READ.as_str().into(),
            subject: Some(user_subject(user_id)),
            organization: organization.into(),
            page_size: 1,
            ..Default::default()
        }));
        let (checks, projects) = tokio::join!(checks, projects);
        let held = allowed_pairs(&checks?.into_inner().pairs);
        let mut allowed: Vec<Permission> = ORGANIZATION_PERMISSIONS
            .iter()
            .zip(held)
            .filter_map(|(permission, held)| held.then_some(*permission))
            .collect();
        if !projects?.into_inner().resource_ids.is_empty() {
            allowed.push(Permission::PROJECT_READ);
        }
        Ok(allowed)
    }

    fn authorization(
        &self,
    ) -> authz::authorization_service_client::AuthorizationServiceClient<PeerChannel> {
        authz::authorization_service_client::AuthorizationServiceClient::new(self.rbac.clone())
    }

    /// Whether the viewing user holds each permission on each object
    /// (`(object_type, object_id, permission)`, such as `("team", id,
    /// Permission::TEAM_MEMBERS_MANAGE)`), in one bulk check: for pages
    /// about one object, where `view.may` (the organization only) does not
    /// say. Hiding only: the services still decide. A failed check hides
    /// everything.
    pub async fn may_on(&self, view: &View, checks: &[(&str, &str, Permission)]) -> Vec<bool> {
        let user = last_segment(&view.nav.user);
        let items = checks
            .iter()
            .map(|(object_type, object_id, permission)| {
                check_item(object_type, object_id, *permission, user)
            })
            .collect();
        let answer = self
            .authorization()
            .check_bulk_permissions(view.request(authz::CheckBulkPermissionsRequest {
                consistency: None,
                items,
            }))
            .await;
        let mut allowed = answer
            .map(|a| allowed_pairs(&a.into_inner().pairs))
            .unwrap_or_default();
        allowed.resize(checks.len(), false);
        allowed
    }

    /// A signed-in page: the navigation bar and `body`, or where a failed
    /// call leads (sign-in when the session is gone).
    pub fn render(&self, view: &View, title: &str, body: Result<Markup, Failure>) -> Response {
        let (status, body) = match body {
            Ok(body) => (StatusCode::OK, body),
            Err(failure) if failure.signed_out => return to_sign_in(&view.signed.path),
            Err(failure) => (failure.status(), pages::failure(Some(&failure))),
        };
        self.answer(
            &view.signed,
            (
                status,
                Html(pages::page(title, Some(&view.nav), body).into_string()),
            ),
        )
    }

    /// A failed POST shown on its page again: `body` renders the page with
    /// the failure next to its form.
    pub async fn refused<F>(
        &self,
        signed: Signed,
        title: &str,
        failure: Failure,
        body: F,
    ) -> Response
    where
        F: AsyncFnOnce(&View, &Failure) -> Result<Markup, Failure>,
    {
        if failure.signed_out {
            return to_sign_in(&signed.path);
        }
        let view = match self.view(signed).await {
            Ok(view) => view,
            Err(answer) => return answer,
        };
        let page = body(&view, &failure).await;
        let mut response = self.render(&view, title, page);
        *response.status_mut() = failure.status();
        response
    }

    fn failed(&self, signed: &Signed, title: &str, failure: Failure) -> Response {
        if failure.signed_out {
            return to_sign_in(&signed.path);
        }
        let status = failure.status();
        let body = pages::page(title, None, pages::failure(Some(&failure)));
        self.answer(signed, (status, Html(body.into_string())))
    }
}

/// The organization-level permissions the console asks about for every
/// page, to show only what the user may do.
const ORGANIZATION_PERMISSIONS: &[Permission] = &[
    Permission::ORGANIZATION_READ,
    Permission::ORGANIZATION_SETTINGS_MANAGE,
    Permission::ORGANIZATION_MEMBERS_READ,
    Permission::ORGANIZATION_MEMBERS_INVITE,
    Permission::ORGANIZATION_MEMBERS_MANAGE,
    Permission::ORGANIZATION_TEAMS_CREATE,
    Permission::ORGANIZATION_DEPARTMENTS_CREATE,
    Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE,
    Permission::ORGANIZATION_API_KEYS_CREATE,
    Permission::ORGANIZATION_DELETE,
    Permission::ORGANIZATION_OWNERSHIP_TRANSFER,
    Permission::BILLING_READ,
    Permission::BILLING_MANAGE,
    Permission::PROJECT_CREATE,
    Permission::AUDIT_READ,
];

/// One item of a bulk check: may user `user_id` do `permission` on the
/// object?
fn check_item(
    object_type: &str,
    object_id: &str,
    permission: Permission,
    user_id: &str,
) -> authz::CheckBulkPermissionsRequestItem {
    authz::CheckBulkPermissionsRequestItem {
        resource: Some(authz::ObjectReference {
            object_type: object_type.into(),
            object_id: object_id.into(),
        }),
        permission: permission.as_str().into(),
        subject: Some(user_subject(user_id)),
    }
}

fn user_subject(user_id: &str) -> authz::SubjectReference {
    authz::SubjectReference {
        object: Some(authz::ObjectReference {
            object_type: "user".into(),
            object_id: user_id.into(),
        }),
        optional_relation: String::new(),
    }
}

/// Whether each pair of a bulk answer allows (an item in error does not).
fn allowed_pairs(pairs: &[authz::CheckBulkPermissionsPair]) -> Vec<bool> {
    pairs
        .iter()
        .map(|pair| {
            matches!(
                &pair.response,
                Some(authz::check_bulk_permissions_pair::Response::Item(item))
                    if item.permissionship == authz::Permissionship::Allowed as i32
            )
        })
        .collect()
}

/// The id at the end of a resource name (`organizations/{id}` → `{id}`).
fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or_default()
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

/// A form body (URL-encoded; a repeated field fills a list), or 400.
fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_html_form::from_bytes(body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the form could not be read").into_response())
}
