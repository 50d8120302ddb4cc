//! The `tenantry` program as a process of the test's own, on a free port.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::sandbox::{mail_token_in, mails_in};

/// The `tenantry` program running as a separate process, started by a test
/// with the same command line and environment a deployment would give it.
/// Killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it serves gRPC.
    pub grpc_addr: SocketAddr,
    /// Where it serves HTTP (`/readyz`, `/metrics`).
    pub http_addr: SocketAddr,
    data_dir: TempDir,
}

/// The file in a process's data directory that holds its logs.
const LOG_FILE: &str = "process.log";

impl ServerProcess {
    /// Runs `binary serve --services <services>` on free ports with a data
    /// directory of its own and `envs` added to the environment, and waits
    /// until `/readyz` answers 200.
    pub async fn start(
        binary: &str,
        services: &str,
        envs: &[(&str, String)],
    ) -> anyhow::Result<ServerProcess> {
        Self::start_on(binary, services, free_addr()?, free_addr()?, envs).await
    }

    /// As [`start`](Self::start), on the given addresses: for a set of
    /// processes that must know each other's addresses before they start.
    pub async fn start_on(
        binary: &str,
        services: &str,
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
        envs: &[(&str, String)],
    ) -> anyhow::Result<ServerProcess> {
        let mut process = Self::spawn_on(binary, services, grpc_addr, http_addr, envs)?;
        process.wait_ready().await?;
        Ok(process)
    }

    /// Starts the process without waiting for it: a process is ready only
    /// once the peers it calls answer, so processes that call each other
    /// are all spawned before any is awaited (as Kubernetes starts pods).
    pub fn spawn_on(
        binary: &str,
        services: &str,
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
        envs: &[(&str, String)],
    ) -> anyhow::Result<ServerProcess> {
        let dir = tempfile::tempdir()?;
        // Logs go to stdout when TENANTRY_TEST_LOG asks for them, and
        // otherwise (warnings and errors) to a file a failing test can show.
        let logs = match std::env::var_os("TENANTRY_TEST_LOG") {
            Some(_) => Stdio::inherit(),
            None => std::fs::File::create(dir.path().join(LOG_FILE))?.into(),
        };
        let mut command = Command::new(binary);
        // A process of one service gets small pools (two writing, two
        // reading, besides the one holding its relay's leadership): tests run side by
        // side against one PostgreSQL (100 connections by default), and a
        // deployment test runs six processes; at the default 10 each, two
        // such tests and a sandbox can exhaust the server, and then every
        // pool times out. Processes of several services keep the default
        // their background tasks need. `envs` may set another size.
        if !services.contains(',') {
            command.env("TENANTRY_DATABASE__MAX_CONNECTIONS", "4");
        }
        let child = command
            .args(["serve", "--services", services])
            .arg("--grpc-addr")
            .arg(grpc_addr.to_string())
            .arg("--http-addr")
            .arg(http_addr.to_string())
            .arg("--data-dir")
            .arg(dir.path())
            .env(
                "TENANTRY_LOG__LEVEL",
                std::env::var("TENANTRY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // One-step sign-up, as in the sandbox; `envs` may turn it back.
            .env("TENANTRY_IDENTITY__VERIFY_BEFORE_SIGN_IN", "false")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(logs)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {binary}: {e}"))?;
        Ok(ServerProcess {
            child,
            grpc_addr,
            http_addr,
            data_dir: dir,
        })
    }

    /// What the process logged (warnings and errors), for a failing test's
    /// message; empty when TENANTRY_TEST_LOG sends the logs to stdout.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// The token in the newest mail of `kind` this process sent to `to`
    /// (development mail directory), as [`Sandbox::mail_token`].
    pub fn mail_token(&self, to: &str, kind: &str) -> Option<String> {
        mail_token_in(&self.data_dir.path().join("mail"), to, kind)
    }

    /// Every mail of `kind` this process sent, oldest first: (recipient,
    /// token). One read of the directory, for loaders that send thousands.
    pub fn mails(&self, kind: &str) -> Vec<(String, String)> {
        mails_in(&self.data_dir.path().join("mail"), kind)
    }

    /// Waits until `/readyz` answers 200 (at most 10 s).
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the process exited at start: {status}");
            }
            if self.is_ready().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the process did not become ready on {}", self.http_addr)
    }

    /// Waits until the process answers on its HTTP port (`/healthz`): it
    /// is up, ready or not.
    pub async fn wait_up(&mut self) -> anyhow::Result<()> {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the process exited at start: {status}");
            }
            if matches!(http_get(self.http_addr, "/healthz").await, Ok((200, _))) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the process did not answer on {}", self.http_addr)
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn is_ready(&self) -> bool {
        matches!(http_get(self.http_addr, "/readyz").await, Ok((200, _)))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The gRPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process as Kubernetes does (SIGTERM) and waits for it to
    /// exit; a graceful shutdown exits 0.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed: {sent}");
        Ok(self.child.wait()?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback address for a server a test starts as a process of its
/// own. Not asked of the kernel (port 0): that hands out ports from the
/// ephemeral range, where every other test's listeners and outgoing
/// connections also take theirs, so one could take the port before the
/// process binds it. These come from below that range (20000–31999), each
/// port once per test run, and are checked free when handed out.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    // Where this run starts: concurrent test processes start apart.
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(uuid::Uuid::new_v4().as_u128() as u32 % COUNT));
    for _ in 0..COUNT {
        let port = FIRST + next.fetch_add(1, Ordering::Relaxed) % COUNT;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    anyhow::bail!("no free port from {FIRST} to {}", FIRST + COUNT - 1)
}

/// A plain HTTP/1.1 GET, enough for the operational endpoints: returns the
/// status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {response}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
