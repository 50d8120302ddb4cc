//! A PostgreSQL server of a test's own.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// A PostgreSQL server of the test's own (a fresh cluster in a temporary
/// directory, run as the `postgres` user), which the test may stop and
/// start again: for outage tests that must not disturb the shared server.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: TempDir,
    bin: PathBuf,
}

impl PostgresServer {
    /// Whether a local PostgreSQL installation can run one.
    pub fn available() -> bool {
        Self::bin_dir().is_some()
    }

    fn bin_dir() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    /// Initializes and starts a cluster on a free port.
    pub async fn start() -> anyhow::Result<PostgresServer> {
        let bin = Self::bin_dir().ok_or_else(|| anyhow::anyhow!("no PostgreSQL installation"))?;
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Self::as_postgres(&format!("chown postgres {}", dir.path().display()), false)?;
        Self::as_postgres(
            &format!(
                "{} -D {}/data -A trust -U postgres --no-sync -E UTF8",
                bin.join("initdb").display(),
                dir.path().display()
            ),
            true,
        )?;
        let server = PostgresServer { port, dir, bin };
        server.resume().await?;
        Ok(server)
    }

    fn as_postgres(command: &str, as_postgres: bool) -> anyhow::Result<()> {
        let status = if as_postgres {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", command])
                .stdout(Stdio::null())
                .status()?
        } else {
            Command::new("sh").args(["-c", command]).status()?
        };
        anyhow::ensure!(status.success(), "`{command}` failed");
        Ok(())
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would.
    pub fn stop(&self) -> anyhow::Result<()> {
        Self::as_postgres(
            &format!(
                "{} -D {}/data -m immediate stop",
                self.bin.join("pg_ctl").display(),
                self.dir.path().display()
            ),
            true,
        )
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn resume(&self) -> anyhow::Result<()> {
        Self::as_postgres(
            &format!(
                "{} -D {dir}/data -l {dir}/log -o '-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off' start",
                self.bin.join("pg_ctl").display(),
                dir = self.dir.path().display(),
                port = self.port
            ),
            true,
        )?;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("postgres did not start on port {}", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
