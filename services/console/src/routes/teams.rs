//! One team's page: its members, leads marked; adding, changing and
//! removing them for whoever may (an administrator, or a lead of this
//! team: the rbac service decides, and the page asks it about this team).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::peer::PeerChannel;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::overview::{list_members, no_organization};
use super::{Console, PAGE_SIZE, PageQuery, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, next_page, request_id};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/teams/{team}", get(team_page))
        .route("/console/teams/{team}/members", post(add_member))
        .route("/console/teams/{team}/members/role", post(change_role))
        .route("/console/teams/{team}/members/remove", post(remove_member))
        .route("/console/teams/{team}/delete", post(delete_team))
}

impl Console {
    fn team_member_service(
        &self,
    ) -> rbac::team_member_service_client::TeamMemberServiceClient<PeerChannel> {
        rbac::team_member_service_client::TeamMemberServiceClient::new(self.rbac.clone())
    }

    /// Which of `permissions` the viewer holds on `team` (its id), in one
    /// bulk check. A failed check allows nothing: the page then hides the
    /// forms, and the services decide anyway.
    async fn may_on_team(&self, view: &View, team: &str, permissions: &[Permission]) -> Vec<bool> {
        let checks: Vec<_> = permissions.iter().map(|p| ("team", team, *p)).collect();
        self.may_on(view, &checks).await
    }
}

/// The team's resource name in the active organization.
fn team_name(signed: &Signed, team: &str) -> String {
    format!("{}/teams/{team}", signed.tokens().organization)
}

async fn team_page(
    console: Shared,
    view: View,
    Path(team): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let body = team_body(&console, &view, &team, &q.page_token, None).await;
    console.render(&view, "Team", body)
}

