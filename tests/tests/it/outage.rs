//! An outage of the database after start: calls answer UNAVAILABLE while it
//! lasts, nothing panics, and the server recovers by itself when the
//! database is back. Runs where a PostgreSQL installation is present (CI),
//! against a cluster of the test's own so the shared server is untouched.

use tenantry_proto::tenantry::identity::v1 as pb;
use tenantry_testkit::{PostgresServer, Sandbox};
use tonic::Code;

#[tokio::test]
async fn a_database_outage_answers_unavailable_and_recovers() {
    if std::env::var(tenantry_testkit::DATABASE_URL_VAR).is_err() || !PostgresServer::available() {
        return;
    }
    let postgres = PostgresServer::start().await.unwrap();
    let url = postgres.url();
    let sandbox = Sandbox::builder()
        .configure(move |config| {
            config.database_url = Some(url);
            config.database.acquire_timeout_secs = 1;
        })
        .start()
        .await
        .unwrap();
    let mut client =
        pb::identity_service_client::IdentityServiceClient::new(sandbox.channel().await.unwrap());
    let sign_up = |email: &str| pb::SignUpRequest {
        email: email.into(),
        password: "correct horse battery staple".into(),
        display_name: "Outage".into(),
        ..Default::default()
    };
    client.sign_up(sign_up("before@example.com")).await.unwrap();

    postgres.stop().unwrap();
    let during = client
        .sign_up(sign_up("during@example.com"))
        .await
        .unwrap_err();
    assert_eq!(during.code(), Code::Unavailable, "{during:?}");
    assert!(
        !during.message().contains("postgres://"),
        "no internals leak: {}",
        during.message()
    );

    postgres.resume().await.unwrap();
    // The pool reconnects by itself; the first calls may still meet dead
    // connections, so allow a few attempts.
    let mut recovered = false;
    for _ in 0..50 {
        if client.sign_up(sign_up("after@example.com")).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the server did not recover after the database came back"
    );
    sandbox.shutdown().await.unwrap();
}
