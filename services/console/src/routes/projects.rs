//! The organization's projects: list, create, delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::organization::v1 as organization;

use super::overview::no_organization;
use super::{Console, NameForm, PAGE_SIZE, PageQuery, Posted, Shared, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, next_page, request_id};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/projects", get(projects).post(create_project))
        .route("/console/projects/delete", post(delete_project))
}

async fn projects(console: Shared, view: View, Query(q): Query<PageQuery>) -> Response {
    let body = projects_body(&console, &view, &q.page_token, None).await;
    console.render(&view, "Projects", body)
}

async fn projects_body(
    console: &Console,
    view: &View,
    page_token: &str,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    let Some(parent) = view.organization() else {
        return Ok(no_organization());
    };
    let listed = console
        .project_service()
        .list_projects(view.request(organization::ListProjectsRequest {
            parent: parent.into(),
            page_size: PAGE_SIZE,
            page_token: page_token.to_string(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(html! {
        (failure(error))
        @if view.may(Permission::PROJECT_CREATE) {
            form.card method="post" action="/console/projects" {
                (csrf(view.csrf()))
                (request_id())
                div.field { label for="display_name" { "Project name" } input #display_name name="display_name" required; }
                button type="submit" { "Create project" }
            }
        }
        @if listed.projects.is_empty() {
            p.empty { "No projects yet." @if view.may(Permission::PROJECT_CREATE) { " Create the first one above." } }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Slug" } th { span.small { "Actions" } } } }
                tbody {
                    @for project in &listed.projects {
                        tr {
                            td { a href={ "/console/projects/" (id_of(&project.name)) } { (project.display_name) } }
                            td { code { (project.slug) } }
                            td {
                                a href={ "/console/projects/" (id_of(&project.name)) } aria-label={ "Access to " (project.display_name) } { "Access" }
                                " "
                                form.inline method="post" action="/console/projects/delete" {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(project.name);
                                    button.danger type="submit" aria-label={ "Delete " (project.display_name) } { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (next_page("/console/projects", &listed.next_page_token))
    })
}

#[derive(Deserialize)]
struct ProjectForm {
    display_name: String,
    #[serde(default)]
    request_id: String,
}

async fn create_project(console: Shared, posted: Posted<ProjectForm>) -> Response {
    let Posted { signed, form } = posted;
    let created = console
        .project_service()
        .create_project(signed.request(organization::CreateProjectRequest {
            parent: signed.tokens().organization.clone(),
            project: Some(organization::Project {
                display_name: form.display_name,
                ..Default::default()
            }),
            request_id: form.request_id,
            ..Default::default()
        }))
        .await;
    after(&console, signed, created.map(drop)).await
}

async fn delete_project(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    match super::project::delete_ungranted(&console, &signed, form.name).await {
        Ok(()) => console.done(&signed, "/console/projects"),
        Err(failure) => refused(&console, signed, failure).await,
    }
}

/// The last segment of a resource name: the id in a page's path.
fn id_of(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or_default()
}

async fn after(
    console: &Console,
    signed: super::Signed,
    outcome: Result<(), tonic::Status>,
) -> Response {
    match outcome {
        Ok(()) => console.done(&signed, "/console/projects"),
        Err(status) => refused(console, signed, status.into()).await,
    }
}

async fn refused(console: &Console, signed: super::Signed, failure: Failure) -> Response {
    console
        .refused(signed, "Projects", failure, async |view, failure| {
            projects_body(console, view, "", Some(failure)).await
        })
        .await
}
