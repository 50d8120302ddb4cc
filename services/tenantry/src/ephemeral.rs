//! `tenantry serve --ephemeral`: a throw-away instance for tests, CI jobs
//! and trying things out (what `spicedb serve-testing` is to SpiceDB).
//!
//! Everything it keeps lives in a temporary directory removed when the
//! process stops: the SQLite database, the mail it "sends". Every key is
//! random and held in memory only, the bus is the in-process one, both
//! ports are free ones chosen by the system (unless given), sign-up signs
//! the user in at once (no verification mail to fish a token out of), and
//! logs go to stderr, so stdout carries one line a script can read:
//!
//! ```text
//! grpc=127.0.0.1:41234 http=127.0.0.1:41235 mail=/tmp/tenantry-ephemeral-Xyz/mail
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::io::Write as _;

use tempfile::TempDir;
use tenantry_kit::config::LogStream;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode};
use crate::services::ServiceKind;

/// Serves `services` as an ephemeral instance until `stop` is cancelled:
/// prints the ready line on stdout once every service answers, and removes
/// the temporary directory when the server has stopped.
pub async fn serve(
    mut config: Config,
    explicit: Explicit,
    services: &[ServiceKind],
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let ephemeral = Ephemeral::prepare(&mut config, explicit)?;
    let server = match crate::server::start_until(config, services, stop.clone()).await {
        Ok(server) => server,
        Err(error) if stop.is_cancelled() => {
            tracing::info!("stopped before serving: {error:#}");
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        ephemeral.ready_line(server.grpc_addr, server.http_addr)
    )?;
    stdout.flush()?;
    drop(stdout);
    let result = server.wait().await;
    // The database is closed: nothing of the instance is left behind.
    drop(ephemeral);
    result
}

/// The temporary home of an ephemeral instance: removed when dropped.
#[derive(Debug)]
pub struct Ephemeral {
    dir: TempDir,
}

/// What `--ephemeral` was told explicitly, which it leaves alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Explicit {
    /// `--grpc-addr` was given.
    pub grpc_addr: bool,
    /// `--http-addr` was given.
    pub http_addr: bool,
}

impl Ephemeral {
    /// Turns a loaded configuration into an ephemeral one and creates its
    /// temporary directory. Storage and bus settings from the file or the
    /// environment are replaced (nothing may outlive the process); a
    /// production-mode configuration is refused.
    pub fn prepare(config: &mut Config, explicit: Explicit) -> anyhow::Result<Ephemeral> {
        anyhow::ensure!(
            config.mode == Mode::Development,
            "invalid configuration: `--ephemeral` keeps nothing and cannot run with `mode = \"production\"`"
        );
        let dir = tempfile::Builder::new()
            .prefix("tenantry-ephemeral-")
            .tempdir()
            .map_err(|e| anyhow::anyhow!("cannot create a temporary directory: {e}"))?;
        config.data_dir = dir.path().to_path_buf();
        config.database_url = None;
        config.nats_url = None;
        config.auto_migrate = true;
        let free = SocketAddr::from(([127, 0, 0, 1], 0));
        if !explicit.grpc_addr {
            config.grpc_addr = free;
        }
        if !explicit.http_addr {
            config.http_addr = free;
        }
        config.page_token_key = Some(random_key());
        config.internal_key = Some(random_key());
        config.edge_key = Some(random_key());
        config.sealing_keys = [("ephemeral".to_string(), random_key())].into();
        config.sealing_key_id = Some("ephemeral".into());
        config.audit.checkpoint_key = Some(random_key());
        config.console.key = Some(random_key());
        config.identity.verify_before_sign_in = false;
        config.log.stream = LogStream::Stderr;
        config.validate()?;
        Ok(Ephemeral { dir })
    }

    /// Where the instance's mail is written (mailers of kind `log`).
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The line printed on stdout once the instance serves.
    pub fn ready_line(&self, grpc_addr: SocketAddr, http_addr: SocketAddr) -> String {
        format!(
            "grpc={grpc_addr} http={http_addr} mail={}",
            self.mail_dir().display()
        )
    }
}

fn random_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ephemeral_configuration_keeps_nothing_and_picks_free_ports() {
        let mut config = Config {
            database_url: Some("postgres://db/tenantry".into()),
            nats_url: Some("nats://nats:4222".into()),
            ..Config::default()
        };
        let ephemeral = Ephemeral::prepare(&mut config, Explicit::default()).unwrap();
        assert_eq!(config.data_dir, ephemeral.path());
        assert_eq!(config.database_url, None);
        assert_eq!(config.nats_url, None);
        assert_eq!(config.grpc_addr.port(), 0);
        assert_eq!(config.http_addr.port(), 0);
        assert!(!config.identity.verify_before_sign_in);
        assert_eq!(config.log.stream, LogStream::Stderr);
        for key in [
            &config.page_token_key,
            &config.internal_key,
            &config.edge_key,
            &config.console.key,
        ] {
            assert_eq!(key.as_deref().map(str::len), Some(64));
        }
        let path = ephemeral.path().to_path_buf();
        drop(ephemeral);
        assert!(!path.exists(), "the temporary directory is removed");
    }

    #[test]
    fn production_mode_is_refused() {
        let mut config = Config {
            mode: Mode::Production,
            ..Config::default()
        };
        let error = Ephemeral::prepare(&mut config, Explicit::default()).unwrap_err();
        assert!(error.to_string().contains("production"), "{error}");
    }
}
