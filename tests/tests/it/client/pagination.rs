//! Listings as streams: every page, in order, with no item twice.

use super::*;
use futures::TryStreamExt as _;

#[tokio::test]
async fn a_listing_streams_every_page() {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let (client, organization) = signed_up(&sandbox, "ada@example.com").await;
    let mut made = Vec::new();
    // The FREE plan allows three projects: the default one and these two.
    for n in 0..2 {
        made.push(
            create_project(&client, &organization, &format!("p{n}"))
                .await
                .name,
        );
    }
    let listed: Vec<String> = client
        .list_projects(organization::ListProjectsRequest {
            parent: organization.clone(),
            page_size: 1,
            ..Default::default()
        })
        .map_ok(|project| project.name)
        .try_collect()
        .await
        .unwrap();
    for name in &made {
        assert_eq!(listed.iter().filter(|n| *n == name).count(), 1, "{name}");
    }
    // The first organization's default project is listed too.
    assert_eq!(listed.len(), made.len() + 1);

    // A bad page token ends the stream with the server's error.
    let error = client
        .list_projects(organization::ListProjectsRequest {
            parent: organization,
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    sandbox.shutdown().await.unwrap();
}
