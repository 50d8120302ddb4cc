//! Invitations to the organization: send (with roles and teams the invitee
//! gets on acceptance), list the pending ones, resend, revoke.

use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::overview::no_organization;
use super::{Console, NameForm, PAGE_SIZE, PageQuery, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, next_page, request_id};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route(
            "/console/invitations",
            get(invitations).post(create_invitation),
        )
        .route("/console/invitations/resend", post(resend_invitation))
        .route("/console/invitations/revoke", post(revoke_invitation))
}

async fn invitations(console: Shared, view: View, Query(q): Query<PageQuery>) -> Response {
    let body = invitations_body(&console, &view, &q.page_token, None).await;
    console.render(&view, "Invitations", body)
}

async fn invitations_body(
    console: &Console,
    view: &View,
    page_token: &str,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let listed = console
        .invitation_service()
        .list_invitations(view.request(rbac::ListInvitationsRequest {
            parent: parent.into(),
            page_size: PAGE_SIZE,
            page_token: page_token.to_string(),
            state: rbac::invitation::State::Pending as i32,
        }))
        .await?
        .into_inner();
    let roles = super::roles::all_roles(console, view, parent).await?;
    let teams = super::project::team_choices(console, view, parent).await?;
    let role_name = |name: &str| {
        roles
            .iter()
            .find(|r| r.name == name)
            .map_or(name.to_string(), |r| r.display_name.clone())
    };
    let invite = view.may(Permission::ORGANIZATION_MEMBERS_INVITE);
    Ok(html! {
        (failure(error))
        @if invite {
        form.card method="post" action="/console/invitations" aria-label="Send an invitation" {
            (csrf(view.csrf()))
            (request_id())
            div.field { label for="email" { "Email" } input #email type="email" name="email" required; }
            fieldset {
                legend { "Roles" }
                p.small { "None ticked: Member." }
                // Ownership moves by transfer, never by invitation.
                @for (i, role) in roles.iter().enumerate().filter(|(_, r)| r.name != super::members::OWNER) {
                    div.check {
                        input type="checkbox" id={ "invite-role-" (i) } name="role" value=(role.name);
                        label for={ "invite-role-" (i) } { (role.display_name) }
                    }
                }
            }
            @if !teams.is_empty() {
                fieldset {
                    legend { "Teams to join" }
                    @for (i, team) in teams.iter().enumerate() {
                        div.check {
                            input type="checkbox" id={ "invite-team-" (i) } name="team" value=(team.name);
                            label for={ "invite-team-" (i) } { (team.display_name) }
                        }
                    }
                }
            }
            button type="submit" { "Send invitation" }
        }
        }
        h2 { "Pending" }
        @if listed.invitations.is_empty() {
            p.empty { "No pending invitations." @if invite { " Invite a teammate with the form above." } }
        } @else {
            table.stack {
                thead { tr { th { "Email" } th { "Roles" } th { "Sent" } @if invite { th { span.small { "Actions" } } } } }
                tbody {
                    @for invitation in &listed.invitations {
                        tr {
                            td { (invitation.email) }
                            td {
                                @if invitation.external { span.badge.external { "external" } " " (invitation.projects.len()) " project(s)" }
                                @else { (invitation.roles.iter().map(|r| role_name(r)).collect::<Vec<_>>().join(", ")) }
                            }
                            td { (invitation.send_count) " time(s)" }
                            @if invite { td {
                                form.inline method="post" action="/console/invitations/resend" {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(invitation.name);
                                    button.secondary type="submit" aria-label={ "Resend to " (invitation.email) } { "Resend" }
                                }
                                " "
                                form.inline method="post" action="/console/invitations/revoke" {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(invitation.name);
                                    button.danger type="submit" aria-label={ "Revoke " (invitation.email) } { "Revoke" }
                                }
                            } }
                        }
                    }
                }
            }
        }
        (next_page("/console/invitations", &listed.next_page_token))
    })
}

#[derive(Deserialize)]
struct InvitationForm {
    email: String,
    #[serde(default)]
    role: Vec<String>,
    #[serde(default)]
    team: Vec<String>,
    #[serde(default)]
    request_id: String,
}

async fn create_invitation(console: Shared, posted: Posted<InvitationForm>) -> Response {
    let Posted { signed, form } = posted;
    let created = console
        .invitation_service()
        .create_invitation(
            signed.request(rbac::CreateInvitationRequest {
                parent: signed.tokens().organization.clone(),
                invitation: Some(rbac::Invitation {
                    email: form.email,
                    roles: form.role,
                    teams: form
                        .team
                        .into_iter()
                        .map(|team| rbac::InvitationTeam {
                            team,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                request_id: form.request_id,
                ..Default::default()
            }),
        )
        .await;
    after(&console, signed, created.map(drop)).await
}

async fn resend_invitation(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let resent = console
        .invitation_service()
        .resend_invitation(signed.request(rbac::ResendInvitationRequest {
            name: form.name,
            ..Default::default()
        }))
        .await;
    after(&console, signed, resent.map(drop)).await
}

async fn revoke_invitation(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let revoked = console
        .invitation_service()
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
                    async |view, failure| invitations_body(console, view, "", Some(failure)).await,
                )
                .await
        }
    }
}
