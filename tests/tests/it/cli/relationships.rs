//! `relationships export` prints what `import` reads; an import checks
//! every line before it writes, and says where to resume when a write is
//! refused.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_prints_importable_lines_and_a_bad_import_writes_nothing() {
    let (sandbox, _ada, organization, config) = signed_in("ada@example.com").await;
    let path = config.path();
    let in_org = format!("organizations/{organization}");
    let export = |args: &[&str]| {
        let mut all = vec!["relationships", "export", "--organization", &in_org];
        all.extend_from_slice(args);
        tenantry(path, &all, "")
    };
    // Built-in relationships show: the default project's parent.
    let exported = export(&["project", "--relation", "parent"]);
    assert_eq!(code(&exported), 0, "{}", stderr(&exported));
    let lines = stdout(&exported);
    let parent = format!("#parent@organization:{organization}");
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("project:") && l.ends_with(&parent)),
        "{lines}"
    );

    // A malformed line stops the import before anything is written.
    let file = path.join("relationships.txt");
    std::fs::write(&file, format!("# comment\n{lines}not a relationship\n")).unwrap();
    let file = file.to_str().unwrap();
    let malformed = tenantry(path, &["relationships", "import", file], "");
    assert_eq!(code(&malformed), 6, "{}", stderr(&malformed));
    assert!(
        stderr(&malformed).contains("relationships.txt:"),
        "{}",
        stderr(&malformed)
    );

    // Built-in relationships are the services' own: the write is refused,
    // the error says where to resume, and the store is as it was.
    std::fs::write(path.join("relationships.txt"), &lines).unwrap();
    let refused = tenantry(
        path,
        &["relationships", "import", file, "--batch-size", "1"],
        "",
    );
    assert_ne!(code(&refused), 0);
    assert!(
        stderr(&refused).contains("resume with --start-line 1"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(stdout(&export(&["project", "--relation", "parent"])), lines);

    // JSON lines of a read parse one by one.
    let read = tenantry(
        path,
        &[
            "-o",
            "json",
            "relationships",
            "read",
            "project",
            "--organization",
            &in_org,
        ],
        "",
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&read.stdout).unwrap();
    assert!(rows.iter().any(|r| r["relation"] == "parent"), "{rows:?}");
    sandbox.shutdown().await.unwrap();
}
