//! The deployment's service accounts: list, create, a client secret shown
//! once, delete. They are instance-level: only platform administrators
//! see them, and the page says so to everyone else.

use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::peer::PeerChannel;
use tenantry_proto::tenantry::identity::v1 as identity;

use super::secret::secret_once;
use crate::calls::Failure;
use crate::pages::{csrf, failure, request_id, when};
use crate::routes::{Console, NameForm, PAGE_SIZE, PageQuery, Posted, Shared, Signed, View};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route(
            "/console/service-accounts",
            get(accounts).post(create_account),
        )
        .route("/console/service-accounts/delete", post(delete_account))
        .route("/console/service-accounts/secret", post(create_secret))
}

fn service_accounts(
    console: &Console,
) -> identity::service_account_service_client::ServiceAccountServiceClient<PeerChannel> {
    identity::service_account_service_client::ServiceAccountServiceClient::new(
        console.identity.clone(),
    )
}

async fn accounts(console: Shared, view: View, Query(q): Query<PageQuery>) -> Response {
    let body = accounts_body(&console, &view, &q.page_token, None, None).await;
    console.render(&view, "Service accounts", body)
}

async fn accounts_body(
    console: &Console,
    view: &View,
    page_token: &str,
    error: Option<&Failure>,
    created: Option<Markup>,
) -> Result<Markup, Failure> {
    let listed = service_accounts(console)
        .list_service_accounts(view.request(identity::ListServiceAccountsRequest {
            page_size: PAGE_SIZE,
            page_token: page_token.into(),
        }))
        .await;
    let listed = match listed {
        Ok(listed) => listed.into_inner(),
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            return Ok(html! {
                (failure(error))
                p.empty { "Service accounts belong to the whole deployment: only platform administrators see and manage them. "
                          "For a credential of this organization, create an " a href="/console/api-keys" { "API key" } "." }
            });
        }
        Err(status) => return Err(status.into()),
    };
    Ok(html! {
        @if let Some(created) = created { (created) }
        p.small { "Machine identities of the deployment's own services. They sign in with a client id and a client secret." }
        h2 { "Create a service account" }
        (failure(error))
        form.card method="post" action="/console/service-accounts" {
            (csrf(view.csrf()))
            (request_id())
            div.field { label for="sa_name" { "Service account name" } input #sa_name name="display_name" required maxlength="200"; }
            div.field { label for="sa_description" { "Description" } input #sa_description name="description" maxlength="1000"; }
            button type="submit" { "Create service account" }
        }
        h2 { "Service accounts" }
        @if listed.service_accounts.is_empty() {
            p.empty { "No service accounts yet. Create one with the form above." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Description" } th { "Created" } th { "Last used" } th { span.small { "Actions" } } } }
                tbody {
                    @for account in &listed.service_accounts {
                        tr {
                            td { (account.display_name) br; code.small { (account.name) } }
                            td { (account.description) }
                            td { (when(account.create_time.as_ref())) }
                            td { @if account.last_used_time.is_some() { (when(account.last_used_time.as_ref())) } @else { "Never" } }
                            td.actions {
                                form method="post" action="/console/service-accounts/secret" {
                                    (csrf(view.csrf()))
                                    (request_id())
                                    input type="hidden" name="name" value=(account.name);
                                    button.secondary type="submit" aria-label={ "Create a client secret for " (account.display_name) } { "Create client secret" }
                                }
                                form method="post" action="/console/service-accounts/delete" {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(account.name);
                                    button.danger type="submit" aria-label={ "Delete " (account.display_name) } { "Delete" }
                                }
                            }
                        }
                    }
                }
            } }
        }
        (crate::pages::next_page("/console/service-accounts", &listed.next_page_token))
    })
}

#[derive(Deserialize)]
struct AccountForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    request_id: String,
}

async fn create_account(console: Shared, posted: Posted<AccountForm>) -> Response {
    let Posted { signed, form } = posted;
    let created = service_accounts(&console)
        .create_service_account(signed.request(identity::CreateServiceAccountRequest {
            service_account: Some(identity::ServiceAccount {
                display_name: form.display_name,
                description: form.description,
                ..Default::default()
            }),
            request_id: form.request_id,
        }))
        .await;
    match created {
        Ok(_) => console.done(&signed, "/console/service-accounts"),
        Err(status) => account_refused(&console, signed, status.into()).await,
    }
}

async fn delete_account(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let deleted = service_accounts(&console)
        .delete_service_account(signed.request(identity::DeleteServiceAccountRequest {
            name: form.name,
            etag: String::new(),
        }))
        .await;
    match deleted {
        Ok(_) => console.done(&signed, "/console/service-accounts"),
        Err(status) => account_refused(&console, signed, status.into()).await,
    }
}

#[derive(Deserialize)]
struct SecretForm {
    name: String,
    #[serde(default)]
    request_id: String,
}

async fn create_secret(console: Shared, posted: Posted<SecretForm>) -> Response {
    let Posted { signed, form } = posted;
    let created = service_accounts(&console)
        .create_service_account_credential(signed.request(
            identity::CreateServiceAccountCredentialRequest {
                parent: form.name.clone(),
                credential: Some(identity::ServiceAccountCredential::default()),
                request_id: form.request_id,
            },
        ))
        .await;
    let created = match created {
        Ok(created) => created.into_inner(),
        Err(status) => return account_refused(&console, signed, status.into()).await,
    };
    let credential = created.credential.unwrap_or_default();
    let shown = html! {
        section.card.created aria-labelledby="created-heading" {
            h2 #created-heading { "Client secret created for " code { (form.name) } }
            dl { dt { "Client id" } dd { code { (credential.client_id) } } }
            @if created.client_secret.is_empty() {
                p { "This credential was created by an earlier submit of the same form; its secret was shown then and cannot be shown again." }
            } @else {
                p { strong { "Copy the client secret now: it is shown only this once." } }
                (secret_once("new-client-secret", "Client secret", &created.client_secret))
            }
        }
    };
    let view = match console.view(signed).await {
        Ok(view) => view,
        Err(answer) => return answer,
    };
    let body = accounts_body(&console, &view, "", None, Some(shown)).await;
    console.render(&view, "Service accounts", body)
}

async fn account_refused(console: &Console, signed: Signed, failure: Failure) -> Response {
    console
        .refused(
            signed,
            "Service accounts",
            failure,
            async |view, failure| accounts_body(console, view, "", Some(failure), None).await,
        )
        .await
}
