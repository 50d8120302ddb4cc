//! `schema validate` and `schema test`: offline, on the examples and on
//! broken copies of them, with their messages and exit codes.

use std::path::{Path, PathBuf};

use crate::process::{run, text};

/// The repository's examples/schema folder.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schema")
}

/// A copy of the examples in a temporary folder, with `edit` applied to
/// `file`'s text.
fn edited(file: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["schema.yaml", "schema.test.yaml"] {
        let original = std::fs::read_to_string(examples().join(name)).unwrap();
        let text = if name == file {
            edit(original)
        } else {
            original
        };
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn the_examples_validate_and_their_tests_pass() {
    let dir = examples();
    let output = run(&dir, &["schema", "validate", "schema.yaml"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "schema.yaml: valid (3 types, 7 permissions)\n"
    );
    let output = run(&dir, &["schema", "test", "schema.test.yaml"]);
    assert!(output.status.success(), "{}", text(&output.stdout));
    assert!(text(&output.stdout).ends_with("23 passed, 0 failed\n"));
}

#[test]
fn a_failing_assertion_is_named_with_what_was_expected_and_what_came() {
    let dir = edited("schema.test.yaml", |t| {
        t.replace(
            "user:tom may not deploy deployment:api-us-1",
            "user:tom may deploy deployment:api-us-1",
        )
        .replace("expect: [user:alice, user:olga]", "expect: [user:alice]")
    });
    let output = run(dir.path(), &["schema", "test", "schema.test.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    for line in [
        "schema.test.yaml:34:5: `user:tom may deploy deployment:api-us-1`: expected allowed, got denied",
        "schema.test.yaml:63:12: `user:* may manage alert_channel:pager`: expected [user:alice], got [user:alice, user:olga]",
        "21 passed, 2 failed",
    ] {
        assert!(stdout.contains(line), "`{line}` not in:\n{stdout}");
    }
}

#[test]
fn an_invalid_schema_is_reported_at_its_line_and_column() {
    let cases: [(&str, &str, &str); 3] = [
        (
            "          - role: admin",
            "          - role: boss",
            "schema.yaml:22:13: `roles/boss` is not a built-in role",
        ),
        (
            "    parent: organization",
            "    parnt: organization",
            "schema.yaml:46:5: unknown field `parnt`",
        ),
        (
            "  - name: tunnel_config",
            "  - name: tunnel_config\n    parent: [oops",
            "schema.yaml:30:13: ",
        ),
    ];
    for (from, to, expected) in cases {
        let dir = edited("schema.yaml", |t| t.replacen(from, to, 1));
        let output = run(dir.path(), &["schema", "validate", "schema.yaml"]);
        assert_eq!(output.status.code(), Some(3), "{to}");
        assert!(
            text(&output.stderr).starts_with(expected),
            "{to}: {}",
            text(&output.stderr)
        );
        // A test file over an invalid schema is invalid too, not failing.
        let output = run(dir.path(), &["schema", "test", "schema.test.yaml"]);
        assert_eq!(output.status.code(), Some(3), "{to}");
    }
}

#[test]
fn a_relationship_the_services_would_refuse_makes_the_test_file_invalid() {
    let dir = edited("schema.test.yaml", |t| {
        t.replace(
            "  - deployment:web-eu-1#parent@project:checkout",
            "  - deployment:web-eu-1#parent@organization:acme",
        )
    });
    let output = run(dir.path(), &["schema", "test", "schema.test.yaml"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        text(&output.stderr).contains(
            "schema.test.yaml:21:5: `deployment:web-eu-1#parent@organization:acme`: the parent of a `deployment` is an `project:…`"
        ),
        "{}",
        text(&output.stderr)
    );
    let output = run(dir.path(), &["schema", "test", "missing.yaml"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("missing.yaml: cannot read"));
}
