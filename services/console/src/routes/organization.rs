//! The organization's tree: the active organization among its ancestors,
//! its sub-organizations and departments (two levels down), and its teams;
//! forms to create each, shown to whoever may.

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
use super::{Console, NameForm, PAGE_SIZE, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, request_id};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/organization", get(tree))
        .route("/console/organization/children", post(create_child))
        .route("/console/organization/teams", post(create_team))
        .route(
            "/console/organization/children/undelete",
            post(undelete_child),
        )
        .route("/console/organization/teams/undelete", post(undelete_team))
}

/// The two lists' pages: children and teams page apart.
#[derive(Deserialize, Default)]
struct TreeQuery {
    #[serde(default)]
    page_token: String,
    #[serde(default)]
    teams_page_token: String,
}

/// Which form a failure belongs next to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Child,
    Team,
}

type Refusal<'a> = Option<(Part, &'a Failure)>;

fn failure_of(error: Refusal, part: Part) -> Markup {
    failure(error.filter(|(p, _)| *p == part).map(|(_, f)| f))
}

async fn tree(console: Shared, view: View, Query(q): Query<TreeQuery>) -> Response {
    let body = tree_body(&console, &view, &q, None).await;
    console.render(&view, "Organization", body)
}

async fn tree_body(
    console: &Console,
    view: &View,
    q: &TreeQuery,
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
    let ancestors = console
        .org_service()
        .get_organization_ancestry(
            view.request(organization::GetOrganizationAncestryRequest { name: name.into() }),
        )
        .await
        .map(|a| a.into_inner().ancestors)
        .unwrap_or_default();
    // Deleted children stay listed (marked, with a way back) until purged.
    let (kids, next) = children(console, view, name, &q.page_token, true).await?;
    let mut grandchildren = Vec::new();
    for child in &kids {
        grandchildren.push(match child.delete_time {
            Some(_) => Default::default(),
            None => children(console, view, &child.name, "", false).await?,
        });
    }
    let teams = console
        .team_service()
        .list_teams(view.request(organization::ListTeamsRequest {
            parent: name.into(),
            page_size: PAGE_SIZE,
            page_token: q.teams_page_token.clone(),
            show_deleted: true,
            ..Default::default()
        }))
        .await?
        .into_inner();
    let below: Vec<(
        &organization::Organization,
        &[organization::Organization],
        bool,
    )> = kids
        .iter()
        .zip(&grandchildren)
        .map(|(child, (theirs, more))| (child, theirs.as_slice(), !more.is_empty()))
        .collect();
    Ok(html! {
        h2 { "Tree" }
        (levels(view, &ancestors, &org, &below))
        @if !next.is_empty() {
            p { a href={ "/console/organization?" (query("page_token", &next)) } { "More sub-organizations" } }
        }
        (create_child_forms(view, &org, error))
        h2 { "Teams" }
        (teams_list(view, &teams.teams))
        @if !teams.next_page_token.is_empty() {
            p { a href={ "/console/organization?" (query("teams_page_token", &teams.next_page_token)) } { "More teams" } }
        }
        (create_team_form(view, error))
    })
}

fn query(key: &str, token: &str) -> String {
    serde_urlencoded::to_string([(key, token)]).unwrap_or_default()
}

