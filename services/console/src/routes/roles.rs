//! The organization's roles: the permission matrix of every role, as the
//! rbac service lists them, and custom roles (create, edit, delete).

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::peer::PeerChannel;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::overview::no_organization;
use super::{Console, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, request_id};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/roles", get(roles).post(create_role))
        .route("/console/roles/edit", post(edit_role))
        .route("/console/roles/delete", post(delete_role))
}

fn role_service(console: &Console) -> rbac::role_service_client::RoleServiceClient<PeerChannel> {
    rbac::role_service_client::RoleServiceClient::new(console.rbac.clone())
}

/// Every role usable in `organization`, built-in first, then custom roles
/// in creation order (all pages: forms offer them all).
pub(super) async fn all_roles(
    console: &Console,
    view: &View,
    organization: &str,
) -> Result<Vec<rbac::Role>, Failure> {
    let mut roles = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = role_service(console)
            .list_roles(view.request(rbac::ListRolesRequest {
                parent: organization.into(),
                page_size: 1000,
                page_token,
                ..Default::default()
            }))
            .await?
            .into_inner();
        roles.extend(page.roles);
        if page.next_page_token.is_empty() {
            return Ok(roles);
        }
        page_token = page.next_page_token;
    }
}

async fn roles(console: Shared, view: View) -> Response {
    let body = roles_body(&console, &view, None).await;
    console.render(&view, "Roles", body)
}

/// Which form a failure belongs to: the create form, or one custom role's.
enum At<'a> {
    Create,
    Role(&'a str),
}

async fn roles_body(
    console: &Console,
    view: &View,
    error: Option<(At<'_>, &Failure)>,
) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let roles = all_roles(console, view, parent).await?;
    let manage = view.may(Permission::ORGANIZATION_MEMBERS_MANAGE);
    let create_error = match &error {
        Some((At::Create, failure)) => Some(*failure),
        _ => None,
    };
    let role_error = |name: &str| match &error {
        Some((At::Role(at), failure)) if *at == name => Some(*failure),
        _ => None,
    };
    let custom: Vec<&rbac::Role> = roles.iter().filter(|r| !r.built_in).collect();
    Ok(html! {
        p { "What each role may do. Built-in roles cannot change; custom roles hold the permissions you pick." }
        h2 #matrix { "Permission matrix" }
        (matrix(&roles))
        h2 { "Custom roles" }
        @if custom.is_empty() {
            p.empty { "No custom roles yet."
                @if manage { " Create one below (custom roles need a paid plan)." } }
        }
        @for role in &custom {
            (custom_role(view, role, &roles, manage, role_error(&role.name)))
        }
        @if manage {
            h2 { "Create a custom role" }
            (failure(create_error))
            form.card method="post" action="/console/roles" aria-label="Create a custom role" {
                (csrf(view.csrf()))
                (request_id())
                (role_fields("new", None, create_error))
                button type="submit" { "Create role" }
            }
        }
    })
}

