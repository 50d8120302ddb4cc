//! One project's page: its environments, who has access to it (users,
//! teams, roles, external users) and at what level, and deleting it once
//! nobody does.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::peer::PeerChannel;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1::ProjectAccessLevel;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::overview::no_organization;
use super::roles::all_roles;
use super::{Console, NameForm, PAGE_SIZE, PageQuery, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, next_page, request_id};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/projects/{id}", get(project))
        .route("/console/projects/{id}/grants", post(grant))
        .route("/console/projects/{id}/grants/revoke", post(revoke))
        .route("/console/projects/{id}/grants/level", post(change_level))
        .route("/console/projects/{id}/external", post(invite_external))
        .route(
            "/console/projects/{id}/environments",
            post(create_environment),
        )
        .route(
            "/console/projects/{id}/environments/delete",
            post(delete_environment),
        )
        .route("/console/projects/{id}/delete", post(delete_project))
}

// Clients as free functions, not methods of `Console`: every page adds its
// own, and two methods of one name anywhere in the crate collide.
fn grants(
    console: &Console,
) -> rbac::project_grant_service_client::ProjectGrantServiceClient<PeerChannel> {
    rbac::project_grant_service_client::ProjectGrantServiceClient::new(console.rbac.clone())
}

/// The organization's teams (the first 200: enough for a form's choices).
pub(super) async fn team_choices(
    console: &Console,
    view: &View,
    parent: &str,
) -> Result<Vec<organization::Team>, Failure> {
    Ok(console
        .team_service()
        .list_teams(view.request(organization::ListTeamsRequest {
            parent: parent.into(),
            page_size: 200,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .teams)
}

/// The levels a grant gives, lowest first.
pub const LEVELS: [(ProjectAccessLevel, &str); 3] = [
    (ProjectAccessLevel::Viewer, "Viewer"),
    (ProjectAccessLevel::Contributor, "Contributor"),
    (ProjectAccessLevel::Admin, "Admin"),
];

fn level_label(level: i32) -> &'static str {
    LEVELS
        .iter()
        .find(|(l, _)| *l as i32 == level)
        .map_or("Unknown", |(_, label)| label)
}

/// A select of the access levels, named `level`, with the label `label`.
pub fn level_select(id: &str, label: &str) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name="level" {
                @for (level, text) in LEVELS { option value=(level.as_str_name()) { (text) } }
            }
        }
    }
}

pub fn level_of(name: &str) -> i32 {
    ProjectAccessLevel::from_str_name(name).map_or(0, |l| l as i32)
}

/// A project's id from the page's path: letters, digits, `-` and `_`
/// only (anything else is answered 400 before a handler runs), so it is
/// safe in a resource name and in a redirect.
struct ProjectId(String);

impl<'de> Deserialize<'de> for ProjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ProjectId, D::Error> {
        let id = String::deserialize(d)?;
        let fine = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match fine {
            true => Ok(ProjectId(id)),
            false => Err(serde::de::Error::custom("not a project id")),
        }
    }
}

/// Which form of the page a failure belongs to, so it shows next to it.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Environment,
    Grant,
    External,
    Delete,
}

async fn project(
    console: Shared,
    view: View,
    Path(ProjectId(id)): Path<ProjectId>,
    Query(q): Query<PageQuery>,
) -> Response {
    let body = project_body(&console, &view, &id, &q.page_token, None).await;
    console.render(&view, "Project", body)
}

fn project_name(organization: &str, id: &str) -> String {
    format!("{organization}/projects/{id}")
}