/// One page of the children of `parent` (the deleted ones too when
/// `deleted`), and the next page's token.
async fn children(
    console: &Console,
    view: &View,
    parent: &str,
    page_token: &str,
    deleted: bool,
) -> Result<(Vec<organization::Organization>, String), Failure> {
    let listed = console
        .org_service()
        .list_organizations(view.request(organization::ListOrganizationsRequest {
            parent: parent.into(),
            page_size: PAGE_SIZE,
            page_token: page_token.into(),
            show_deleted: deleted,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok((listed.organizations, listed.next_page_token))
}

/// The tree as nested lists: each ancestor a level, then the active
/// organization, its children, and theirs.
fn levels(
    view: &View,
    ancestors: &[organization::Organization],
    org: &organization::Organization,
    below: &[(
        &organization::Organization,
        &[organization::Organization],
        bool,
    )],
) -> Markup {
    let Some((top, rest)) = ancestors.split_first() else {
        return html! { ul.tree aria-label="Organization tree" { (here(view, org, below)) } };
    };
    html! {
        ul.tree aria-label="Organization tree" {
            li { (node(view, top)) (ancestor_levels(view, rest, org, below)) }
        }
    }
}

fn ancestor_levels(
    view: &View,
    ancestors: &[organization::Organization],
    org: &organization::Organization,
    below: &[(
        &organization::Organization,
        &[organization::Organization],
        bool,
    )],
) -> Markup {
    match ancestors.split_first() {
        Some((next, rest)) => html! {
            ul { li { (node(view, next)) (ancestor_levels(view, rest, org, below)) } }
        },
        None => html! { ul { (here(view, org, below)) } },
    }
}

/// The active organization's item: marked as where the user is, with what
/// lies below it.
fn here(
    view: &View,
    org: &organization::Organization,
    below: &[(
        &organization::Organization,
        &[organization::Organization],
        bool,
    )],
) -> Markup {
    html! {
        li aria-current="true" {
            strong { (org.display_name) } " " span.small { "(" (kind(org)) ", you are here)" }
            @if below.is_empty() {
                p.empty {
                    "No sub-organizations or departments yet."
                    @if may_restore(view) { " Create one with the forms below." }
                }
            } @else {
                ul {
                    @for (child, theirs, more) in below {
                        li {
                            (node(view, child))
                            @if !theirs.is_empty() {
                                ul { @for grandchild in *theirs { li { (node(view, grandchild)) } } }
                            }
                            @if *more { p.small { "More below: switch into " (child.display_name) " to see them." } }
                        }
                    }
                }
            }
        }
    }
}

/// An organization of the tree: its name and kind, and a way into it for a
/// member of it.
fn node(view: &View, org: &organization::Organization) -> Markup {
    let member = view
        .nav
        .organizations
        .iter()
        .any(|(name, _)| *name == org.name);
    html! {
        span.node {
            (org.display_name) " " span.small { "(" (kind(org)) ")" }
            @if org.delete_time.is_some() {
                " " span.small { "deleted" }
                @if may_restore(view) {
                    form.inline method="post" action="/console/organization/children/undelete" {
                        (csrf(view.csrf()))
                        input type="hidden" name="name" value=(org.name);
                        button.secondary type="submit" aria-label={ "Undelete " (org.display_name) } { "Undelete" }
                    }
                }
            } @else if org.name == view.nav.active {
            } @else if member {
                form.inline method="post" action="/console/switch" {
                    (csrf(view.csrf()))
                    input type="hidden" name="organization" value=(org.name);
                    button.secondary type="submit" aria-label={ "Switch to " (org.display_name) } { "Switch" }
                }
            } @else {
                " " span.small { "not a member" }
            }
        }
    }
}

fn kind(org: &organization::Organization) -> &'static str {
    match org.kind() {
        organization::OrganizationKind::Department => "department",
        _ if org.parent.is_empty() => "organization",
        _ => "sub-organization",
    }
}

fn create_child_forms(view: &View, org: &organization::Organization, error: Refusal) -> Markup {
    let departments = org
        .settings
        .as_ref()
        .and_then(|s| s.departments_enabled)
        .unwrap_or(true);
    let suborganizations = view.may(Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE);
    let department = view.may(Permission::ORGANIZATION_DEPARTMENTS_CREATE) && departments;
    html! {
        (failure_of(error, Part::Child))
        @if suborganizations {
            form.card method="post" action="/console/organization/children" {
                (csrf(view.csrf()))
                (request_id())
                input type="hidden" name="kind" value="organization";
                div.field {
                    label for="suborganization_name" { "Sub-organization name" }
                    input #suborganization_name name="display_name" required;
                }
                button type="submit" { "Create sub-organization" }
            }
        }
        @if department {
            form.card method="post" action="/console/organization/children" {
                (csrf(view.csrf()))
                (request_id())
                input type="hidden" name="kind" value="department";
                div.field {
                    label for="department_name" { "Department name" }
                    input #department_name name="display_name" required;
                }
                button type="submit" { "Create department" }
            }
        } @else if view.may(Permission::ORGANIZATION_DEPARTMENTS_CREATE) {
            p.small { "Departments are switched off in this organization's settings." }
        }
    }
}

/// Whether the page offers to restore deleted children: to whoever may
/// create them (the service decides who may restore).
fn may_restore(view: &View) -> bool {
    view.may(Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE)
        || view.may(Permission::ORGANIZATION_DEPARTMENTS_CREATE)
}

fn teams_list(view: &View, teams: &[organization::Team]) -> Markup {
    html! {
        @if teams.is_empty() {
            p.empty {
                "No teams yet."
                @if view.may(Permission::ORGANIZATION_TEAMS_CREATE) { " Create the first one below." }
            }
        } @else {
            ul.teams {
                @for team in teams {
                    li {
                        @if team.delete_time.is_some() {
                            (team.display_name) " " span.small { "deleted" }
                            @if view.may(Permission::ORGANIZATION_TEAMS_CREATE) {
                                form.inline method="post" action="/console/organization/teams/undelete" {
                                    (csrf(view.csrf()))
                                    input type="hidden" name="name" value=(team.name);
                                    button.secondary type="submit" aria-label={ "Undelete team " (team.display_name) } { "Undelete" }
                                }
                            }
                        } @else {
                            a href={ "/console/teams/" (team.name.rsplit('/').next().unwrap_or_default()) } { (team.display_name) }
                            @if !team.description.is_empty() { " " span.small { "— " (team.description) } }
                        }
                    }
                }
            }
        }
    }
}

fn create_team_form(view: &View, error: Refusal) -> Markup {
    html! {
        (failure_of(error, Part::Team))
        @if view.may(Permission::ORGANIZATION_TEAMS_CREATE) {
            form.card method="post" action="/console/organization/teams" {
                (csrf(view.csrf()))
                (request_id())
                div.field {
                    label for="team_name" { "Team name" }
                    input #team_name name="display_name" required;
                }
                div.field {
                    label for="team_description" { "Description (optional)" }
                    input #team_description name="description";
                }
                button type="submit" { "Create team" }
            }
        }
    }
}

#[derive(Deserialize)]
struct ChildForm {
    display_name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request_id: String,
}

async fn create_child(console: Shared, posted: Posted<ChildForm>) -> Response {
    let Posted { signed, form } = posted;
    let kind = match form.kind.as_str() {
        "department" => organization::OrganizationKind::Department,
        _ => organization::OrganizationKind::Organization,
    };
    let created = console
        .org_service()
        .create_organization(signed.request(organization::CreateOrganizationRequest {
            organization: Some(organization::Organization {
                display_name: form.display_name,
                kind: kind as i32,
                parent: signed.tokens().organization.clone(),
                ..Default::default()
            }),
            request_id: form.request_id,
            ..Default::default()
        }))
        .await;
    after(&console, signed, Part::Child, created.map(drop)).await
}

#[derive(Deserialize)]
struct TeamForm {
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    request_id: String,
}

async fn create_team(console: Shared, posted: Posted<TeamForm>) -> Response {
    let Posted { signed, form } = posted;
    let created = console
        .team_service()
        .create_team(signed.request(organization::CreateTeamRequest {
            parent: signed.tokens().organization.clone(),
            team: Some(organization::Team {
                display_name: form.display_name,
                description: form.description,
                ..Default::default()
            }),
            request_id: form.request_id,
        }))
        .await;
    after(&console, signed, Part::Team, created.map(drop)).await
}

async fn undelete_child(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let restored = console
        .org_service()
        .undelete_organization(signed.request(organization::UndeleteOrganizationRequest {
            name: form.name,
            etag: String::new(),
        }))
        .await;
    after(&console, signed, Part::Child, restored.map(drop)).await
}

async fn undelete_team(console: Shared, posted: Posted<NameForm>) -> Response {
    let Posted { signed, form } = posted;
    let restored = console
        .team_service()
        .undelete_team(signed.request(organization::UndeleteTeamRequest {
            name: form.name,
            etag: String::new(),
        }))
        .await;
    after(&console, signed, Part::Team, restored.map(drop)).await
}

async fn after(
    console: &Console,
    signed: Signed,
    part: Part,
    outcome: Result<(), tonic::Status>,
) -> Response {
    match outcome {
        Ok(()) => console.done(&signed, "/console/organization"),
        Err(status) => {
            console
                .refused(
                    signed,
                    "Organization",
                    status.into(),
                    async |view, failure| {
                        tree_body(console, view, &TreeQuery::default(), Some((part, failure))).await
                    },
                )
                .await
        }
    }
}
