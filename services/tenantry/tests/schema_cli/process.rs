//! The binary as a child process: commands in a directory of their own, and
//! an ephemeral server read from its ready line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// `tenantry` in `dir`, without the outer environment's storage settings.
pub fn tenantry(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantry"));
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env_remove("TENANTRY_CONFIG")
        .env("TENANTRY_LOG__LEVEL", "warn");
    command
}

/// Runs `tenantry ARGS` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    tenantry(dir).args(args).output().expect("the binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// A `tenantry serve --ephemeral` child: killed when dropped.
#[derive(Debug)]
pub struct EphemeralServer {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub mail: PathBuf,
}

impl EphemeralServer {
    /// Starts one in `dir` with `envs`, and reads its ready line.
    pub fn start(dir: &Path, envs: &[(&str, &str)]) -> EphemeralServer {
        let mut child = tenantry(dir)
            .args(["serve", "--ephemeral"])
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("stdout is readable");
        let field = |key: &str| -> String {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key}= in the ready line {line:?}"))
                .to_string()
        };
        EphemeralServer {
            grpc: field("grpc").parse().expect("an address"),
            http: field("http").parse().expect("an address"),
            mail: PathBuf::from(field("mail")),
            child,
        }
    }

    /// The gRPC endpoint as a URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        self.child.wait().expect("the server exits")
    }
}

impl Drop for EphemeralServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
