//! The overview of the active organization: what it is, its settings, its
//! deletion and its ownership. Each part's form lives in its own module;
//! a refused form re-renders this whole page with the failure next to it.

mod lifecycle;
mod ownership;
mod settings;

use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::{Console, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/", get(overview))
        .merge(settings::routes())
        .merge(lifecycle::routes())
        .merge(ownership::routes())
}

/// The pages of a user who belongs to no organization yet.
pub fn no_organization() -> Markup {
    html! {
        p.empty { "You belong to no organization yet. Accept an invitation from the mail \
                   you were sent, or ask an administrator to invite you." }
    }
}

/// `?transfer=`: the ownership transfer just started (its name is no
/// secret; the token is only in the target's mail).
#[derive(Deserialize, Default)]
struct OverviewQuery {
    #[serde(default)]
    transfer: String,
}

/// Which of the page's forms a failure belongs next to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Settings,
    Lifecycle,
    Ownership,
}

/// A refused form of this page: the part it belongs to and why.
type Refusal<'a> = Option<(Part, &'a Failure)>;

fn failure_of(error: Refusal, part: Part) -> Markup {
    failure(error.filter(|(p, _)| *p == part).map(|(_, f)| f))
}

async fn overview(console: Shared, view: View, Query(q): Query<OverviewQuery>) -> Response {
    let body = overview_body(&console, &view, &q.transfer, None).await;
    console.render(&view, "Overview", body)
}

async fn overview_body(
    console: &Console,
    view: &View,
    transfer: &str,
    error: Refusal<'_>,
) -> Result<Markup, Failure> {
    let Some(name) = view.organization() else {
        return Ok(no_organization());
    };
    let org = console
        .org_service()
        .get_organization(view.request(organization::GetOrganizationRequest { name: name.into() }))
        .await?
        .into_inner()
        .organization
        .unwrap_or_default();
    let members = members(console, view).await;
    if org.delete_time.is_some() {
        return Ok(html! {
            (about(&org, None, &members))
            (lifecycle::deleted(view, &org, error))
        });
    }
    let plan = plan(console, view, name).await;
    Ok(html! {
        (about(&org, plan, &members))
        p.small { "Your user id: " code { (view.nav.user) } }
        (settings::section(view, &org, error))
        (ownership::section(console, view, &org, &members, transfer, error).await)
        (lifecycle::delete(view, &org, error))
        h2 { "Next" }
        p { "Next: " a href="/console/organization" { "see the organization tree" } ", "
            a href="/console/projects" { "create a project" } " or "
            a href="/console/invitations" { "invite a teammate" } "." }
        form method="post" action="/console/sign-out-everywhere" {
            (csrf(view.csrf()))
            button.secondary type="submit" { "Sign out everywhere" }
        }
    })
}

/// The plan is billing's to tell; a member who may not read it sees the
/// rest of the overview.
async fn plan(console: &Console, view: &View, name: &str) -> Option<String> {
    console
        .subscription_service()
        .get_subscription(view.request(billing::GetSubscriptionRequest {
            name: format!("{name}/subscription"),
        }))
        .await
        .ok()
        .and_then(|s| s.into_inner().subscription)
        .map(|s| s.plan)
}

/// The first members of the organization (to name the owner and to pick a
/// new one), or none for a user who may not read them.
async fn members(console: &Console, view: &View) -> Vec<rbac::Membership> {
    if !view.may(Permission::ORGANIZATION_MEMBERS_READ) {
        return Vec::new();
    }
    list_members(console, &view.signed).await
}

/// Up to 200 members of the active organization, for pickers.
pub(super) async fn list_members(console: &Console, signed: &Signed) -> Vec<rbac::Membership> {
    let Some(parent) = signed.organization() else {
        return Vec::new();
    };
    console
        .membership_service()
        .list_memberships(signed.request(rbac::ListMembershipsRequest {
            parent: parent.into(),
            page_size: 200,
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner().memberships)
        .unwrap_or_default()
}

fn about(
    org: &organization::Organization,
    plan: Option<String>,
    members: &[rbac::Membership],
) -> Markup {
    let kind = match org.kind() {
        organization::OrganizationKind::Department => "Department",
        _ if org.parent.is_empty() => "Organization",
        _ => "Sub-organization",
    };
    html! {
        h2 { "Organization" }
        div.card {
            dl {
                dt { "Name" } dd { (org.display_name) }
                dt { "Slug" } dd { code { (org.slug) } }
                dt { "Kind" } dd { (kind) }
                dt { "Owner" } dd { (person(&org.owner, members)) }
                dt { "Resource name" } dd { code { (org.name) } }
                @if org.delete_time.is_none() {
                    dt { "Plan" } dd { (plan.unwrap_or_else(|| "not visible to you".into())) }
                }
            }
        }
    }
}

/// A user by email when the member list names them, else by resource name.
pub(super) fn person(user: &str, members: &[rbac::Membership]) -> String {
    members
        .iter()
        .find(|m| m.user == user)
        .map(|m| m.user_email.clone())
        .unwrap_or_else(|| user.to_string())
}

/// A timestamp as people read it.
pub(super) fn when(time: Option<&prost_types::Timestamp>) -> String {
    time.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Re-renders the overview after a refused form of `part`.
async fn refused(console: &Console, signed: Signed, part: Part, status: tonic::Status) -> Response {
    console
        .refused(signed, "Overview", status.into(), async |view, failure| {
            overview_body(console, view, "", Some((part, failure))).await
        })
        .await
}
