//! The `tenantry` binary from the outside: bad flags and configuration fail
//! at start and say which key and what is allowed; unreachable dependencies
//! are retried and named by their URL (without its password); a signal stops
//! it cleanly, also while it waits for them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tenantry(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantry"));
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        // The outer environment must not leak into these checks.
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env("TENANTRY_LOG__FORMAT", "text");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Runs `tenantry` in a fresh directory and expects it to fail with a
/// message containing every one of `needles`.
fn check_fails(args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = tenantry(dir.path());
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = run(&mut command);
    let message = stderr(&output);
    assert!(!output.status.success(), "{args:?} should fail");
    for needle in needles {
        assert!(
            message.contains(needle),
            "{args:?}: `{needle}` not in: {message}"
        );
    }
}

#[test]
fn help_documents_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tenantry(dir.path()).arg("--help"));
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    // Every variable is one `config explain` lists; the help points there.
    for word in [
        "serve",
        "migrate",
        "--config",
        "TENANTRY_",
        "tenantry config explain",
    ] {
        assert!(help.contains(word), "{word} missing from --help");
    }
    let output = run(tenantry(dir.path()).args(["serve", "--help"]));
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "--services",
        "--grpc-addr",
        "--http-addr",
        "--database-url",
        "--nats-url",
    ] {
        assert!(help.contains(word), "{word} missing from serve --help");
    }
}

#[test]
fn bad_flags_and_values_name_what_is_wrong() {
    check_fails(&["serve", "--no-such-flag"], &[], &["--no-such-flag"]);
    check_fails(
        &["serve", "--services", "rbac,ledger"],
        &[],
        &[
            "ledger",
            "identity, organization, rbac, billing, audit, gateway",
        ],
    );
    check_fails(&["serve", "--grpc-addr", "nowhere"], &[], &["grpc_addr"]);
    check_fails(
        &["serve"],
        &[("TENANTRY_HTTP_ADDR", "localhost")],
        &["`http_addr`", "TENANTRY_HTTP_ADDR", "socket address"],
    );
    check_fails(
        &["serve"],
        &[("TENANTRY_LOG__FORMAT", "xml")],
        &["`log.format`", "TENANTRY_LOG__FORMAT", "json", "text"],
    );
    check_fails(
        &["serve"],
        &[("TENANTRY_NO_SUCH_KEY", "1")],
        &["no_such_key", "expected"],
    );
    check_fails(
        &["serve"],
        &[("TENANTRY_PAGE_TOKEN_KEY", "abc")],
        &["page_token_key", "64 hex"],
    );
    check_fails(
        &["serve", "--database-url", "mysql://x"],
        &[],
        &["database_url", "postgres://"],
    );
    check_fails(
        &["serve"],
        &[
            ("TENANTRY_BILLING__PROVIDERS__STRIPE__KIND", "stripe"),
            (
                "TENANTRY_BILLING__PROVIDERS__STRIPE__WEBHOOK_SECRET",
                "short",
            ),
        ],
        &["billing.providers.stripe.webhook_secret", "16"],
    );
    check_fails(
        &["serve"],
        &[("TENANTRY_BILLING__CATALOG_FILE", "/no/such/plans.toml")],
        &["billing.catalog_file", "/no/such/plans.toml"],
    );
    check_fails(
        &["serve"],
        &[("TENANTRY_AUDIT__CHECKPOINT_KEY", "abc")],
        &["audit.checkpoint_key", "64 hex"],
    );
}

#[test]
fn unknown_keys_in_the_config_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenantry.toml");
    std::fs::write(&file, "grpc_addr = \"127.0.0.1:0\"\n[outbox]\nbatch = 3\n").unwrap();
    let output = run(tenantry(dir.path()).args(["serve", "--config"]).arg(&file));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("batch") && message.contains("batch_size"),
        "{message}"
    );
}

#[test]
fn a_port_in_use_says_which() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    check_fails(
        &["serve", "--grpc-addr", &addr, "--http-addr", "127.0.0.1:0"],
        &[],
        &["grpc_addr", &addr, "already in use"],
    );
}

