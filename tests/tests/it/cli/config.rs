//! `tenantry config`: every key explained from the one description, and a
//! configuration checked without starting, every problem at once.

use super::*;

/// Runs `tenantry config ARGS…` with no TENANTRY_* variable of the test's
/// own environment.
fn config(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut all = vec!["config"];
    all.extend_from_slice(args);
    tenantry(home.path(), &all, "")
}

/// A file in a fresh directory (kept alive by the returned guard).
fn file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenantry.toml");
    std::fs::write(&path, contents).unwrap();
    (dir, path.display().to_string())
}

/// The `  - ` lines of a report.
fn reported(output: &Output) -> Vec<String> {
    stdout(output)
        .lines()
        .filter_map(|line| line.strip_prefix("  - "))
        .map(str::to_string)
        .collect()
}

#[test]
fn config_explain_lists_every_key_with_its_variable_and_default() {
    let output = config(&["explain"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let table = stdout(&output);
    let keys = tenantry::explain::keys();
    // A header, its rule, and one row per key.
    assert_eq!(table.lines().count(), keys.len() + 2, "{table}");
    for key in &keys {
        assert!(table.contains(&format!("`{}`", key.env())), "{}", key.key);
    }
    for row in [
        "| `log.level` | filter | `info` | `TENANTRY_LOG__LEVEL` |",
        "`DATABASE_URL`, `--database-url`",
        "| `identity.access_token_ttl_secs` | integer (≤ 3600) | `900` |",
    ] {
        assert!(table.contains(row), "{row} missing from:\n{table}");
    }
    let only = stdout(&config(&["explain", "peers."]));
    assert_eq!(only.lines().count(), 2 + 6, "{only}");
}

#[test]
fn config_check_reports_every_problem_at_once() {
    let (_dir, path) = file(
        "nats_ack_wait_ms = 5\n\
         [peers]\nrbac = \"ftp://rbac\"\n\
         [organization]\npurge_after_days = 0\n",
    );
    let output = config(&["check", &path]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let problems = reported(&output);
    assert_eq!(problems.len(), 3, "{}", stdout(&output));
    for (problem, key) in problems.iter().zip([
        "nats_ack_wait_ms",
        "peers.rbac",
        "organization.purge_after_days",
    ]) {
        assert!(problem.contains(key), "{problem}");
    }
    assert!(stdout(&output).starts_with("3 problems"));

    // A key that does not exist is named with the file it is in.
    let (_dir, path) = file("grpc_adr = \"127.0.0.1:1\"\n");
    let output = config(&["check", &path]);
    assert_eq!(code(&output), 1);
    assert!(
        reported(&output)[0].contains("grpc_adr"),
        "{}",
        stdout(&output)
    );

    let (_dir, path) = file("[log]\nlevel = \"debug\"\n");
    let output = config(&["check", &path]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    assert_eq!(stdout(&output), "ok\n");
}

#[test]
fn config_check_applies_the_production_rules_of_the_chosen_services() {
    let key = "ab".repeat(32);
    let (_dir, path) = file(&format!(
        "mode = \"production\"\n\
         database_url = \"postgres://db/tenantry\"\n\
         nats_url = \"nats://nats:4222\"\n\
         page_token_key = \"{key}\"\ninternal_key = \"{key}\"\nedge_key = \"{key}\"\n\
         [sealing_keys]\nk1 = \"{key}\"\n\
         [audit]\ncheckpoint_key = \"{key}\"\n\
         [peers]\nidentity = \"http://identity:50051\"\n"
    ));
    // Audit calls rbac, whose address is missing; nothing else is.
    let output = config(&["check", &path, "--services", "audit"]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let problems = reported(&output);
    assert_eq!(problems.len(), 1, "{}", stdout(&output));
    assert!(problems[0].contains("TENANTRY_PEERS__RBAC"), "{problems:?}");
    // A gateway has no use for identity's public base URL; identity does.
    let gateway = stdout(&config(&["check", &path, "--services", "gateway"]));
    assert!(!gateway.contains("public_base_url"), "{gateway}");
    let identity = stdout(&config(&["check", &path, "--services", "identity"]));
    assert!(identity.contains("identity.public_base_url"), "{identity}");
    // Everything in one process needs no peers.
    let all = config(&["check", &path]);
    assert_eq!(reported(&all).len(), 1, "{}", stdout(&all));
}

#[test]
fn config_check_reads_the_plan_catalog_and_the_administrators_addresses() {
    let (_catalog_dir, catalog) = file("[plans.gold]\ndisplay_name = \"Gold\"\n");
    let (_dir, path) = file(&format!(
        "[billing]\ncatalog_file = \"{catalog}\"\n\
         [identity]\nplatform_admins = [\"not-an-address\"]\n"
    ));
    let output = config(&["check", &path]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let problems = reported(&output);
    assert_eq!(problems.len(), 2, "{}", stdout(&output));
    assert!(
        problems[0].contains("`identity.platform_admins`: must contain an @ (`not-an-address`)"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("`gold` is not a built-in plan"),
        "{problems:?}"
    );
}
