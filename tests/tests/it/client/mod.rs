//! The Rust client (`tenantry-client`) against a sandbox: sign-up and
//! verification, read-your-writes with no token handling, pagination,
//! typed errors, API keys, refresh and an unreachable endpoint.

mod credentials;
mod errors;
mod pagination;
mod sign_up;

use tenantry_client::pb::authz::v1 as authz;
use tenantry_client::pb::organization::v1 as organization;
use tenantry_client::{Client, Login};
use tenantry_testkit::Sandbox;
use tenantry_testkit::check;
use tenantry_testkit::people::PASSWORD;

/// A client of the sandbox's gRPC port, with no credentials yet.
fn client(sandbox: &Sandbox) -> Client {
    Client::builder(format!("http://{}", sandbox.server.grpc_addr))
        .build()
        .expect("a valid endpoint")
}

/// Signs `email` up on a sandbox that signs up in one step, and returns
/// the client, now signed in, with the new user's first organization.
async fn signed_up(sandbox: &Sandbox, email: &str) -> (Client, String) {
    let client = client(sandbox);
    let response = client
        .sign_up(tenantry_client::pb::identity::v1::SignUpRequest {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: "Ada".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(client.session().await.is_some(), "sign-up signs in");
    (client, response.organization)
}

/// Creates a project in `organization` (`organizations/{id}`).
async fn create_project(client: &Client, organization: &str, slug: &str) -> organization::Project {
    client
        .projects()
        .create_project(organization::CreateProjectRequest {
            parent: organization.into(),
            project: Some(organization::Project {
                slug: slug.into(),
                display_name: slug.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap()
}

/// Whether `user` may read `project` (ids), asked through `client`.
async fn may_read(client: &Client, user: &str, project: &str) -> bool {
    let answer = client
        .authorization()
        .check_permission(authz::CheckPermissionRequest {
            resource: check::object("project", project),
            permission: "project.read".into(),
            subject: check::user(user),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    answer.permissionship == authz::Permissionship::Allowed as i32
}

/// The last segment of a resource name.
fn id(name: &str) -> String {
    tenantry_testkit::last_id(name)
}

/// The tokens of a login that needed no second factor.
fn signed_in(login: Login) -> tenantry_client::pb::identity::v1::AuthTokens {
    match login {
        Login::SignedIn(tokens) => *tokens,
        Login::MfaRequired(_) => panic!("no second factor was set up"),
    }
}
