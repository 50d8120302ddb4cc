//! The organization's members and their roles.

use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::overview::no_organization;
use super::{Console, PAGE_SIZE, PageQuery, Shared, View};
use crate::calls::Failure;
use crate::pages::next_page;

pub fn routes() -> Router<Arc<Console>> {
    Router::new().route("/console/members", get(members))
}

async fn members(console: Shared, view: View, Query(q): Query<PageQuery>) -> Response {
    let body = members_body(&console, &view, &q.page_token).await;
    console.render(&view, "Members", body)
}

async fn members_body(console: &Console, view: &View, page_token: &str) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let listed =
        rbac::membership_service_client::MembershipServiceClient::new(console.rbac.clone())
            .list_memberships(view.request(rbac::ListMembershipsRequest {
                parent: parent.into(),
                page_size: PAGE_SIZE,
                page_token: page_token.to_string(),
                ..Default::default()
            }))
            .await?
            .into_inner();
    Ok(html! {
        table {
            thead { tr { th { "Name" } th { "Email" } th { "Roles" } } }
            tbody {
                @for member in &listed.memberships {
                    tr { td { (member.user_display_name) } td { (member.user_email) } td { (member.roles.join(", ")) } }
                }
            }
        }
        (next_page("/console/members", &listed.next_page_token))
        @if view.may(Permission::ORGANIZATION_MEMBERS_INVITE) {
            p { a href="/console/invitations" { "Invite someone" } " to add a member." }
        }
    })
}
