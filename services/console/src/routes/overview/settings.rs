//! The organization's name and settings: a form for whoever may manage
//! them, the values read-only for everyone else.

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::post;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::organization::v1 as organization;

use super::{Console, Part, Refusal, failure_of, refused};
use crate::calls::Failure;
use crate::pages::csrf;
use crate::routes::{Posted, Shared, View};

pub fn routes() -> Router<Arc<Console>> {
    Router::new().route("/console/settings", post(update))
}

/// The fields the form sends, by their paths in the update mask.
const MASK: &[&str] = &[
    "display_name",
    "settings.allowed_email_domains",
    "settings.departments_enabled",
    "settings.require_mfa",
    "settings.project_visibility",
];

pub(super) fn section(view: &View, org: &organization::Organization, error: Refusal) -> Markup {
    let settings = org.settings.clone().unwrap_or_default();
    let departments = settings.departments_enabled.unwrap_or(true);
    let granted = settings.project_visibility() == organization::ProjectVisibility::Granted;
    let fields = error.filter(|(p, _)| *p == Part::Settings).map(|(_, f)| f);
    html! {
        h2 { "Settings" }
        (failure_of(error, Part::Settings))
        @if view.may(Permission::ORGANIZATION_SETTINGS_MANAGE) {
            form.card method="post" action="/console/settings" {
                (csrf(view.csrf()))
                input type="hidden" name="etag" value=(org.etag);
                div.field {
                    label for="display_name" { "Organization name" }
                    input #display_name name="display_name" value=(org.display_name) required;
                    (field_error(fields, "organization.display_name"))
                }
                div.field {
                    label for="allowed_email_domains" { "Allowed email domains" }
                    textarea #allowed_email_domains name="allowed_email_domains" rows="3" aria-describedby="allowed_email_domains_help" {
                        (settings.allowed_email_domains.join("\n"))
                    }
                    span.small #allowed_email_domains_help { "One domain a line, such as example.com. Empty: invitations may go to any address." }
                    (field_error(fields, "organization.settings.allowed_email_domains"))
                }
                div.check {
                    input #departments_enabled type="checkbox" name="departments_enabled" value="on" checked[departments];
                    label for="departments_enabled" { "Allow departments" }
                }
                div.check {
                    input #require_mfa type="checkbox" name="require_mfa" value="on" checked[settings.require_mfa] aria-describedby="require_mfa_help";
                    label for="require_mfa" { "Require two-factor authentication for every member" }
                }
                span.small #require_mfa_help { "A member without it can then only enrol it before using this organization." }
                @if !org.parent.is_empty() {
                    input type="hidden" name="child" value="on";
                    div.check {
                        input #inherit_access type="checkbox" name="inherit_access" value="on" checked[org.inherit_access.unwrap_or(true)];
                        label for="inherit_access" { "Roles granted on parent organizations apply here too" }
                    }
                }
                fieldset {
                    legend { "Projects members see" }
                    div.check {
                        input #visibility_all type="radio" name="project_visibility" value="all" checked[!granted];
                        label for="visibility_all" { "Every project" }
                    }
                    div.check {
                        input #visibility_granted type="radio" name="project_visibility" value="granted" checked[granted];
                        label for="visibility_granted" { "Only projects granted to them" }
                    }
                    (field_error(fields, "organization.settings.project_visibility"))
                }
                button type="submit" { "Save settings" }
            }
        } @else {
            div.card {
                dl {
                    dt { "Allowed email domains" }
                    dd { @if settings.allowed_email_domains.is_empty() { "Any" } @else { (settings.allowed_email_domains.join(", ")) } }
                    dt { "Departments" } dd { (if departments { "Allowed" } else { "Not allowed" }) }
                    dt { "Two-factor authentication" } dd { (if settings.require_mfa { "Required for every member" } else { "Not required" }) }
                    dt { "Projects members see" } dd { (if granted { "Only projects granted to them" } else { "Every project" }) }
                    @if !org.parent.is_empty() {
                        dt { "Access from parent organizations" } dd { (if org.inherit_access.unwrap_or(true) { "Inherited" } else { "Not inherited" }) }
                    }
                }
                p.small { "Only an administrator may change these." }
            }
        }
    }
}

/// The words the service said about one field (or an entry of it, such
/// as `field[2]`), next to it.
pub(crate) fn field_error(failure: Option<&Failure>, field: &str) -> Markup {
    let about = |name: &str| {
        name.strip_prefix(field)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
    };
    html! {
        @if let Some(failure) = failure {
            @for (name, why) in &failure.fields {
                @if about(name) { span.field-error { (why) } }
            }
        }
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    etag: String,
    display_name: String,
    #[serde(default)]
    allowed_email_domains: String,
    departments_enabled: Option<String>,
    require_mfa: Option<String>,
    #[serde(default)]
    project_visibility: String,
    /// Set when the organization has a parent: the form then carries
    /// `inherit_access` (a root has no ancestors to inherit from).
    child: Option<String>,
    inherit_access: Option<String>,
}

async fn update(console: Shared, posted: Posted<SettingsForm>) -> Response {
    let Posted { signed, form } = posted;
    let visibility = match form.project_visibility.as_str() {
        "granted" => organization::ProjectVisibility::Granted,
        "all" => organization::ProjectVisibility::AllMembers,
        // Not sent: the default (the parent's, or the installation's).
        _ => organization::ProjectVisibility::Unspecified,
    };
    let domains = form
        .allowed_email_domains
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    let mut paths: Vec<String> = MASK.iter().map(|p| p.to_string()).collect();
    if form.child.is_some() {
        paths.push("inherit_access".into());
    }
    let updated = console
        .org_service()
        .update_organization(signed.request(organization::UpdateOrganizationRequest {
            organization: Some(organization::Organization {
                name: signed.tokens().organization.clone(),
                display_name: form.display_name,
                inherit_access: Some(form.inherit_access.is_some()),
                etag: form.etag,
                settings: Some(organization::OrganizationSettings {
                    departments_enabled: Some(form.departments_enabled.is_some()),
                    require_mfa: form.require_mfa.is_some(),
                    allowed_email_domains: domains,
                    project_visibility: visibility as i32,
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        }))
        .await;
    match updated {
        Ok(_) => console.done(&signed, "/console/"),
        Err(status) => refused(&console, signed, Part::Settings, status).await,
    }
}
