//! API keys: list, create with the secret shown once, revoke. A new
//! secret is rendered straight into the answer of the POST that made it —
//! never redirected, never in a URL or cookie — and the answer is not
//! stored (every console answer is `no-store`). The deployment's service
//! accounts, the other machine credentials, are in `accounts`.

mod accounts;
mod secret;

use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::peer::PeerChannel;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;

use super::overview::no_organization;
use super::{Console, NameForm, PAGE_SIZE, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, next_with, request_id, when};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/api-keys", get(keys).post(create_key))
        .route("/console/api-keys/revoke", post(revoke_key))
        .merge(accounts::routes())
        .merge(secret::routes())
}

// A free function, not a method of `Console`: other pages add methods there.
fn api_keys(
    console: &Console,
) -> identity::api_key_service_client::ApiKeyServiceClient<PeerChannel> {
    identity::api_key_service_client::ApiKeyServiceClient::new(console.identity.clone())
}

#[derive(Deserialize, Default)]
struct KeysQuery {
    #[serde(default)]
    page_token: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    show_inactive: String,
}

async fn keys(console: Shared, view: View, Query(q): Query<KeysQuery>) -> Response {
    let body = keys_body(&console, &view, &q, None, None).await;
    console.render(&view, "API keys", body)
}

/// The teams of the organization (first 100), for the scope choice:
/// (name, display name). A caller who may not list them sees none.
async fn teams(console: &Console, view: &View, parent: &str) -> Vec<(String, String)> {
    console
        .team_service()
        .list_teams(view.request(organization::ListTeamsRequest {
            parent: parent.into(),
            page_size: 100,
            ..Default::default()
        }))
        .await
        .map(|r| {
            r.into_inner()
                .teams
                .into_iter()
                .map(|t| (t.name, t.display_name))
                .collect()
        })
        .unwrap_or_default()
}

async fn keys_body(
    console: &Console,
    view: &View,
    q: &KeysQuery,
    refused: Option<(&Failure, &KeyForm)>,
    created: Option<Markup>,
) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let teams = teams(console, view, parent).await;
    let listed = api_keys(console)
        .list_api_keys(view.request(identity::ListApiKeysRequest {
            parent: parent.into(),
            page_size: PAGE_SIZE,
            page_token: q.page_token.clone(),
            team: q.team.clone(),
            show_inactive: !q.show_inactive.is_empty(),
        }))
        .await;
    let listed = match listed {
        Ok(listed) => listed.into_inner(),
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            return Ok(html! {
                (failure(refused.map(|r| r.0)))
                p.error role="alert" { "You may not see or manage this organization's API keys: it needs the "
                    code { "organization.api_keys.create" } " permission. Ask an owner or an administrator if you need a key." }
            });
        }
        Err(status) => return Err(status.into()),
    };
    let scope_of = |key: &identity::ApiKey| -> String {
        match (key.team.as_str(), key.project.as_str()) {
            ("", "") => "Organization".into(),
            ("", project) => format!("Project {project}"),
            (team, _) => {
                let display = teams
                    .iter()
                    .find(|(n, _)| n == team)
                    .map(|(_, d)| d.as_str());
                format!("Team {}", display.unwrap_or(team))
            }
        }
    };
    Ok(html! {
        @if let Some(created) = created { (created) }
        p.small { "Keys act for the organization or one team with the permissions you give them. "
                  a href="/console/service-accounts" { "Service accounts" } " are managed by platform administrators." }
        @if view.may(Permission::ORGANIZATION_API_KEYS_CREATE) {
            (create_form(view, &teams, refused))
        }
        h2 { "Keys" }
        form.filters method="get" action="/console/api-keys" {
            div.field {
                label for="team-filter" { "Show keys of" }
                select id="team-filter" name="team" {
                    option value="" { "Every scope" }
                    @for (name, display) in &teams { option value=(name) selected[*name == q.team] { "Team " (display) } }
                }
            }
            div.check {
                input type="checkbox" id="show_inactive" name="show_inactive" value="on" checked[!q.show_inactive.is_empty()];
                label for="show_inactive" { "Include revoked and expired keys" }
            }
            button.secondary type="submit" { "Show" }
        }
        @if listed.api_keys.is_empty() {
            p.empty { "No API keys here yet."
                @if view.may(Permission::ORGANIZATION_API_KEYS_CREATE) { " Create one with the form above." } }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Prefix" } th { "Scope" } th { "Permissions" } th { "Created" }
                             th { "Last used" } th { "Expires" } th { "State" } th { span.small { "Actions" } } } }
                tbody { @for key in &listed.api_keys { (key_row(view, key, &scope_of(key))) } }
            } }
        }
        (next_with("/console/api-keys", &[("team", &q.team), ("show_inactive", &q.show_inactive)], &listed.next_page_token))
    })
}

