//! Credentials: an API key exchanged for tokens, a session refreshed before
//! and after its access token stops working, and the words of a refusal.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::*;
use tenantry_client::pb::identity::v1 as identity;
use tenantry_client::{CREDENTIALS_REJECTED, Credentials, Session};

fn endpoint(sandbox: &Sandbox) -> String {
    format!("http://{}", sandbox.server.grpc_addr)
}

#[tokio::test]
async fn an_api_key_is_exchanged_and_a_wrong_one_is_refused_in_words() {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let (client, organization) = signed_up(&sandbox, "ada@example.com").await;
    create_project(&client, &organization, "web").await;
    let secret = client
        .api_keys()
        .create_api_key(identity::CreateApiKeyRequest {
            parent: organization.clone(),
            api_key: Some(identity::ApiKey {
                display_name: "ci".into(),
                permissions: vec!["project.read".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let keyed = Client::builder(endpoint(&sandbox))
        .credentials(Credentials::ApiKey(secret.clone()))
        .build()
        .unwrap();
    let listing = organization::ListProjectsRequest {
        parent: organization.clone(),
        ..Default::default()
    };
    let projects = keyed
        .projects()
        .list_projects(listing.clone())
        .await
        .unwrap();
    assert!(!projects.into_inner().projects.is_empty());

    let forged = Client::builder(endpoint(&sandbox))
        .credentials(Credentials::ApiKey(format!("{secret}x")))
        .build()
        .unwrap();
    let refused =
        tenantry_client::Error::from(forged.projects().list_projects(listing).await.unwrap_err());
    assert!(refused.is_unauthenticated(), "{refused:?}");
    assert_eq!(refused.reason(), Some(CREDENTIALS_REJECTED));
    assert!(refused.to_string().contains("API key"), "{refused}");
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_session_refreshes_before_and_after_its_token_stops_working() {
    let sandbox = Sandbox::builder().start().await.unwrap();
    signed_up(&sandbox, "ada@example.com").await;
    let first = client(&sandbox);
    let tokens = signed_in(first.login("ada@example.com", PASSWORD, "").await.unwrap());
    let seen: Arc<Mutex<Vec<Session>>> = Arc::default();
    let with = |session: Session| {
        let seen = seen.clone();
        Client::builder(endpoint(&sandbox))
            .credentials(Credentials::Session(session))
            .on_session_refresh(move |s| seen.lock().unwrap().push(s.clone()))
            .build()
            .unwrap()
    };

    // Known to be expired: refreshed before the call.
    let expired = with(Session {
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        expire_time: Some(SystemTime::UNIX_EPOCH),
    });
    expired
        .identity()
        .me(identity::MeRequest::default())
        .await
        .unwrap();
    let renewed = seen.lock().unwrap().last().cloned().expect("a refresh");
    assert_ne!(renewed.refresh_token, tokens.refresh_token, "rotated");

    // Refused by the server: refreshed once, and the call goes through.
    let refused = with(Session {
        access_token: "not-a-token".into(),
        refresh_token: renewed.refresh_token.clone(),
        expire_time: None,
    });
    refused
        .identity()
        .me(identity::MeRequest::default())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);

    // The spent refresh token is refused, in words.
    let stale = with(Session {
        access_token: String::new(),
        refresh_token: tokens.refresh_token,
        expire_time: Some(SystemTime::UNIX_EPOCH),
    });
    let error = tenantry_client::Error::from(
        stale
            .identity()
            .me(identity::MeRequest::default())
            .await
            .unwrap_err(),
    );
    assert!(error.is_unauthenticated(), "{error:?}");
    assert!(
        error.to_string().contains("could not be refreshed"),
        "{error}"
    );
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::builder(format!("http://{port}"))
        .retry_policy(tenantry_client::RetryPolicy::none())
        .build()
        .unwrap();
    let error = tenantry_client::Error::from(
        client
            .identity()
            .get_jwks(identity::GetJwksRequest::default())
            .await
            .unwrap_err(),
    );
    assert!(error.is_unreachable(), "{error:?}");
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}