/// The permission matrix: a row per permission (its words from the
/// catalog), a column per role; what a role holds is what the rbac
/// service lists, nothing here is assumed.
fn matrix(roles: &[rbac::Role]) -> Markup {
    let mut rows: Vec<(String, &str)> = Permission::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), p.description()))
        .collect();
    // Permissions of registered types that custom roles name, after the
    // built-in ones.
    for role in roles {
        for permission in &role.permissions {
            if !rows.iter().any(|(p, _)| p == permission) {
                rows.push((permission.clone(), ""));
            }
        }
    }
    html! {
        div.scroll {
            table.matrix {
                caption.small { "✓ marks a permission the role holds." }
                thead {
                    tr {
                        th scope="col" { "Permission" }
                        @for role in roles {
                            th scope="col" {
                                (role.display_name)
                                @if role.built_in { br; span.badge { "built-in" } }
                            }
                        }
                    }
                }
                tbody {
                    @for (permission, description) in &rows {
                        tr {
                            th scope="row" {
                                code { (permission) }
                                @if !description.is_empty() { br; span.small { (description) } }
                            }
                            @for role in roles {
                                @if role.permissions.iter().any(|p| p == permission) {
                                    td.yes { span aria-hidden="true" { "✓" } span.sr-only { (role.display_name) " has " (permission) } }
                                } @else {
                                    td { span.sr-only { (role.display_name) " lacks " (permission) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn custom_role(
    view: &View,
    role: &rbac::Role,
    roles: &[rbac::Role],
    manage: bool,
    error: Option<&Failure>,
) -> Markup {
    let key = role.name.rsplit('/').next().unwrap_or_default();
    html! {
        section.card aria-label={ "Custom role " (role.display_name) } {
            h3 { (role.display_name) }
            @if !role.description.is_empty() { p { (role.description) } }
            p.small { (role.member_count) " member(s) hold this role." }
            (failure(error))
            @if manage {
                details open[error.is_some()] {
                    summary { "Edit " (role.display_name) }
                    form.card method="post" action="/console/roles/edit" aria-label={ "Edit " (role.display_name) } {
                        (csrf(view.csrf()))
                        input type="hidden" name="name" value=(role.name);
                        input type="hidden" name="etag" value=(role.etag);
                        (role_fields(key, Some(role), error))
                        button type="submit" aria-label={ "Save " (role.display_name) } { "Save role" }
                    }
                }
                form.card method="post" action="/console/roles/delete" aria-label={ "Delete " (role.display_name) } {
                    (csrf(view.csrf()))
                    input type="hidden" name="name" value=(role.name);
                    div.field {
                        label for={ "reassign-" (key) } { "Give its holders instead (needed while anyone holds it)" }
                        select id={ "reassign-" (key) } name="reassign_to" {
                            option value="" { "Nobody holds it" }
                            @for other in roles.iter().filter(|r| r.name != role.name) {
                                option value=(other.name) { (other.display_name) }
                            }
                        }
                    }
                    button.danger type="submit" aria-label={ "Delete role " (role.display_name) } { "Delete role" }
                }
            }
        }
    }
}

/// Name, description and a checkbox per permission; `key` keeps the ids
/// of one role's form apart from another's.
fn role_fields(key: &str, role: Option<&rbac::Role>, error: Option<&Failure>) -> Markup {
    let held = |p: &Permission| role.is_some_and(|r| r.permissions.iter().any(|h| p.as_str() == h));
    let field_error = |field: &str| {
        error.and_then(|e| {
            e.fields
                .iter()
                .find(|(f, _)| f.ends_with(field))
                .map(|(_, why)| why.clone())
        })
    };
    html! {
        div.field {
            label for={ "role-name-" (key) } { "Role name" @if let Some(r) = role { span.sr-only { " of " (r.display_name) } } }
            input id={ "role-name-" (key) } name="display_name" required maxlength="100"
                value=[role.map(|r| &r.display_name)];
            @if let Some(why) = field_error("display_name") { span.field-error { (why) } }
        }
        div.field {
            label for={ "role-description-" (key) } { "Description (optional)" @if let Some(r) = role { span.sr-only { " of " (r.display_name) } } }
            input id={ "role-description-" (key) } name="description" maxlength="1000"
                value=[role.map(|r| &r.description)];
        }
        fieldset {
            legend { "Permissions" @if let Some(r) = role { span.sr-only { " of " (r.display_name) } } }
            @if let Some(why) = field_error("permissions") { span.field-error { (why) } }
            @for (i, permission) in Permission::ALL.iter().enumerate() {
                div.check {
                    input type="checkbox" id={ "perm-" (key) "-" (i) } name="permission"
                        value=(permission.as_str()) checked[held(permission)];
                    label for={ "perm-" (key) "-" (i) } { code { (permission.as_str()) } " " span.small { (permission.description()) } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    etag: String,
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permission: Vec<String>,
    #[serde(default)]
    request_id: String,
}

async fn create_role(console: Shared, posted: Posted<RoleForm>) -> Response {
    let Posted { signed, form } = posted;
    let created = role_service(&console)
        .create_role(signed.request(rbac::CreateRoleRequest {
            parent: signed.tokens().organization.clone(),
            role: Some(rbac::Role {
                display_name: form.display_name,
                description: form.description,
                permissions: form.permission,
                ..Default::default()
            }),
            request_id: form.request_id,
        }))
        .await;
    after(&console, signed, None, created.map(drop)).await
}

async fn edit_role(console: Shared, posted: Posted<RoleForm>) -> Response {
    let Posted { signed, form } = posted;
    let name = form.name.clone();
    let edited = role_service(&console)
        .update_role(signed.request(rbac::UpdateRoleRequest {
            role: Some(rbac::Role {
                name: form.name,
                etag: form.etag,
                display_name: form.display_name,
                description: form.description,
                permissions: form.permission,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    "display_name".into(),
                    "description".into(),
                    "permissions".into(),
                ],
            }),
        }))
        .await;
    after(&console, signed, Some(&name), edited.map(drop)).await
}

#[derive(Deserialize)]
struct DeleteRoleForm {
    name: String,
    #[serde(default)]
    reassign_to: String,
}

async fn delete_role(console: Shared, posted: Posted<DeleteRoleForm>) -> Response {
    let Posted { signed, form } = posted;
    let name = form.name.clone();
    let deleted = role_service(&console)
        .delete_role(signed.request(rbac::DeleteRoleRequest {
            name: form.name,
            reassign_to: form.reassign_to,
            ..Default::default()
        }))
        .await;
    after(&console, signed, Some(&name), deleted.map(drop)).await
}

async fn after(
    console: &Console,
    signed: Signed,
    role: Option<&str>,
    outcome: Result<(), tonic::Status>,
) -> Response {
    match outcome {
        Ok(()) => console.done(&signed, "/console/roles"),
        Err(status) => {
            console
                .refused(signed, "Roles", status.into(), async |view, failure| {
                    let at = role.map_or(At::Create, At::Role);
                    roles_body(console, view, Some((at, failure))).await
                })
                .await
        }
    }
}