fn key_row(view: &View, key: &identity::ApiKey, scope: &str) -> Markup {
    let state = match identity::ApiKeyState::try_from(key.state) {
        Ok(identity::ApiKeyState::Active) => "Active",
        Ok(identity::ApiKeyState::Expired) => "Expired",
        Ok(identity::ApiKeyState::Revoked) => "Revoked",
        _ => "Unknown",
    };
    html! {
        tr {
            td { (key.display_name) }
            td { code { (key.key_prefix) } }
            td { (scope) }
            td { ul.plain { @for p in &key.permissions { li { code { (p) } } } } }
            td { (when(key.create_time.as_ref())) }
            td { @if key.last_used_time.is_some() { (when(key.last_used_time.as_ref())) } @else { "Never" } }
            td { @if key.expire_time.is_some() { (when(key.expire_time.as_ref())) } @else { "Never" } }
            td { (state) }
            td {
                @if state == "Active" && view.may(Permission::ORGANIZATION_API_KEYS_CREATE) {
                    form method="post" action="/console/api-keys/revoke" {
                        (csrf(view.csrf()))
                        input type="hidden" name="name" value=(key.name);
                        button.danger type="submit" aria-label={ "Revoke " (key.display_name) } { "Revoke" }
                    }
                }
            }
        }
    }
}

/// How long a new key may live: (form value, label).
const LIFETIMES: &[(&str, &str)] = &[
    ("", "Never expires"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
];

/// The create form; after a refusal, the refusal and the values sent.
fn create_form(
    view: &View,
    teams: &[(String, String)],
    refused: Option<(&Failure, &KeyForm)>,
) -> Markup {
    let (error, sent) = (refused.map(|r| r.0), refused.map(|r| r.1));
    let name = sent.map_or("", |f| f.display_name.as_str());
    let scope = sent.map_or("", |f| f.scope.as_str());
    let expires = sent.map_or("", |f| f.expires.as_str());
    let chosen =
        |p: &Permission| sent.is_some_and(|f| f.permissions.iter().any(|c| c == p.as_str()));
    html! {
        h2 { "Create an API key" }
        (failure(error))
        form.card method="post" action="/console/api-keys" {
            (csrf(view.csrf()))
            (request_id())
            div.field { label for="display_name" { "Key name" } input #display_name name="display_name" value=(name) required maxlength="200"; }
            div.field {
                label for="scope" { "Scope" }
                select #scope name="scope" {
                    option value="" { "The whole organization" }
                    @for (team, display) in teams { option value=(team) selected[team == scope] { "Team " (display) } }
                }
            }
            fieldset {
                legend { "Permissions" }
                p.small { "A key carries at most what you hold yourself, in its scope." }
                @for (i, permission) in Permission::ALL.iter().enumerate().filter(|(_, p)| offered(view, **p)) {
                    div.check {
                        input type="checkbox" id={ "permission-" (i) } name="permissions" value=(permission.as_str()) checked[chosen(permission)];
                        label for={ "permission-" (i) } { code { (permission.as_str()) } " — " (permission.description()) }
                    }
                }
            }
            div.field {
                label for="expires" { "Expires" }
                select #expires name="expires" {
                    @for (value, label) in LIFETIMES { option value=(value) selected[*value == expires] { (label) } }
                }
            }
            button type="submit" { "Create API key" }
        }
    }
}

