//! Handing the organization's ownership to another member. The owner
//! starts a transfer naming a member; the service mails the member the
//! transfer's name and a token, which they paste here to accept. There is
//! no call that lists a member's pending transfers, so the page shows one
//! only when it is named (`?transfer=`, where starting one leads).

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::post;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::{Console, Part, Refusal, failure_of, person, refused, when};
use crate::pages::{csrf, request_id};
use crate::routes::{NameForm, Posted, Shared, View};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/ownership/transfer", post(start))
        .route("/console/ownership/accept", post(accept))
        .route("/console/ownership/cancel", post(cancel))
        .route("/console/ownership/decline", post(decline))
}

pub(super) async fn section(
    console: &Console,
    view: &View,
    org: &organization::Organization,
    members: &[rbac::Membership],
    transfer: &str,
    error: Refusal<'_>,
) -> Markup {
    let me = &view.nav.user;
    let owner = org.owner == *me;
    let shown = match transfer.is_empty() {
        true => None,
        false => console
            .org_service()
            .get_ownership_transfer(view.request(organization::GetOwnershipTransferRequest {
                name: transfer.into(),
            }))
            .await
            .ok()
            .and_then(|t| t.into_inner().ownership_transfer),
    };
    let candidates: Vec<&rbac::Membership> = members.iter().filter(|m| m.user != *me).collect();
    html! {
        h2 { "Ownership" }
        (failure_of(error, Part::Ownership))
        @if let Some(transfer) = &shown { (pending(view, transfer, members)) }
        @if owner {
            @if candidates.is_empty() {
                p.empty { "You own this organization. To hand it over, first invite the new owner as a member." }
            } @else {
                form.card method="post" action="/console/ownership/transfer" {
                    (csrf(view.csrf()))
                    (request_id())
                    input type="hidden" name="etag" value=(org.etag);
                    p.small { "You own this organization. The member you name is mailed a token to accept with; you become an administrator then." }
                    div.field {
                        label for="new_owner" { "New owner" }
                        select #new_owner name="new_owner" required {
                            @for member in &candidates {
                                option value=(member.user) { (member.user_email) }
                            }
                        }
                    }
                    button type="submit" { "Start transfer" }
                }
            }
        } @else if shown.is_none() {
            form.card method="post" action="/console/ownership/accept" {
                (csrf(view.csrf()))
                p.small { "Were you asked to become the owner? Paste the transfer and the token from the mail." }
                div.field {
                    label for="transfer" { "Transfer" }
                    input #transfer name="name" placeholder="organizations/…/ownershipTransfers/…" required;
                }
                div.field {
                    label for="token" { "Token" }
                    input #token name="token" autocomplete="off" required;
                }
                button type="submit" { "Accept ownership" }
            }
        }
    }
}

/// One transfer: who to whom, its state, and what the viewer may do with
/// it (the owner cancels a pending one; the target accepts or declines).
fn pending(
    view: &View,
    transfer: &organization::OwnershipTransfer,
    members: &[rbac::Membership],
) -> Markup {
    use organization::OwnershipTransferState as State;
    let state = match transfer.state() {
        State::Pending => "Pending",
        State::Accepted => "Accepted",
        State::Cancelled => "Cancelled",
        State::Declined => "Declined",
        State::Expired => "Expired",
        State::Unspecified => "Unknown",
    };
    let open = transfer.state() == State::Pending;
    let me = &view.nav.user;
    html! {
        div.card role="status" {
            dl {
                dt { "Transfer" } dd { code { (transfer.name) } }
                dt { "From" } dd { (person(&transfer.from_owner, members)) }
                dt { "To" } dd { (person(&transfer.to_owner, members)) }
                dt { "State" } dd { (state) }
                @if open { dt { "Expires" } dd { (when(transfer.expire_time.as_ref())) } }
            }
            @if open && transfer.from_owner == *me {
                form method="post" action="/console/ownership/cancel" {
                    (csrf(view.csrf()))
                    input type="hidden" name="name" value=(transfer.name);
                    button.danger type="submit" { "Cancel transfer" }
                }
            }
            @if open && transfer.to_owner == *me {
                form method="post" action="/console/ownership/accept" {
                    (csrf(view.csrf()))
                    input type="hidden" name="name" value=(transfer.name);
                    div.field {
                        label for="token" { "Token" }
                        input #token name="token" autocomplete="off" required;
                    }
                    button type="submit" { "Accept ownership" }
                }
                form method="post" action="/console/ownership/decline" {
                    (csrf(view.csrf()))
                    input type="hidden" name="name" value=(transfer.name);
                    button.secondary type="submit" { "Decline" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct StartForm {
    new_owner: String,
    #[serde(default)]
    etag: String,
    #[serde(default)]
    request_id: String,
}

async fn start(console: Shared, posted: Posted<StartForm>) -> Response {
    let Posted { signed, form } = posted;
    let started = console
        .org_service()
        .transfer_ownership(signed.request(organization::TransferOwnershipRequest {
            name: signed.tokens().organization.clone(),
            new_owner: form.new_owner,
            etag: form.etag,
            request_id: form.request_id,
            ttl: None,
        }))
        .await;
    match started.map(|s| s.into_inner().ownership_transfer.unwrap_or_default()) {
        Ok(transfer) => {
            let query = serde_urlencoded::to_string([("transfer", transfer.name.as_str())])
                .unwrap_or_default();
            console.done(&signed, &format!("/console/?{query}"))
        }
        Err(status) => refused(&console, signed, Part::Ownership, status).await,
    }
}

#[derive(Deserialize)]
struct AcceptForm {
    name: String,
    token: String,
}

async fn accept(console: Shared, posted: Posted<AcceptForm>) -> Response {
    let Posted { signed, form } = posted;
    let accepted = console
        .org_service()
        .accept_ownership_transfer(
            signed.request(organization::AcceptOwnershipTransferRequest {
                name: form.name.trim().to_string(),
                token: form.token.trim().to_string(),
            }),
        )
        .await;
    match accepted {
        Ok(_) => console.done(&signed, "/console/"),
        Err(status) => refused(&console, signed, Part::Ownership, status).await,
    }
}

async fn cancel(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let cancelled = console
        .org_service()
        .cancel_ownership_transfer(
            signed.request(organization::CancelOwnershipTransferRequest { name: form.name }),
        )
        .await;
    match cancelled {
        Ok(_) => console.done(&signed, "/console/"),
        Err(status) => refused(&console, signed, Part::Ownership, status).await,
    }
}

async fn decline(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let declined = console
        .org_service()
        .decline_ownership_transfer(
            signed.request(organization::DeclineOwnershipTransferRequest { name: form.name }),
        )
        .await;
    match declined {
        Ok(_) => console.done(&signed, "/console/"),
        Err(status) => refused(&console, signed, Part::Ownership, status).await,
    }
}
