//! The overview of the active organization.

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::organization::v1 as organization;

use super::{Console, Shared, View};
use crate::calls::Failure;
use crate::pages::csrf;

pub fn routes() -> Router<Arc<Console>> {
    Router::new().route("/console/", get(overview))
}

/// The pages of a user who belongs to no organization yet.
pub fn no_organization() -> Markup {
    html! {
        p.empty { "You belong to no organization yet. Accept an invitation from the mail \
                   you were sent, or ask an administrator to invite you." }
    }
}

async fn overview(console: Shared, view: View) -> Response {
    let body = overview_body(&console, &view).await;
    console.render(&view, "Overview", body)
}

async fn overview_body(console: &Console, view: &View) -> Result<Markup, Failure> {
    let Some(name) = view.organization() else {
        return Ok(no_organization());
    };
    let org = organization::organization_service_client::OrganizationServiceClient::new(
        console.organization.clone(),
    )
    .get_organization(view.request(organization::GetOrganizationRequest { name: name.into() }))
    .await?
    .into_inner()
    .organization
    .unwrap_or_default();
    // The plan is billing's to tell; a member who may not read it sees
    // the rest of the overview.
    let plan = billing::subscription_service_client::SubscriptionServiceClient::new(
        console.billing.clone(),
    )
    .get_subscription(view.request(billing::GetSubscriptionRequest {
        name: format!("{name}/subscription"),
    }))
    .await
    .ok()
    .and_then(|s| s.into_inner().subscription)
    .map(|s| s.plan);
    Ok(html! {
        div.card {
            dl {
                dt { "Name" } dd { (org.display_name) }
                dt { "Slug" } dd { code { (org.slug) } }
                dt { "Resource name" } dd { code { (org.name) } }
                dt { "Plan" } dd { (plan.unwrap_or_else(|| "not visible to you".into())) }
            }
        }
        p { "Next: " a href="/console/projects" { "create a project" } " or " a href="/console/invitations" { "invite a teammate" } "." }
        form method="post" action="/console/sign-out-everywhere" {
            (csrf(view.csrf()))
            button.secondary type="submit" { "Sign out everywhere" }
        }
    })
}
