//! Sign up, verify the mailed link, create an organization and a project,
//! and check access right after the writes: no sleep, no token handling.

use super::*;
use tenantry_client::pb::identity::v1 as identity;

#[tokio::test]
async fn sign_up_verify_create_and_check_at_once() {
    for storage in tenantry_testkit::storages() {
        let sandbox = Sandbox::builder()
            .storage(storage)
            .configure(|config| config.identity.verify_before_sign_in = true)
            .start()
            .await
            .unwrap();
        let client = client(&sandbox);
        let signed_up = client
            .sign_up(identity::SignUpRequest {
                email: "grace@example.com".into(),
                password: PASSWORD.into(),
                display_name: "Grace".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(signed_up.verification_required);
        assert!(client.session().await.is_none(), "nothing exists yet");

        let token = sandbox
            .mail_token("grace@example.com", "verify_email")
            .expect("a verification mail");
        let verified = client.verify_email(&token).await.unwrap();
        let user = id(&verified.user.unwrap().name);
        assert!(client.session().await.is_some(), "the link signs in");

        let created = client
            .organizations()
            .create_organization(organization::CreateOrganizationRequest {
                organization: Some(organization::Organization {
                    display_name: "Analytical Engines".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        let written = client.consistency_token().expect("writes answer a token");
        let project = create_project(&client, &created.name, "loom").await;
        assert_ne!(
            client.consistency_token(),
            Some(written),
            "the newest is kept"
        );
        assert!(may_read(&client, &user, &id(&project.name)).await);

        // Another client (another process, say) sees the write at once when
        // it starts from this one's token.
        let session = client.session().await.unwrap();
        let other = Client::builder(format!("http://{}", sandbox.server.grpc_addr))
            .credentials(tenantry_client::Credentials::Session(session))
            .consistency_token(client.consistency_token().unwrap())
            .build()
            .unwrap();
        assert!(may_read(&other, &user, &id(&project.name)).await);
        sandbox.shutdown().await.unwrap();
    }
}
