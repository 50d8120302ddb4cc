//! `tenantry service-accounts`: a platform administrator makes a service
//! account and a credential whose secret is shown once; the credential
//! signs the CLI in; a revoked one no longer does; others may not make
//! service accounts.

use super::*;

const ROOT: &str = "root@example.com";

async fn as_platform_admin() -> (Sandbox, people::User, String, tempfile::TempDir) {
    let sandbox = Sandbox::builder()
        .configure(|config| config.identity.platform_admins = vec![ROOT.into()])
        .start()
        .await
        .unwrap();
    signed_in_on(sandbox, ROOT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_credential_signs_the_cli_in_until_revoked() {
    let (sandbox, _root, organization, config) = as_platform_admin().await;
    let path = config.path();
    let account = json(path, &["service-accounts", "create", "deployer"]);
    let account = account["name"].as_str().unwrap().to_string();
    assert!(account.starts_with("serviceAccounts/"), "{account}");
    let got = json(path, &["service-accounts", "get", &last_id(&account)]);
    assert_eq!(got["displayName"], "deployer");

    // The secret is printed once, with a warning; listings never show it.
    let args = ["service-accounts", "credentials", "create", &account];
    let created = tenantry(path, &[&["-o", "json"], &args[..]].concat(), "");
    assert_eq!(code(&created), 0, "{}", stderr(&created));
    assert!(stderr(&created).contains("not shown again"));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let client_id = created["credential"]["clientId"].as_str().unwrap();
    let secret = created["clientSecret"].as_str().unwrap();
    let credential = created["credential"]["name"].as_str().unwrap();
    let listed = tenantry(
        path,
        &["service-accounts", "credentials", "list", &account],
        "",
    );
    assert_eq!(code(&listed), 0, "{}", stderr(&listed));
    assert!(stdout(&listed).contains(client_id), "{}", stdout(&listed));
    assert!(!stdout(&listed).contains(secret));

    // The credential signs a fresh context in, for the organization.
    let machine = context(&sandbox);
    let login = |config: &Path| {
        let args = ["login", "--client-id", client_id, "--client-secret", secret];
        let args = [&args[..], &["--organization", &organization]].concat();
        tenantry(config, &args, "")
    };
    let signed = login(machine.path());
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));
    let plans = json(machine.path(), &["plans", "list"]);
    assert!(plans.as_array().is_some_and(|p| !p.is_empty()), "{plans}");

    // Revoked, the secret stops working at once.
    let revoked = tenantry(
        path,
        &["service-accounts", "credentials", "revoke", credential],
        "",
    );
    assert_eq!(code(&revoked), 0, "{}", stderr(&revoked));
    let refused = login(context(&sandbox).path());
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));
    let none = json(path, &["service-accounts", "credentials", "list", &account]);
    assert_eq!(none, serde_json::json!([]));
    sandbox.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_platform_admins_make_service_accounts_and_unknown_ones_are_not_found() {
    let (sandbox, _root, _organization, config) = as_platform_admin().await;
    let before = json(config.path(), &["service-accounts", "list"]);

    // Ada is an ordinary user: refused, and nothing is made.
    let channel = sandbox.channel().await.unwrap();
    people::sign_up(&channel, "ada@example.com", "Ada").await;
    let ada = context(&sandbox);
    let login = tenantry(
        ada.path(),
        &["login", "--email", "ada@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code(&login), 0, "{}", stderr(&login));
    let refused = tenantry(ada.path(), &["service-accounts", "create", "sneaky"], "");
    assert_eq!(code(&refused), 5, "{}", stderr(&refused));
    assert_eq!(json(config.path(), &["service-accounts", "list"]), before);

    let unknown = "serviceAccounts/0190a3c4-0000-7000-8000-000000000000";
    let missing = tenantry(config.path(), &["service-accounts", "get", unknown], "");
    assert_eq!(code(&missing), 7, "{}", stderr(&missing));
    let deleted = tenantry(config.path(), &["service-accounts", "delete", unknown], "");
    assert_eq!(code(&deleted), 7, "{}", stderr(&deleted));
    sandbox.shutdown().await.unwrap();
}

fn last_id(name: &str) -> String {
    tenantry_testkit::last_id(name)
}
