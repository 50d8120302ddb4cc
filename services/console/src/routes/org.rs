//! The organization's pages: overview, projects, members, invitations.

use axum::body::Bytes;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use http::Uri;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;

use super::{Console, Shared, Signed, form};
use crate::calls::Failure;
use crate::pages::{csrf, failure};

const PAGE_SIZE: i32 = 20;

/// The pages of a user who belongs to no organization yet.
fn no_organization() -> Markup {
    html! {
        p.empty { "You belong to no organization yet. Accept an invitation from the mail \
                   you were sent, or ask an administrator to invite you." }
    }
}

fn path(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/console/".into())
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page_token: String,
}

pub async fn overview(console: Shared, headers: HeaderMap, uri: Uri) -> Response {
    let path = path(&uri);
    let signed = match console.signed_in(&headers, &path).await {
        Ok(signed) => signed,
        Err(redirect) => return redirect,
    };
    let body = overview_body(&console, &signed).await;
    console.render(&signed, &path, "Overview", body).await
}

async fn overview_body(console: &Console, signed: &Signed) -> Result<Markup, Failure> {
    if signed.tokens().organization.is_empty() {
        return Ok(no_organization());
    }
    let name = signed.tokens().organization.clone();
    let org = organization::organization_service_client::OrganizationServiceClient::new(
        console.organization.clone(),
    )
    .get_organization(signed.request(organization::GetOrganizationRequest { name: name.clone() }))
    .await?
    .into_inner()
    .organization
    .unwrap_or_default();
    // The plan is billing's to tell; a member who may not read it sees
    // the rest of the overview.
    let plan = billing::subscription_service_client::SubscriptionServiceClient::new(
        console.billing.clone(),
    )
    .get_subscription(signed.request(billing::GetSubscriptionRequest {
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
            (csrf(&signed.state.csrf))
            button.secondary type="submit" { "Sign out everywhere" }
        }
    })
}

pub async fn projects(
    console: Shared,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<PageQuery>,
) -> Response {
    let path = path(&uri);
    let signed = match console.signed_in(&headers, &path).await {
        Ok(signed) => signed,
        Err(redirect) => return redirect,
    };
    let body = projects_body(&console, &signed, &q.page_token, None).await;
    console.render(&signed, &path, "Projects", body).await
}

