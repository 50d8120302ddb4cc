//! Contexts live in an owner-only file; login stores a session there; the
//! answers parse as JSON and YAML; completions print a script.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_stores_an_owner_only_session_and_output_parses() {
    let (sandbox, _user, organization, config) = signed_in("ada@example.com").await;
    let file = config.path().join("contexts.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the contexts file is owner-only");
    }
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains("\"session\""), "{stored}");
    assert!(!stored.contains(PASSWORD), "the password is never stored");

    let listed = tenantry(config.path(), &["context", "list"], "");
    assert!(stdout(&listed).contains("session of ada@example.com"));
    assert!(!stdout(&listed).contains("refresh"), "no secret is shown");

    let json = tenantry(config.path(), &["-o", "json", "organizations", "list"], "");
    assert_eq!(code(&json), 0, "{}", stderr(&json));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value[0]["name"], format!("organizations/{organization}"));

    let yaml = tenantry(
        config.path(),
        &["-o", "yaml", "projects", "list", "-O", &organization],
        "",
    );
    assert_eq!(code(&yaml), 0, "{}", stderr(&yaml));
    let projects: Vec<serde_json::Value> = serde_saphyr::from_str(&stdout(&yaml)).unwrap();
    assert_eq!(projects.len(), 1, "the default project");

    let removed = tenantry(config.path(), &["context", "remove", "nope"], "");
    assert_eq!(code(&removed), 6, "invalid input");
    sandbox.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_printed_for_each_shell() {
    let config = tempfile::tempdir().unwrap();
    for (shell, needle) in [
        ("bash", "complete"),
        ("zsh", "#compdef"),
        ("fish", "complete -c tenantry"),
    ] {
        let output = tenantry(config.path(), &["completions", shell], "");
        assert_eq!(code(&output), 0, "{shell}");
        assert!(stdout(&output).contains(needle), "{shell}");
        assert!(stdout(&output).contains("lookup-resources"), "{shell}");
    }
}
