//! The organization's members and their roles (change, remove), and its
//! external users (project grants only), listed apart.

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
use crate::pages::{csrf, failure, next_page};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/members", get(members))
        .route("/console/members/roles", post(change_roles))
        .route("/console/members/remove", post(remove_member))
}

async fn members(console: Shared, view: View, Query(q): Query<PageQuery>) -> Response {
    let body = members_body(&console, &view, &q.page_token, None).await;
    console.render(&view, "Members", body)
}

async fn members_body(
    console: &Console,
    view: &View,
    page_token: &str,
    error: Option<(&str, &Failure)>,
) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let listed = console
        .membership_service()
        .list_memberships(view.request(rbac::ListMembershipsRequest {
            parent: parent.into(),
            page_size: PAGE_SIZE,
            page_token: page_token.to_string(),
            include_external: true,
            ..Default::default()
        }))
        .await?
        .into_inner();
    let manage = view.may(Permission::ORGANIZATION_MEMBERS_MANAGE);
    let roles = super::roles::all_roles(console, view, parent).await?;
    let role_name = |name: &str| {
        roles
            .iter()
            .find(|r| r.name == name)
            .map_or(name.to_string(), |r| r.display_name.clone())
    };
    let (members, external): (Vec<_>, Vec<_>) =
        listed.memberships.iter().partition(|m| !m.external);
    let error_for = |name: &str| error.filter(|(at, _)| *at == name).map(|(_, e)| e);
    Ok(html! {
        @if let Some((_, failure)) = error.filter(|(at, _)| !listed.memberships.iter().any(|m| m.name == *at)) {
            (crate::pages::failure(Some(failure)))
        }
        table.stack {
            thead { tr { th { "Name" } th { "Email" } th { "Roles" } @if manage { th { span.small { "Actions" } } } } }
            tbody {
                @for member in &members {
                    tr {
                        td { (member.user_display_name) }
                        td { (member.user_email) }
                        td { (member.roles.iter().map(|r| role_name(r)).collect::<Vec<_>>().join(", ")) }
                        @if manage {
                            td { (member_actions(view, member, &roles, error_for(&member.name))) }
                        }
                    }
                }
            }
        }
        @if !external.is_empty() {
            h2 { "External users" }
            p.small { "Not members: they hold grants on some projects only. Revoke their access on each project's page." }
            table.stack {
                thead { tr { th { "Name" } th { "Email" } th { "Kind" } } }
                tbody {
                    @for user in &external {
                        tr { td { (user.user_display_name) } td { (user.user_email) } td { span.badge.external { "external" } } }
                    }
                }
            }
        }
        (next_page("/console/members", &listed.next_page_token))
        @if view.may(Permission::ORGANIZATION_MEMBERS_INVITE) {
            p { a href="/console/invitations" { "Invite someone" } " to add a member." }
        }
    })
}

fn member_actions(
    view: &View,
    member: &rbac::Membership,
    roles: &[rbac::Role],
    error: Option<&Failure>,
) -> Markup {
    let key = member.name.rsplit('/').next().unwrap_or_default();
    let who = &member.user_email;
    // The owner role moves only by an ownership transfer (the service
    // refuses it here), so it is not offered, and the owner's roles are
    // not edited here.
    let owner = member.roles.iter().any(|r| r == OWNER);
    html! {
        (failure(error))
        @if owner {
            p.small { "The owner's roles change only by transferring the ownership." }
        } @else {
        details open[error.is_some()] {
            summary { "Change roles" span.sr-only { " of " (who) } }
            form method="post" action="/console/members/roles" aria-label={ "Roles of " (who) } {
                (csrf(view.csrf()))
                input type="hidden" name="name" value=(member.name);
                input type="hidden" name="etag" value=(member.etag);
                fieldset {
                    legend { "Roles of " (who) }
                    @for (i, role) in roles.iter().enumerate().filter(|(_, r)| r.name != OWNER) {
                        div.check {
                            input type="checkbox" id={ "member-" (key) "-role-" (i) } name="role" value=(role.name)
                                checked[member.roles.contains(&role.name)];
                            label for={ "member-" (key) "-role-" (i) } { (role.display_name) }
                        }
                    }
                }
                button type="submit" aria-label={ "Save roles of " (who) } { "Save roles" }
            }
        }
        }
        form method="post" action="/console/members/remove" {
            (csrf(view.csrf()))
            input type="hidden" name="name" value=(member.name);
            button.danger type="submit" aria-label={ "Remove " (who) } { "Remove" }
        }
    }
}

/// The built-in owner role.
pub(super) const OWNER: &str = tenantry_kit::names::BuiltInRole::Owner.name();

#[derive(Deserialize)]
struct RolesForm {
    name: String,
    #[serde(default)]
    etag: String,
    #[serde(default)]
    role: Vec<String>,
}

async fn change_roles(console: Shared, posted: Posted<RolesForm>) -> Response {
    let Posted { signed, form } = posted;
    let name = form.name.clone();
    let changed = console
        .membership_service()
        .update_membership(signed.request(rbac::UpdateMembershipRequest {
            membership: Some(rbac::Membership {
                name: form.name,
                etag: form.etag,
                roles: form.role,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["roles".into()],
            }),
        }))
        .await;
    after(&console, signed, &name, changed.map(drop)).await
}

async fn remove_member(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let name = form.name.clone();
    let removed = console
        .membership_service()
        .delete_membership(signed.request(rbac::DeleteMembershipRequest {
            name: form.name,
            ..Default::default()
        }))
        .await;
    after(&console, signed, &name, removed.map(drop)).await
}

async fn after(
    console: &Console,
    signed: Signed,
    member: &str,
    outcome: Result<(), tonic::Status>,
) -> Response {
    match outcome {
        Ok(()) => console.done(&signed, "/console/members"),
        Err(status) => {
            console
                .refused(signed, "Members", status.into(), async |view, failure| {
                    members_body(console, view, "", Some((member, failure))).await
                })
                .await
        }
    }
}