async fn team_body(
    console: &Console,
    view: &View,
    id: &str,
    page_token: &str,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    if view.organization().is_none() {
        return Ok(no_organization());
    }
    let name = team_name(&view.signed, id);
    let team = console
        .team_service()
        .get_team(view.request(organization::GetTeamRequest { name: name.clone() }))
        .await?
        .into_inner()
        .team
        .unwrap_or_default();
    let listed = console
        .team_member_service()
        .list_team_members(view.request(rbac::ListTeamMembersRequest {
            parent: name.clone(),
            page_size: PAGE_SIZE,
            page_token: page_token.into(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let may = console
        .may_on_team(
            view,
            id,
            &[Permission::TEAM_MEMBERS_MANAGE, Permission::TEAM_MANAGE],
        )
        .await;
    let (manage, manage_team) = (may[0], may[1]);
    let path = format!("/console/teams/{id}");
    Ok(html! {
        h2 { (team.display_name) }
        @if !team.description.is_empty() { p { (team.description) } }
        p.small { a href="/console/organization" { "Back to the organization" } }
        (failure(error))
        h2 { "Members" }
        @if listed.team_members.is_empty() {
            p.empty { "No members yet." @if manage { " Add the first one below." } }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Email" } th { "Role" } @if manage { th { span.small { "Actions" } } } } }
                tbody {
                    @for member in &listed.team_members {
                        (member_row(view, &path, member, manage))
                    }
                }
            }
        }
        (next_page(&path, &listed.next_page_token))
        @if manage { (add_form(console, view, &path, &listed.team_members).await) }
        @if manage_team {
            h2 { "Delete team" }
            form.card method="post" action={ (path) "/delete" } {
                (csrf(view.csrf()))
                input type="hidden" name="etag" value=(team.etag);
                p.small { "Its members lose what the team was granted. It can be restored from the organization page until it is purged." }
                button.danger type="submit" aria-label={ "Delete team " (team.display_name) } { "Delete team" }
            }
        }
    })
}

fn is_lead(member: &rbac::TeamMember) -> bool {
    member.role() == authz::TeamRole::Lead
}

fn member_row(view: &View, path: &str, member: &rbac::TeamMember, manage: bool) -> Markup {
    let who = match member.user_email.is_empty() {
        true => member.user.clone(),
        false => member.user_email.clone(),
    };
    let lead = is_lead(member);
    html! {
        tr {
            td { (member.user_display_name) }
            td { (who) }
            td { @if lead { strong.lead { "Lead" } } @else { "Member" } }
            @if manage {
                td.actions {
                    form.inline method="post" action={ (path) "/members/role" } {
                        (csrf(view.csrf()))
                        input type="hidden" name="name" value=(member.name);
                        input type="hidden" name="etag" value=(member.etag);
                        input type="hidden" name="role" value=(if lead { "member" } else { "lead" });
                        button.secondary type="submit" aria-label={ (if lead { "Make member: " } else { "Make lead: " }) (who) } {
                            (if lead { "Make member" } else { "Make lead" })
                        }
                    }
                    form.inline method="post" action={ (path) "/members/remove" } {
                        (csrf(view.csrf()))
                        input type="hidden" name="name" value=(member.name);
                        button.danger type="submit" aria-label={ "Remove " (who) " from the team" } { "Remove" }
                    }
                }
            }
        }
    }
}

/// The add form: a pick of the organization's members not yet in the team
/// (as far as the first page of each says). A lead who may not read the
/// organization's members (no call lists them to a plain member) types the
/// user's resource name instead, which the overview shows each user.
async fn add_form(
    console: &Console,
    view: &View,
    path: &str,
    in_team: &[rbac::TeamMember],
) -> Markup {
    let readable = view.may(Permission::ORGANIZATION_MEMBERS_READ);
    let members = match readable {
        true => list_members(console, &view.signed).await,
        false => Vec::new(),
    };
    let candidates: Vec<&rbac::Membership> = members
        .iter()
        .filter(|m| !in_team.iter().any(|t| t.user == m.user))
        .collect();
    html! {
        h2 { "Add a member" }
        @if readable && candidates.is_empty() {
            p.empty { "Every member of the organization is in this team. "
                a href="/console/invitations" { "Invite someone" } " to the organization first." }
        } @else {
            form.card method="post" action={ (path) "/members" } {
                (csrf(view.csrf()))
                (request_id())
                @if readable {
                    div.field {
                        label for="user" { "Member" }
                        select #user name="user" required {
                            @for member in &candidates { option value=(member.user) { (member.user_email) } }
                        }
                    }
                } @else {
                    div.field {
                        label for="user" { "Member's user id" }
                        input #user name="user" placeholder="users/…" required aria-describedby="user_help";
                        span.small #user_help { "A member of the organization; each member sees their user id on the overview." }
                    }
                }
                div.field {
                    label for="role" { "Role" }
                    select #role name="role" {
                        option value="member" selected { "Member" }
                        option value="lead" { "Lead" }
                    }
                }
                button type="submit" { "Add to team" }
            }
        }
    }
}

/// `users/{id}` from a picked member or a typed id (with or without the
/// `users/` prefix).
fn user_name(typed: &str) -> String {
    let typed = typed.trim();
    match typed.starts_with("users/") {
        true => typed.to_string(),
        false => format!("users/{typed}"),
    }
}

fn role(value: &str) -> authz::TeamRole {
    match value {
        "lead" => authz::TeamRole::Lead,
        _ => authz::TeamRole::Member,
    }
}

#[derive(Deserialize)]
struct AddForm {
    user: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    request_id: String,
}

async fn add_member(
    console: Shared,
    Path(team): Path<String>,
    posted: Posted<AddForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let added = console
        .team_member_service()
        .add_team_member(signed.request(rbac::AddTeamMemberRequest {
            parent: team_name(&signed, &team),
            team_member: Some(rbac::TeamMember {
                user: user_name(&form.user),
                role: role(&form.role) as i32,
                ..Default::default()
            }),
            request_id: form.request_id,
        }))
        .await;
    after(&console, signed, &team, added.map(drop)).await
}

#[derive(Deserialize)]
struct RoleForm {
    name: String,
    #[serde(default)]
    etag: String,
    role: String,
}

async fn change_role(
    console: Shared,
    Path(team): Path<String>,
    posted: Posted<RoleForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let changed = console
        .team_member_service()
        .update_team_member(signed.request(rbac::UpdateTeamMemberRequest {
            team_member: Some(rbac::TeamMember {
                name: form.name,
                etag: form.etag,
                role: role(&form.role) as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["role".into()],
            }),
        }))
        .await;
    after(&console, signed, &team, changed.map(drop)).await
}

#[derive(Deserialize)]
struct RemoveForm {
    name: String,
}

async fn remove_member(
    console: Shared,
    Path(team): Path<String>,
    posted: Posted<RemoveForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let removed = console
        .team_member_service()
        .remove_team_member(signed.request(rbac::RemoveTeamMemberRequest {
            name: form.name,
            etag: String::new(),
        }))
        .await;
    after(&console, signed, &team, removed.map(drop)).await
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    etag: String,
}

async fn delete_team(
    console: Shared,
    Path(team): Path<String>,
    posted: Posted<DeleteForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let deleted = console
        .team_service()
        .delete_team(signed.request(organization::DeleteTeamRequest {
            name: team_name(&signed, &team),
            etag: form.etag,
        }))
        .await;
    match deleted {
        Ok(_) => console.done(&signed, "/console/organization"),
        Err(status) => after(&console, signed, &team, Err(status)).await,
    }
}

async fn after(
    console: &Console,
    signed: Signed,
    team: &str,
    outcome: Result<(), tonic::Status>,
) -> Response {
    match outcome {
        Ok(()) => console.done(&signed, &format!("/console/teams/{team}")),
        Err(status) => {
            console
                .refused(signed, "Team", status.into(), async |view, failure| {
                    team_body(console, view, team, "", Some(failure)).await
                })
                .await
        }
    }
}
