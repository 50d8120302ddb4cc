//! `schema diff` and `schema apply` against an ephemeral server, as a
//! service account: a plan, an idempotent apply, a dry run, and a caller
//! that may not register types.

use std::path::Path;

use tenantry_proto::tenantry::identity::v1 as identity;

use crate::offline::examples;
use crate::process::{EphemeralServer, run, text};

const ADMIN: &str = "admin@example.com";

/// A platform administrator's token and a service account's credentials.
struct Callers {
    admin_token: String,
    client_id: String,
    client_secret: String,
}

async fn callers(server: &EphemeralServer) -> Callers {
    let mut users =
        identity::identity_service_client::IdentityServiceClient::connect(server.endpoint())
            .await
            .unwrap();
    let admin = users
        .sign_up(identity::SignUpRequest {
            email: ADMIN.into(),
            password: "correct horse battery staple".into(),
            display_name: "Admin".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let admin_token = admin.tokens.unwrap().access_token;
    let mut accounts =
        identity::service_account_service_client::ServiceAccountServiceClient::connect(
            server.endpoint(),
        )
        .await
        .unwrap();
    let account = accounts
        .create_service_account(bearer(
            &admin_token,
            identity::CreateServiceAccountRequest {
                service_account: Some(identity::ServiceAccount {
                    display_name: "deployer".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    let credential = accounts
        .create_service_account_credential(bearer(
            &admin_token,
            identity::CreateServiceAccountCredentialRequest {
                parent: account.name,
                credential: Some(Default::default()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    Callers {
        client_id: credential.credential.unwrap().client_id,
        client_secret: credential.client_secret,
        admin_token,
    }
}

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// `tenantry schema COMMAND FILE --endpoint … ARGS` in `dir`; (exit code,
/// stdout, stderr).
fn schema(
    dir: &Path,
    command: &str,
    server: &EphemeralServer,
    args: &[&str],
) -> (i32, String, String) {
    let endpoint = server.endpoint();
    let mut all = vec!["schema", command, "schema.yaml", "--endpoint", &endpoint];
    all.extend_from_slice(args);
    let output = run(dir, &all);
    (
        output.status.code().unwrap_or(-1),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test]
async fn apply_registers_once_and_diff_shows_what_it_would_do() {
    let work = tempfile::tempdir().unwrap();
    let server = EphemeralServer::start(
        work.path(),
        &[(
            "TENANTRY_IDENTITY__PLATFORM_ADMINS",
            &format!("[\"{ADMIN}\"]"),
        )],
    );
    let callers = callers(&server).await;
    let account = [
        "--client-id",
        &callers.client_id,
        "--client-secret",
        &callers.client_secret,
    ];
    let dir = examples();

    // A user may read the schema but not register types: nothing written.
    let user = ["--token", callers.admin_token.as_str()];
    let (code, _, stderr) = schema(&dir, "apply", &server, &user);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("PermissionDenied"), "{stderr}");
    let (code, stdout, _) = schema(&dir, "diff", &server, &user);
    assert_eq!(code, 0);
    assert!(stdout.contains("+ deployment (create)"), "{stdout}");
    assert!(stdout.ends_with("3 types to register\n"), "{stdout}");

    // A dry run asks the server to validate, and registers nothing.
    let dry_run = [&account[..], &["--dry-run"]].concat();
    let (code, stdout, stderr) = schema(&dir, "apply", &server, &dry_run);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("nothing was registered"), "{stdout}");
    let (_, stdout, _) = schema(&dir, "diff", &server, &user);
    assert!(stdout.ends_with("3 types to register\n"), "{stdout}");

    // Apply, then apply again: the second has nothing to do.
    let (code, stdout, stderr) = schema(&dir, "apply", &server, &account);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "registered deployment",
        "registered tunnel_config",
        "registered alert_channel",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
    let (code, stdout, _) = schema(&dir, "apply", &server, &account);
    assert_eq!(code, 0);
    assert!(stdout.ends_with("no changes\n"), "{stdout}");
    assert!(!stdout.contains("registered "), "{stdout}");
    let (_, stdout, _) = schema(&dir, "diff", &server, &account);
    assert!(stdout.contains("= deployment (no changes)"), "{stdout}");

    // A file that grants more is an update of one type.
    let wider = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("schema.yaml"))
        .unwrap()
        .replace(
            "          - role: member\n",
            "          - role: member\n          - role: finance\n",
        );
    std::fs::write(wider.path().join("schema.yaml"), text).unwrap();
    let (_, stdout, _) = schema(wider.path(), "diff", &server, &account);
    assert!(
        stdout.contains(
            "~ alert_channel (update)\n    + alert_channel.read granted by role: roles/finance"
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 type to register\n"), "{stdout}");
    assert!(server.stop().success());
}