async fn project_body(
    console: &Console,
    view: &View,
    id: &str,
    page_token: &str,
    error: Option<(Form, &Failure)>,
) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let name = project_name(parent, id);
    let project = console
        .project_service()
        .get_project(view.request(organization::GetProjectRequest { name: name.clone() }))
        .await?
        .into_inner()
        .project
        .unwrap_or_default();
    let wanted = [
        Permission::PROJECT_MANAGE,
        Permission::PROJECT_GRANTS_MANAGE,
        Permission::PROJECT_DELETE,
    ];
    let checks: Vec<_> = wanted.iter().map(|p| ("project", id, *p)).collect();
    let held = console.may_on(view, &checks).await;
    let may: Vec<Permission> = wanted
        .into_iter()
        .zip(held)
        .filter_map(|(p, held)| held.then_some(p))
        .collect();
    let grants = grants(console)
        .list_project_grants(view.request(rbac::ListProjectGrantsRequest {
            parent: name.clone(),
            page_size: PAGE_SIZE,
            page_token: page_token.to_string(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let error_at = |form: Form| error.filter(|(f, _)| *f == form).map(|(_, e)| e);
    let path = format!("/console/projects/{id}");
    Ok(html! {
        p { "Project " strong { (project.display_name) } " · slug " code { (project.slug) } }
        @if !project.description.is_empty() { p { (project.description) } }
        h2 { "Environments" }
        (environments(console, view, &path, &name, may.contains(&Permission::PROJECT_MANAGE), error_at(Form::Environment)).await?)
        h2 { "Access" }
        p.small { "Members of the organization are listed plainly; external users (not members, access to granted projects only) are marked " span.badge.external { "external" } "." }
        @if grants.project_grants.is_empty() {
            p.empty { "Nobody has been granted this project yet."
                @if may.contains(&Permission::PROJECT_GRANTS_MANAGE) { " Grant access with the form below." } }
        } @else {
            (grant_table(view, &path, &grants.project_grants, may.contains(&Permission::PROJECT_GRANTS_MANAGE)))
        }
        (next_page(&path, &grants.next_page_token))
        @if may.contains(&Permission::PROJECT_GRANTS_MANAGE) {
            (grant_form(console, view, &path, parent, error_at(Form::Grant)).await?)
            (external_form(view, &path, error_at(Form::External)))
        }
        @if may.contains(&Permission::PROJECT_DELETE) {
            h2 { "Delete project" }
            (failure(error_at(Form::Delete)))
            @let granted = !grants.project_grants.is_empty();
            form.card method="post" action={ (path) "/delete" } {
                (csrf(view.csrf()))
                @if granted {
                    p #delete-why { "This project cannot be deleted while anyone holds a grant on it: revoke every grant above first." }
                    button.danger type="submit" disabled aria-describedby="delete-why" { "Delete project" }
                } @else {
                    p { "Deleting the project removes it from the organization's list; it can be restored for a while before it is purged." }
                    button.danger type="submit" { "Delete project" }
                }
            }
        }
        p { a href="/console/projects" { "Back to projects" } }
    })
}

fn subject(grant: &rbac::ProjectGrant) -> (&'static str, String) {
    use rbac::project_grant::Subject;
    let shown = |fallback: &str| match grant.subject_display_name.is_empty() {
        true => fallback.to_string(),
        false => grant.subject_display_name.clone(),
    };
    match &grant.subject {
        Some(Subject::User(user)) => match grant.user_email.is_empty() {
            true => ("User", shown(user)),
            false => ("User", grant.user_email.clone()),
        },
        Some(Subject::Team(team)) => ("Team", shown(team)),
        Some(Subject::Role(role)) => ("Role", shown(role)),
        None => ("Unknown", shown("")),
    }
}

fn grant_table(view: &View, path: &str, grants: &[rbac::ProjectGrant], manage: bool) -> Markup {
    html! {
        table.stack {
            thead { tr { th { "Who" } th { "Kind" } th { "Access" } @if manage { th { span.small { "Actions" } } } } }
            tbody {
                @for grant in grants {
                    @let (kind, who) = subject(grant);
                    tr {
                        td {
                            (who)
                            @if grant.external { " " span.badge.external { "external" } }
                            @else if kind == "User" { " " span.badge.member { "member" } }
                        }
                        td { (kind) }
                        td {
                            @if manage {
                                @let key = grant.name.rsplit('/').next().unwrap_or_default();
                                form.inline method="post" action={ (path) "/grants/level" } {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(grant.name);
                                    input type="hidden" name="etag" value=(grant.etag);
                                    label.sr-only for={ "level-" (key) } { "Access level of " (who) }
                                    select id={ "level-" (key) } name="level" {
                                        @for (level, text) in LEVELS {
                                            option value=(level.as_str_name()) selected[level as i32 == grant.access_level] { (text) }
                                        }
                                    }
                                    " "
                                    button.secondary type="submit" aria-label={ "Change access of " (who) } { "Change" }
                                }
                            } @else {
                                (level_label(grant.access_level))
                            }
                        }
                        @if manage {
                            td {
                                form method="post" action={ (path) "/grants/revoke" } {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(grant.name);
                                    button.danger type="submit" aria-label={ "Revoke access of " (who) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Who may be granted: the organization's members (by email), its teams
/// and its roles, in one select (the first page of each; enough for the
/// console's sizes).
async fn grant_form(
    console: &Console,
    view: &View,
    path: &str,
    parent: &str,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    // A project admin who is not an organization admin may not list the
    // members, teams or roles: the form then offers what they may see.
    let members = console
        .membership_service()
        .list_memberships(view.request(rbac::ListMembershipsRequest {
            parent: parent.into(),
            page_size: 200,
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner().memberships)
        .unwrap_or_default();
    let teams = team_choices(console, view, parent)
        .await
        .unwrap_or_default();
    let roles = all_roles(console, view, parent).await.unwrap_or_default();
    Ok(html! {
        h2 { "Grant access" }
        (failure(error))
        form.card method="post" action={ (path) "/grants" } aria-label="Grant access" {
            (csrf(view.csrf()))
            (request_id())
            div.field {
                label for="subject" { "Who" }
                select #subject name="subject" required {
                    @if !members.is_empty() { optgroup label="Members" {
                        @for m in &members { option value={ "user:" (m.user) } { (m.user_email) } }
                    } }
                    @if !teams.is_empty() {
                        optgroup label="Teams" {
                            @for t in &teams { option value={ "team:" (t.name) } { (t.display_name) } }
                        }
                    }
                    @if !roles.is_empty() { optgroup label="Everyone holding the role" {
                        @for r in &roles { option value={ "role:" (r.name) } { (r.display_name) } }
                    } }
                }
            }
            (level_select("level", "Access level"))
            button type="submit" { "Grant access" }
        }
    })
}

fn external_form(view: &View, path: &str, error: Option<&Failure>) -> Markup {
    html! {
        h2 { "Invite an external user" }
        p.small { "Someone outside the organization gets this project only, with no membership and no seat, once they accept the invitation mailed to them." }
        (failure(error))
        form.card method="post" action={ (path) "/external" } aria-label="Invite an external user" {
            (csrf(view.csrf()))
            (request_id())
            div.field { label for="external-email" { "External user's email" } input #external-email type="email" name="email" required; }
            (level_select("external-level", "Their access level"))
            button type="submit" { "Invite external user" }
        }
    }
}

async fn environments(
    console: &Console,
    view: &View,
    path: &str,
    project: &str,
    manage: bool,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    let listed = console
        .project_service()
        .list_environments(view.request(organization::ListEnvironmentsRequest {
            parent: project.into(),
            page_size: 100,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(html! {
        (failure(error))
        @if listed.environments.is_empty() {
            p.empty { "No environments." @if manage { " Add one with the form below." } }
        } @else {
            table.stack {
                thead { tr { th { "Name" } th { "Slug" } @if manage { th { span.small { "Actions" } } } } }
                tbody {
                    @for environment in &listed.environments {
                        tr {
                            td { (environment.display_name) }
                            td { code { (environment.slug) } }
                            @if manage {
                                td {
                                    form method="post" action={ (path) "/environments/delete" } {
                                        (csrf(view.csrf()))
                                        input type="hidden" name="name" value=(environment.name);
                                        button.danger type="submit" aria-label={ "Delete environment " (environment.slug) } { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !listed.next_page_token.is_empty() { p.small { "Only the first 100 environments are shown." } }
        @if manage {
            form.card method="post" action={ (path) "/environments" } aria-label="Add an environment" {
                (csrf(view.csrf()))
                (request_id())
                div.field { label for="environment-slug" { "Environment slug" } input #environment-slug name="slug" required placeholder="staging"; }
                div.field { label for="environment-name" { "Environment name (optional)" } input #environment-name name="display_name"; }
                button type="submit" { "Add environment" }
            }
        }
    })
}

#[derive(Deserialize)]
struct GrantForm {
    subject: String,
    level: String,
    #[serde(default)]
    request_id: String,
}

async fn grant(
    console: Shared,
    Path(ProjectId(id)): Path<ProjectId>,
    posted: Posted<GrantForm>,
) -> Response {
    use rbac::project_grant::Subject;
    let Posted { signed, form } = posted;
    let subject = match form.subject.split_once(':') {
        Some(("user", user)) => Some(Subject::User(user.into())),
        Some(("team", team)) => Some(Subject::Team(team.into())),
        Some(("role", role)) => Some(Subject::Role(role.into())),
        _ => None,
    };
    let parent = project_name(&signed.tokens().organization, &id);
    let granted = grants(&console)
        .create_project_grant(signed.request(rbac::CreateProjectGrantRequest {
            parent,
            project_grant: Some(rbac::ProjectGrant {
                subject,
                access_level: level_of(&form.level),
                ..Default::default()
            }),
            request_id: form.request_id,
        }))
        .await;
    after(&console, signed, &id, Form::Grant, granted.map(drop)).await
}

async fn revoke(
    console: Shared,
    Path(ProjectId(id)): Path<ProjectId>,
    posted: Posted<NameForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let revoked = grants(&console)
        .delete_project_grant(signed.request(rbac::DeleteProjectGrantRequest {
            name: form.name,
            ..Default::default()
        }))
        .await;
    after(&console, signed, &id, Form::Grant, revoked.map(drop)).await
}

#[derive(Deserialize)]
struct LevelForm {
    name: String,
    #[serde(default)]
    etag: String,
    level: String,
}

async fn change_level(
    console: Shared,
    Path(ProjectId(id)): Path<ProjectId>,
    posted: Posted<LevelForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let changed = grants(&console)
        .update_project_grant(signed.request(rbac::UpdateProjectGrantRequest {
            project_grant: Some(rbac::ProjectGrant {
                name: form.name,
                etag: form.etag,
                access_level: level_of(&form.level),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["access_level".into()],
            }),
        }))
        .await;
    after(&console, signed, &id, Form::Grant, changed.map(drop)).await
}

#[derive(Deserialize)]
struct ExternalForm {
    email: String,
    level: String,
    #[serde(default)]
    request_id: String,
}

async fn invite_external(
    console: Shared,
    Path(ProjectId(id)): Path<ProjectId>,
    posted: Posted<ExternalForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let organization = signed.tokens().organization.clone();
    let invited = console
        .invitation_service()
        .create_invitation(signed.request(rbac::CreateInvitationRequest {
            parent: organization.clone(),
            invitation: Some(rbac::Invitation {
                email: form.email,
                external: true,
                projects: vec![rbac::InvitationProject {
                    project: project_name(&organization, &id),
                    access_level: level_of(&form.level),
                }],
                ..Default::default()
            }),
            request_id: form.request_id,
            ..Default::default()
        }))
        .await;
    after(&console, signed, &id, Form::External, invited.map(drop)).await
}

#[derive(Deserialize)]
struct EnvironmentForm {
    slug: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    request_id: String,
}

async fn create_environment(
    console: Shared,
    Path(ProjectId(id)): Path<ProjectId>,
    posted: Posted<EnvironmentForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let created = console
        .project_service()
        .create_environment(signed.request(organization::CreateEnvironmentRequest {
            parent: project_name(&signed.tokens().organization, &id),
            environment: Some(organization::Environment {
                slug: form.slug,
                display_name: form.display_name,
                ..Default::default()
            }),
            request_id: form.request_id,
        }))
        .await;
    after(&console, signed, &id, Form::Environment, created.map(drop)).await
}

async fn delete_environment(
    console: Shared,
    Path(ProjectId(id)): Path<ProjectId>,
    posted: Posted<NameForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let deleted = console
        .project_service()
        .delete_environment(signed.request(organization::DeleteEnvironmentRequest {
            name: form.name,
            ..Default::default()
        }))
        .await;
    after(&console, signed, &id, Form::Environment, deleted.map(drop)).await
}

#[derive(Deserialize)]
struct DeleteForm {}

async fn delete_project(
    console: Shared,
    Path(ProjectId(id)): Path<ProjectId>,
    posted: Posted<DeleteForm>,
) -> Response {
    let Posted { signed, .. } = posted;
    let name = project_name(&signed.tokens().organization, &id);
    match delete_ungranted(&console, &signed, name).await {
        Ok(()) => console.done(&signed, "/console/projects"),
        Err(failure) => refused(&console, signed, &id, Form::Delete, failure).await,
    }
}

/// Deletes a project nobody holds a grant on. The organization service
/// deletes a project whatever its grants, so the console asks first:
/// access given on purpose is revoked on purpose, not swept away with
/// the project.
pub(super) async fn delete_ungranted(
    console: &Console,
    signed: &Signed,
    name: String,
) -> Result<(), Failure> {
    let grants = grants(console)
        .list_project_grants(signed.request(rbac::ListProjectGrantsRequest {
            parent: name.clone(),
            page_size: 1,
            ..Default::default()
        }))
        .await?
        .into_inner();
    if !grants.project_grants.is_empty() {
        return Err(Failure {
                message: "This project still has grants: revoke every grant on its page first, then delete it.".into(),
                ..Failure::default()
            });
    }
    console
        .project_service()
        .delete_project(signed.request(organization::DeleteProjectRequest {
            name,
            ..Default::default()
        }))
        .await?;
    Ok(())
}

async fn after(
    console: &Console,
    signed: Signed,
    id: &str,
    form: Form,
    outcome: Result<(), tonic::Status>,
) -> Response {
    match outcome {
        Ok(()) => console.done(&signed, &format!("/console/projects/{id}")),
        Err(status) => refused(console, signed, id, form, status.into()).await,
    }
}

async fn refused(
    console: &Console,
    signed: Signed,
    id: &str,
    form: Form,
    failure: Failure,
) -> Response {
    console
        .refused(signed, "Project", failure, async |view, failure| {
            project_body(console, view, id, "", Some((form, failure))).await
        })
        .await
}
