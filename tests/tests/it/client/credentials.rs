//! Credentials: an API key exchanged for tokens, a session refreshed before
//! and after its access token stops working, a service account's client
//! credentials exchanged again as each token expires, and the words of a
//! refusal.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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

/// A service holds client credentials, not a refresh token: the client
/// exchanges them again whenever its token is about to expire, so a
/// service stays signed in for as long as its credential lives.
#[tokio::test]
async fn a_service_account_client_stays_signed_in_across_token_expiry() {
    let sandbox = Sandbox::builder()
        .configure(|config| {
            config.identity.platform_admins = vec!["root@example.com".into()];
            // Tokens that expire within the test, and no grace after.
            config.identity.access_token_ttl_secs = 3;
            config.auth.leeway_secs = 0;
        })
        .start()
        .await
        .unwrap();
    let (root, _) = signed_up(&sandbox, "root@example.com").await;
    let account = root
        .service_accounts()
        .create_service_account(identity::CreateServiceAccountRequest {
            service_account: Some(identity::ServiceAccount {
                display_name: "billing-sync".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    let created = root
        .service_accounts()
        .create_service_account_credential(identity::CreateServiceAccountCredentialRequest {
            parent: account.name,
            credential: Some(identity::ServiceAccountCredential {
                display_name: "prod".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let client_id = created.credential.unwrap().client_id;
    let client_secret = created.client_secret;
    let service = Client::builder(endpoint(&sandbox))
        .credentials(Credentials::ClientCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            organization: String::new(),
        })
        .build()
        .unwrap();
    let plans = |client: &Client| {
        let client = client.clone();
        async move {
            client
                .plans()
                .list_plans(tenantry_client::pb::billing::v1::ListPlansRequest::default())
                .await
                .map_err(tenantry_client::Error::from)
        }
    };
    plans(&service).await.unwrap();

    // A token lives `access_token_ttl_secs` and comes without a refresh
    // token; the server refuses it once it expired.
    let issued = client(&sandbox)
        .service_accounts()
        .issue_service_account_token(identity::IssueServiceAccountTokenRequest {
            client_id,
            client_secret,
            organization: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let lifetime = issued.expire_time.unwrap().seconds - tenantry_testkit::now_secs();
    assert!((0..=3).contains(&lifetime), "{lifetime}");
    let fixed = Client::builder(endpoint(&sandbox))
        .credentials(Credentials::AccessToken(issued.access_token))
        .build()
        .unwrap();
    plans(&fixed).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = plans(&fixed).await.unwrap_err();
    assert!(expired.is_unauthenticated(), "{expired:?}");
    // The client built from the credentials exchanges them again.
    plans(&service)
        .await
        .expect("a new token after the old one expired");
    tokio::time::sleep(Duration::from_secs(4)).await;
    plans(&service).await.expect("and after the next one");
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