/// Whether the form offers `permission`: not an organization-level one the
/// user lacks (the service would refuse it). The page asked about those
/// already; permissions of teams and projects are the service's to judge.
fn offered(view: &View, permission: Permission) -> bool {
    let asked = super::ORGANIZATION_PERMISSIONS.contains(&permission)
        // (The page asks about this one across the organization's projects.)
        && permission != Permission::PROJECT_READ;
    !asked || view.may(permission)
}

#[derive(Deserialize, Clone)]
struct KeyForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    request_id: String,
}

async fn create_key(console: Shared, posted: Posted<KeyForm>) -> Response {
    let Posted { signed, form } = posted;
    let expire_time = match form.expires.as_str() {
        "" => None,
        days => match days.parse::<i64>() {
            Ok(days @ 1..=3650) => Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() + days * 86_400,
                nanos: 0,
            }),
            _ => {
                let failure = field_failure("expires", "choose one of the offered lifetimes");
                return key_refused(&console, signed, failure, &form).await;
            }
        },
    };
    let sent = form.clone();
    let created = api_keys(&console)
        .create_api_key(signed.request(identity::CreateApiKeyRequest {
            parent: signed.tokens().organization.clone(),
            api_key: Some(identity::ApiKey {
                display_name: form.display_name,
                team: form.scope,
                permissions: form.permissions,
                expire_time,
                ..Default::default()
            }),
            request_id: form.request_id,
        }))
        .await;
    let created = match created {
        Ok(created) => created.into_inner(),
        Err(status) => {
            let failure = named_permissions(status.into(), &sent.permissions);
            return key_refused(&console, signed, failure, &sent).await;
        }
    };
    let key = created.api_key.unwrap_or_default();
    let shown = html! {
        section.card.created aria-labelledby="created-heading" {
            h2 #created-heading { "API key “" (key.display_name) "” created" }
            @if created.secret.is_empty() {
                p { "This key was created by an earlier submit of the same form; its secret was shown then and cannot be shown again. Revoke it and create another if it was lost." }
            } @else {
                p { strong { "Copy the secret now: it is shown only this once." } " Send it to the API as the " code { "X-Api-Key" } " header (or " code { "Authorization: Bearer" } ")." }
                (secret::secret_once("new-secret", "Secret", &created.secret))
            }
        }
    };
    let view = match console.view(signed).await {
        Ok(view) => view,
        Err(answer) => return answer,
    };
    let body = keys_body(&console, &view, &KeysQuery::default(), None, Some(shown)).await;
    console.render(&view, "API keys", body)
}

async fn key_refused(
    console: &Console,
    signed: Signed,
    failure: Failure,
    sent: &KeyForm,
) -> Response {
    console
        .refused(signed, "API keys", failure, async |view, failure| {
            let refused = Some((failure, sent));
            keys_body(console, view, &KeysQuery::default(), refused, None).await
        })
        .await
}

/// A refusal of one field, in words.
fn field_failure(field: &str, why: &str) -> Failure {
    Failure {
        message: "The form needs a change.".into(),
        fields: vec![(field.into(), why.into())],
        ..Failure::default()
    }
}

/// `api_key.permissions[3]` named as the permission it is.
fn named_permissions(mut failure: Failure, permissions: &[String]) -> Failure {
    for (field, _) in &mut failure.fields {
        let index = field
            .strip_prefix("api_key.permissions[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok());
        if let Some(permission) = index.and_then(|i| permissions.get(i)) {
            *field = format!("permission {permission}");
        }
    }
    failure
}

async fn revoke_key(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let revoked = api_keys(&console)
        .revoke_api_key(signed.request(identity::RevokeApiKeyRequest { name: form.name }))
        .await;
    match revoked {
        Ok(_) => console.done(&signed, "/console/api-keys"),
        Err(status) => {
            let failure = status.into();
            console
                .refused(signed, "API keys", failure, async |view, failure| {
                    keys_body(&console, view, &KeysQuery::default(), None, None)
                        .await
                        .map(|list| html! { (crate::pages::failure(Some(failure))) (list) })
                })
                .await
        }
    }
}
