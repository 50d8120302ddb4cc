//! Deleting the organization (softly: it can be restored until it is
//! purged) and restoring it.

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::post;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::organization::v1 as organization;

use super::{Console, Part, Refusal, failure_of, refused, when};
use crate::pages::csrf;
use crate::routes::{Posted, Shared, View};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/organization/delete", post(delete_organization))
        .route(
            "/console/organization/undelete",
            post(undelete_organization),
        )
}

/// The delete form, for whoever may delete the organization.
pub(super) fn delete(view: &View, org: &organization::Organization, error: Refusal) -> Markup {
    html! {
        @if view.may(Permission::ORGANIZATION_DELETE) {
            h2 { "Delete organization" }
            (failure_of(error, Part::Lifecycle))
            form.card method="post" action="/console/organization/delete" {
                (csrf(view.csrf()))
                input type="hidden" name="etag" value=(org.etag);
                p.small { "A deleted organization can be restored until it is purged. Its members cannot use it meanwhile." }
                div.check {
                    input #force type="checkbox" name="force" value="on";
                    label for="force" { "Also delete its sub-organizations, departments, teams and projects" }
                }
                button.danger type="submit" aria-label={ "Delete " (org.display_name) } { "Delete organization" }
            }
        }
    }
}

/// A deleted organization: when it goes for good, and the way back. Its
/// permissions left with it, so the service alone says who may restore it
/// (its owner, or an administrator of its parent).
pub(super) fn deleted(view: &View, org: &organization::Organization, error: Refusal) -> Markup {
    html! {
        h2 { "Deleted" }
        (failure_of(error, Part::Lifecycle))
        div.card role="status" {
            p { "This organization was deleted on " (when(org.delete_time.as_ref()))
                ". It will be purged on " (when(org.purge_time.as_ref())) "; until then it can be restored." }
            form method="post" action="/console/organization/undelete" {
                (csrf(view.csrf()))
                input type="hidden" name="etag" value=(org.etag);
                button type="submit" aria-label={ "Undelete " (org.display_name) } { "Undelete organization" }
            }
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    etag: String,
    force: Option<String>,
}

async fn delete_organization(console: Shared, posted: Posted<DeleteForm>) -> Response {
    let Posted { signed, form } = posted;
    let deleted = console
        .org_service()
        .delete_organization(signed.request(organization::DeleteOrganizationRequest {
            name: signed.tokens().organization.clone(),
            etag: form.etag,
            force: form.force.is_some(),
        }))
        .await;
    match deleted {
        Ok(_) => console.done(&signed, "/console/"),
        Err(status) => refused(&console, signed, Part::Lifecycle, status).await,
    }
}

#[derive(Deserialize)]
struct UndeleteForm {
    #[serde(default)]
    etag: String,
}

async fn undelete_organization(console: Shared, posted: Posted<UndeleteForm>) -> Response {
    let Posted { signed, form } = posted;
    let restored = console
        .org_service()
        .undelete_organization(signed.request(organization::UndeleteOrganizationRequest {
            name: signed.tokens().organization.clone(),
            etag: form.etag,
        }))
        .await;
    match restored {
        Ok(_) => console.done(&signed, "/console/"),
        Err(status) => refused(&console, signed, Part::Lifecycle, status).await,
    }
}