async fn projects_body(
    console: &Console,
    signed: &Signed,
    page_token: &str,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    if signed.tokens().organization.is_empty() {
        return Ok(no_organization());
    }
    let listed = organization::project_service_client::ProjectServiceClient::new(
        console.organization.clone(),
    )
    .list_projects(signed.request(organization::ListProjectsRequest {
        parent: signed.tokens().organization.clone(),
        page_size: PAGE_SIZE,
        page_token: page_token.to_string(),
        ..Default::default()
    }))
    .await?
    .into_inner();
    Ok(html! {
        (failure(error))
        form.card method="post" action="/console/projects" {
            (csrf(&signed.state.csrf))
            div.field { label for="display_name" { "Project name" } input #display_name name="display_name" required; }
            button type="submit" { "Create project" }
        }
        @if listed.projects.is_empty() {
            p.empty { "No projects yet. Create the first one above." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Slug" } th { span.small { "Actions" } } } }
                tbody {
                    @for project in &listed.projects {
                        tr {
                            td { (project.display_name) }
                            td { code { (project.slug) } }
                            td {
                                form method="post" action="/console/projects/delete" {
                                    (csrf(&signed.state.csrf))
                                    input type="hidden" name="name" value=(project.name);
                                    button.danger type="submit" aria-label={ "Delete " (project.display_name) } { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !listed.next_page_token.is_empty() {
            p { a href={ "/console/projects?" (serde_urlencoded::to_string([("page_token", &listed.next_page_token)]).unwrap_or_default()) } { "Next page" } }
        }
    })
}

#[derive(Deserialize)]
pub struct ProjectForm {
    #[serde(default)]
    csrf: String,
    display_name: String,
}

pub async fn create_project(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: ProjectForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let signed = match console
        .signed_post(&headers, &input.csrf, "/console/projects")
        .await
    {
        Ok(signed) => signed,
        Err(refusal) => return refusal,
    };
    let created = organization::project_service_client::ProjectServiceClient::new(
        console.organization.clone(),
    )
    .create_project(signed.request(organization::CreateProjectRequest {
        parent: signed.tokens().organization.clone(),
        project: Some(organization::Project {
            display_name: input.display_name,
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await;
    match created {
        Ok(_) => console.answer(&signed, Redirect::to("/console/projects")),
        Err(status) => {
            let failure: Failure = status.into();
            let body = projects_body(&console, &signed, "", Some(&failure)).await;
            console
                .render(&signed, "/console/projects", "Projects", body)
                .await
        }
    }
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    name: String,
}

pub async fn delete_project(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: NameForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let signed = match console
        .signed_post(&headers, &input.csrf, "/console/projects")
        .await
    {
        Ok(signed) => signed,
        Err(refusal) => return refusal,
    };
    let deleted = organization::project_service_client::ProjectServiceClient::new(
        console.organization.clone(),
    )
    .delete_project(signed.request(organization::DeleteProjectRequest {
        name: input.name,
        ..Default::default()
    }))
    .await;
    match deleted {
        Ok(_) => console.answer(&signed, Redirect::to("/console/projects")),
        Err(status) => {
            let failure: Failure = status.into();
            let body = projects_body(&console, &signed, "", Some(&failure)).await;
            console
                .render(&signed, "/console/projects", "Projects", body)
                .await
        }
    }
}

pub async fn members(
    console: Shared,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<PageQuery>,
) -> Response {
    let path = path(&uri);
    let signed = match console.signed_in(&headers, &path).await {
        Ok(signed) => signed,
        Err(redirect) => return redirect,
    };
    let body = members_body(&console, &signed, &q.page_token).await;
    console.render(&signed, &path, "Members", body).await
}

async fn members_body(
    console: &Console,
    signed: &Signed,
    page_token: &str,
) -> Result<Markup, Failure> {
    if signed.tokens().organization.is_empty() {
        return Ok(no_organization());
    }
    let listed =
        rbac::membership_service_client::MembershipServiceClient::new(console.rbac.clone())
            .list_memberships(signed.request(rbac::ListMembershipsRequest {
                parent: signed.tokens().organization.clone(),
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
        @if !listed.next_page_token.is_empty() {
            p { a href={ "/console/members?" (serde_urlencoded::to_string([("page_token", &listed.next_page_token)]).unwrap_or_default()) } { "Next page" } }
        }
        p { a href="/console/invitations" { "Invite someone" } " to add a member." }
    })
}

pub async fn invitations(console: Shared, headers: HeaderMap, uri: Uri) -> Response {
    let path = path(&uri);
    let signed = match console.signed_in(&headers, &path).await {
        Ok(signed) => signed,
        Err(redirect) => return redirect,
    };
    let body = invitations_body(&console, &signed, None).await;
    console.render(&signed, &path, "Invitations", body).await
}

/// The roles an invitation may give, as the built-in roles name them.
const ROLES: [(&str, &str); 3] = [
    ("roles/member", "Member"),
    ("roles/admin", "Admin"),
    ("roles/viewer", "Viewer"),
];

async fn invitations_body(
    console: &Console,
    signed: &Signed,
    error: Option<&Failure>,
) -> Result<Markup, Failure> {
    if signed.tokens().organization.is_empty() {
        return Ok(no_organization());
    }
    let listed =
        rbac::invitation_service_client::InvitationServiceClient::new(console.rbac.clone())
            .list_invitations(signed.request(rbac::ListInvitationsRequest {
                parent: signed.tokens().organization.clone(),
                page_size: 100,
                state: rbac::invitation::State::Pending as i32,
                ..Default::default()
            }))
            .await?
            .into_inner();
    Ok(html! {
        (failure(error))
        form.card method="post" action="/console/invitations" {
            (csrf(&signed.state.csrf))
            div.field { label for="email" { "Email" } input #email type="email" name="email" required; }
            div.field {
                label for="role" { "Role" }
                select #role name="role" { @for (role, label) in ROLES { option value=(role) { (label) } } }
            }
            button type="submit" { "Send invitation" }
        }
        h2 { "Pending" }
        @if listed.invitations.is_empty() {
            p.empty { "No pending invitations. Invite a teammate with the form above." }
        } @else {
            table {
                thead { tr { th { "Email" } th { "Roles" } th { span.small { "Actions" } } } }
                tbody {
                    @for invitation in &listed.invitations {
                        tr {
                            td { (invitation.email) }
                            td { (invitation.roles.join(", ")) }
                            td {
                                form method="post" action="/console/invitations/revoke" {
                                    (csrf(&signed.state.csrf))
                                    input type="hidden" name="name" value=(invitation.name);
                                    button.danger type="submit" aria-label={ "Revoke " (invitation.email) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct InvitationForm {
    #[serde(default)]
    csrf: String,
    email: String,
    role: String,
}

pub async fn create_invitation(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: InvitationForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let signed = match console
        .signed_post(&headers, &input.csrf, "/console/invitations")
        .await
    {
        Ok(signed) => signed,
        Err(refusal) => return refusal,
    };
    let created =
        rbac::invitation_service_client::InvitationServiceClient::new(console.rbac.clone())
            .create_invitation(signed.request(rbac::CreateInvitationRequest {
                parent: signed.tokens().organization.clone(),
                invitation: Some(rbac::Invitation {
                    email: input.email,
                    roles: vec![input.role],
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await;
    invitations_after(&console, &signed, created.map(drop)).await
}

pub async fn revoke_invitation(console: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let input: NameForm = match form(&body) {
        Ok(input) => input,
        Err(refusal) => return refusal,
    };
    let signed = match console
        .signed_post(&headers, &input.csrf, "/console/invitations")
        .await
    {
        Ok(signed) => signed,
        Err(refusal) => return refusal,
    };
    let revoked =
        rbac::invitation_service_client::InvitationServiceClient::new(console.rbac.clone())
            .revoke_invitation(signed.request(rbac::RevokeInvitationRequest {
                name: input.name,
                ..Default::default()
            }))
            .await;
    invitations_after(&console, &signed, revoked.map(drop)).await
}

async fn invitations_after(
    console: &Console,
    signed: &Signed,
    outcome: Result<(), tonic::Status>,
) -> Response {
    match outcome {
        Ok(()) => console
            .answer(signed, Redirect::to("/console/invitations"))
            .into_response(),
        Err(status) => {
            let failure: Failure = status.into();
            let body = invitations_body(console, signed, Some(&failure)).await;
            console
                .render(signed, "/console/invitations", "Invitations", body)
                .await
        }
    }
}
