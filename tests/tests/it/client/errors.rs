//! Errors arrive typed: code, message, and the ErrorInfo reason, domain and
//! metadata, or the bad fields; and a refused write leaves nothing behind.

use super::*;
use futures::TryStreamExt as _;

#[tokio::test]
async fn errors_carry_their_reason_and_fields() {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let (client, organization) = signed_up(&sandbox, "ada@example.com").await;
    create_project(&client, &organization, "web").await;
    let count = || async {
        client
            .list_projects(organization::ListProjectsRequest {
                parent: organization.clone(),
                ..Default::default()
            })
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len()
    };
    let before = count().await;

    let attempt = |slug: &str| organization::CreateProjectRequest {
        parent: organization.clone(),
        project: Some(organization::Project {
            slug: slug.into(),
            display_name: "Web".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let taken = tenantry_client::Error::from(
        client
            .projects()
            .create_project(attempt("web"))
            .await
            .unwrap_err(),
    );
    assert_eq!(taken.code(), tonic::Code::AlreadyExists);
    assert_eq!(taken.reason(), Some("SLUG_TAKEN"));
    assert!(taken.domain().is_some_and(|d| !d.is_empty()));
    assert!(taken.to_string().contains("SLUG_TAKEN"), "{taken}");

    let malformed = tenantry_client::Error::from(
        client
            .projects()
            .create_project(attempt("Not A Slug!"))
            .await
            .unwrap_err(),
    );
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert!(
        malformed
            .field_violations()
            .iter()
            .any(|v| v.field.ends_with("slug")),
        "{malformed:?}"
    );
    assert_eq!(count().await, before, "nothing was written");
    sandbox.shutdown().await.unwrap();
}
