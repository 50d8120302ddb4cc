//! The `tenantry` CLI's remote commands, run as a process against a
//! sandbox: contexts in an owner-only file, login, output formats, and the
//! exit codes scripts rely on.

mod billing;
mod bulk;
mod check;
mod config;
mod contexts;
mod relationships;
mod roundtrip;
mod service_accounts;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tenantry_testkit::Sandbox;
use tenantry_testkit::people::{self, PASSWORD};

/// Runs the CLI with its configuration in `config`, `stdin` as input. It
/// blocks: tests that serve a sandbox run on a multi-threaded runtime.
fn tenantry(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantry-process"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TENANTRY_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(args)
        .env("TENANTRY_CONFIG_DIR", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code, not a signal")
}

/// A sandbox, a user signed up on it, and a configuration directory whose
/// current context is signed in as that user (through `tenantry login`).
async fn signed_in(email: &str) -> (Sandbox, people::User, String, tempfile::TempDir) {
    signed_in_on(Sandbox::builder().start().await.unwrap(), email).await
}

/// [`signed_in`] on a sandbox the test configured.
async fn signed_in_on(
    sandbox: Sandbox,
    email: &str,
) -> (Sandbox, people::User, String, tempfile::TempDir) {
    let channel = sandbox.channel().await.unwrap();
    let (user, organization) = people::sign_up(&channel, email, "Ada").await;
    let config = context(&sandbox);
    let login = tenantry(
        config.path(),
        &["login", "--email", email, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code(&login), 0, "{}", stderr(&login));
    (sandbox, user, organization, config)
}

/// A configuration directory whose current context points at `sandbox`,
/// with no credential yet.
fn context(sandbox: &Sandbox) -> tempfile::TempDir {
    let config = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", sandbox.server.grpc_addr);
    let set = tenantry(
        config.path(),
        &["context", "set", "local", "--endpoint", &endpoint],
        "",
    );
    assert_eq!(code(&set), 0, "{}", stderr(&set));
    config
}

/// Runs the CLI with `-o json` and parses its answer; the command must
/// succeed.
fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let output = tenantry(config, &all, "");
    assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}