#[test]
fn unreachable_dependencies_are_retried_and_named_without_the_password() {
    // Port 1 on loopback refuses connections at once.
    let database = "postgres://app:hunter2@127.0.0.1:1/tenantry";
    let redacted = "postgres://app:***@127.0.0.1:1/tenantry";

    // The migration Job fails (and is retried by its controller).
    let dir = tempfile::tempdir().unwrap();
    let output = run(tenantry(dir.path()).args(["migrate", "--database-url", database]));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains(redacted), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );

    // A server keeps its ports and retries, logging each attempt, until the
    // dependency answers or a signal stops it.
    for (flag, url, named) in [
        ("--database-url", database, redacted),
        ("--nats-url", "nats://127.0.0.1:1", "nats://127.0.0.1:1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tenantry(dir.path())
            .args([
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .args([flag, url])
            .env("TENANTRY_LOG__FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut attempts = Vec::new();
        while attempts.len() < 2 {
            let line = lines
                .next()
                .expect("the server exited instead of retrying")
                .unwrap();
            assert!(!line.contains("hunter2"), "the password leaked: {line}");
            if line.contains("not serving until it answers") {
                assert!(line.contains(named), "{line}");
                attempts.push(line);
            }
        }
        let second: serde_json::Value = serde_json::from_str(&attempts[1]).unwrap();
        assert_eq!(second["fields"]["attempt"], 2, "{attempts:?}");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "{flag}: exit status {status}");
    }
}

#[test]
fn migrate_creates_the_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tenantry(dir.path()).args(["migrate"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.path().join(".tenantry/tenantry.db").exists());
    // Running it again is a no-op.
    let output = run(tenantry(dir.path()).args(["migrate"]));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tenantry(dir.path())
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("TENANTRY_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the line announcing the chosen ports.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let serving = loop {
        let line = lines.next().expect("the server exited early").unwrap();
        if line.contains("tenantry is serving") {
            break line;
        }
        assert!(Instant::now() < deadline, "the server did not start");
    };
    let log: serde_json::Value = serde_json::from_str(&serving).unwrap();
    let grpc_addr = log["fields"]["grpc_addr"].as_str().unwrap().to_string();
    assert!(
        !grpc_addr.ends_with(":0"),
        "the chosen port is logged: {grpc_addr}"
    );
    std::net::TcpStream::connect(&grpc_addr).unwrap();

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("tenantry stopped")),
        "{rest:?}"
    );
}

#[test]
fn a_subset_of_services_is_chosen_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tenantry(dir.path()).args([
        "migrate",
        "--services",
        "identity,rbac",
        "--data-dir",
        "data",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(tenantry(dir.path())
        .args(["migrate", "--data-dir", "data"])
        .env("TENANTRY_SERVICES", "organization"));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn production_mode_refuses_single_machine_settings() {
    // Everything a development start takes for granted, listed at once.
    check_fails(
        &["serve", "--services", "audit"],
        &[("TENANTRY_MODE", "production")],
        &[
            "mode = \"production\"",
            "SQLite in `data_dir` cannot be shared",
            "TENANTRY_PAGE_TOKEN_KEY",
            "TENANTRY_AUDIT__CHECKPOINT_KEY",
            "TENANTRY_EDGE_KEY",
            "NATS_URL",
        ],
    );
    // A password on the command line is refused, and never echoed.
    let dir = tempfile::tempdir().unwrap();
    let output = run(tenantry(dir.path())
        .args([
            "serve",
            "--services",
            "identity",
            "--database-url",
            "postgres://app:hunter2secret@127.0.0.1:1/tenantry",
        ])
        .env("TENANTRY_MODE", "production"));
    let message = stderr(&output);
    assert!(!output.status.success());
    assert!(
        message.contains("pass DATABASE_URL in the environment"),
        "{message}"
    );
    assert!(message.contains("identity.public_base_url"), "{message}");
    assert!(message.contains("TENANTRY_SEALING_KEYS__"), "{message}");
    assert!(!message.contains("hunter2secret"), "{message}");
    check_fails(
        &["serve"],
        &[("TENANTRY_MODE", "staging")],
        &["mode", "development", "production"],
    );
}
