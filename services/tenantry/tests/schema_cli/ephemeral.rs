//! An ephemeral server prints where it serves, answers there, and leaves
//! nothing behind.

use tenantry_proto::tenantry::identity::v1 as identity;

use crate::process::{EphemeralServer, run, text};

#[tokio::test]
async fn it_serves_on_free_ports_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = EphemeralServer::start(dir.path(), &[]);
    assert_ne!(server.grpc.port(), 0);
    assert_ne!(server.http.port(), 0);
    let home = server.mail.parent().unwrap().to_path_buf();
    assert!(
        home.exists(),
        "the temporary directory is there while it runs"
    );

    // Sign-up signs the user in at once: no mail to read a token from.
    let mut client =
        identity::identity_service_client::IdentityServiceClient::connect(server.endpoint())
            .await
            .unwrap();
    let signed_up = client
        .sign_up(identity::SignUpRequest {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
            display_name: "Ada".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(signed_up.tokens.is_some(), "{signed_up:?}");
    let ready = http_get(server.http, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    let status = server.stop();
    assert!(status.success(), "exit status {status}");
    assert!(!home.exists(), "the temporary directory is removed");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing in the working directory: {left:?}"
    );
}

#[test]
fn ephemeral_refuses_storage_flags_and_production_mode() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve", "--ephemeral", "--data-dir", "x"]);
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(text(&output.stderr).contains("--data-dir"));
    let output = crate::process::tenantry(dir.path())
        .args(["serve", "--ephemeral"])
        .env("TENANTRY_MODE", "production")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("production"),
        "{}",
        text(&output.stderr)
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

/// A bare HTTP/1.1 GET (the test needs no HTTP client for one status line).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}
