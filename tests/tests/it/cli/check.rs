//! `tenantry check` answers with its exit code: 0 allowed, 1 denied; and
//! every failure says what went wrong with a code of its own.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exit_codes_tell_allowed_denied_and_each_failure() {
    let (sandbox, ada, organization, config) = signed_in("ada@example.com").await;
    let path = config.path();
    let resource = a_new_project_is_readable_by_its_creator(path, &ada, &organization);
    let grace = a_finance_member_is_denied(&sandbox, path, &organization, &resource).await;
    users_ask_only_about_themselves(path, &resource, &grace);
    each_failure_has_a_code_of_its_own(path, &resource, &ada);
    another_organization_is_refused(path);
    sandbox.shutdown().await.unwrap();
}

/// `tenantry check RESOURCE project.read SUBJECT EXTRA…`.
fn check(path: &Path, resource: &str, subject: &str, extra: &[&str]) -> Output {
    let mut args = vec!["check", resource, "project.read", subject];
    args.extend_from_slice(extra);
    tenantry(path, &args, "")
}

/// A project created by the CLI is readable by its creator at once; the
/// project's `type:id`.
fn a_new_project_is_readable_by_its_creator(
    path: &Path,
    ada: &people::User,
    organization: &str,
) -> String {
    let created = tenantry(
        path,
        &[
            "-o",
            "json",
            "projects",
            "create",
            "-O",
            organization,
            "Web",
        ],
        "",
    );
    assert_eq!(code(&created), 0, "{}", stderr(&created));
    let project: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let project = tenantry_testkit::last_id(project["name"].as_str().unwrap());
    let resource = format!("project:{project}");
    let allowed = check(path, &resource, &format!("user:{}", ada.id), &["--explain"]);
    assert_eq!(code(&allowed), 0, "{}", stderr(&allowed));
    assert!(stdout(&allowed).starts_with("allowed"));
    resource
}

/// Grace is invited with the finance role (billing only) and signs up
/// with her own credentials: she holds no project access, and asking as
/// herself she is denied (exit code 1).
async fn a_finance_member_is_denied(
    sandbox: &Sandbox,
    path: &Path,
    organization: &str,
    resource: &str,
) -> people::User {
    let invited = tenantry(
        path,
        &[
            "invitations",
            "create",
            "-O",
            organization,
            "grace@example.com",
            "--role",
            "roles/finance",
        ],
        "",
    );
    assert_eq!(code(&invited), 0, "{}", stderr(&invited));
    let token = sandbox
        .mail_token("grace@example.com", "invitation")
        .expect("an invitation mail");
    let grace = join_with(sandbox, &token).await;
    let subject = format!("user:{}", grace.id);
    let denied = check(
        path,
        resource,
        &subject,
        &["--consistency", "full", "--token", &grace.token],
    );
    assert_eq!(code(&denied), 1, "{}", stderr(&denied));
    assert!(stdout(&denied).starts_with("denied"));
    grace
}

/// Ada asking about Grace is refused (exit code 5).
fn users_ask_only_about_themselves(path: &Path, resource: &str, grace: &people::User) {
    let refused = check(path, resource, &format!("user:{}", grace.id), &[]);
    assert_eq!(code(&refused), 5, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("PERMISSION_DENIED"));
}

/// Bad input, bad credentials, and no server, each in words.
fn each_failure_has_a_code_of_its_own(path: &Path, resource: &str, ada: &people::User) {
    let ada = format!("user:{}", ada.id);
    let malformed = check(path, resource, "nobody", &[]);
    assert_eq!(code(&malformed), 6);
    assert!(
        stderr(&malformed).contains("type:id"),
        "{}",
        stderr(&malformed)
    );
    let forged = check(path, resource, &ada, &["--token", "forged"]);
    assert_eq!(code(&forged), 4);
    assert!(
        stderr(&forged).contains("tenantry login"),
        "{}",
        stderr(&forged)
    );
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{dead}");
    let unreachable = check(path, resource, &ada, &["--endpoint", &endpoint]);
    assert_eq!(code(&unreachable), 3);
    assert!(
        stderr(&unreachable).contains(&dead.to_string()),
        "{}",
        stderr(&unreachable)
    );
    assert!(!stderr(&unreachable).contains("panicked"));
}

/// A call the caller may not make: another user's organization.
fn another_organization_is_refused(path: &Path) {
    let foreign = tenantry(
        path,
        &[
            "projects",
            "list",
            "-O",
            "organizations/0190a3c4-0000-7000-8000-000000000000",
        ],
        "",
    );
    assert!(matches!(code(&foreign), 5 | 7), "{}", stderr(&foreign));
}

/// Signs Grace up with an invitation token: she joins that organization.
async fn join_with(sandbox: &Sandbox, token: &str) -> people::User {
    use tenantry_proto::tenantry::identity::v1 as identity;
    let response = tenantry_testkit::clients::Identity::new(sandbox.channel().await.unwrap())
        .sign_up(identity::SignUpRequest {
            email: "grace@example.com".into(),
            password: PASSWORD.into(),
            display_name: "Grace".into(),
            invitation_token: token.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    people::User {
        id: tenantry_testkit::last_id(&response.user.unwrap().name),
        token: response.tokens.unwrap().access_token,
    }
}
