//! Invitations to the organization: send, list the pending ones, revoke.

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::overview::no_organization;
use super::{Console, NameForm, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, request_id};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route(
            "/console/invitations",
            get(invitations).post(create_invitation),
        )
        .route("/console/invitations/revoke", post(revoke_invitation))
}

impl Console {
    fn invitations(
        &self,
    ) -> rbac::invitation_service_client::InvitationServiceClient<tenantry_kit::peer::PeerChannel>
    {
        rbac::invitation_service_client::InvitationServiceClient::new(self.rbac.clone())
    }
}

async fn invitations(console: Shared, view: View) -> Response {
    let body = invitations_body(&console, &view, None).await;
    console.render(&view, "Invitations", body)
}

/// The roles an invitation may give, as the built-in roles name them.
const ROLES: [(&str, &str); 3] = [
    ("roles/member", "Member"),
    ("roles/admin", "Admin"),
    ("roles/viewer", "Viewer"),
];

async fn invitations_body(
    console: &Console,
    view: &View,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let listed = console
        .invitations()
        .list_invitations(view.request(rbac::ListInvitationsRequest {
            parent: parent.into(),
            page_size: 100,
            state: rbac::invitation::State::Pending as i32,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(html! {
        (failure(error))
        form.card method="post" action="/console/invitations" {
            (csrf(view.csrf()))
            (request_id())
            div.field { label for="email" { "Email" } input #email type="email" name="email" required; }
            div.field {
                label for="role" { "Role" }
                select #role name="role" { @for (role, label) in ROLES { option value=(role) { (label) } } }
            }
            button type="submit" { "Send invitation" }
        }
        h2 { "Pending" }
        @if listed.invitations.is_empty() {
            p.empty { "No pending invitations. Invite a teammate with the form above." }
        } @else {
            table {
                thead { tr { th { "Email" } th { "Roles" } th { span.small { "Actions" } } } }
                tbody {
                    @for invitation in &listed.invitations {
                        tr {
                            td { (invitation.email) }
                            td { (invitation.roles.join(", ")) }
                            td {
                                form method="post" action="/console/invitations/revoke" {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(invitation.name);
                                    button.danger type="submit" aria-label={ "Revoke " (invitation.email) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Deserialize)]
struct InvitationForm {
    email: String,
    role: String,
    #[serde(default)]
    request_id: String,
}

async fn create_invitation(console: Shared, posted: Posted<InvitationForm>) -> Response {
    let Posted { signed, form } = posted;
    let created = console
        .invitations()
        .create_invitation(signed.request(rbac::CreateInvitationRequest {
            parent: signed.tokens().organization.clone(),
            invitation: Some(rbac::Invitation {
                email: form.email,
                roles: vec![form.role],
                ..Default::default()
            }),
            request_id: form.request_id,
            ..Default::default()
        }))
        .await;
    after(&console, signed, created.map(drop)).await
}

async fn revoke_invitation(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let revoked = console
        .invitations()
        .revoke_invitation(signed.request(rbac::RevokeInvitationRequest {
            name: form.name,
            ..Default::default()
        }))
        .await;
    after(&console, signed, revoked.map(drop)).await
}

async fn after(console: &Console, signed: Signed, outcome: Result<(), tonic::Status>) -> Response {
    match outcome {
        Ok(()) => console.done(&signed, "/console/invitations"),
        Err(status) => {
            console
                .refused(
                    signed,
                    "Invitations",
                    status.into(),
                    async |view, failure| invitations_body(console, view, Some(failure)).await,
                )
                .await
        }
    }
}
