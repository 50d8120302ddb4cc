//! `tenantry serve`: run the selected services until a signal.

use std::path::Path;

use clap::Args;

use super::CommonArgs;
use crate::config::Config;

/// The flags of `tenantry serve`.
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// gRPC listen address for every service (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    grpc_addr: Option<String>,
    /// HTTP listen address: gateway, /metrics, /healthz, /readyz.
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// A throw-away instance for tests and CI: storage in a temporary
    /// directory removed at exit, random keys, free ports (unless given),
    /// sign-up without email verification, logs on stderr. Prints
    /// `grpc=ADDR http=ADDR mail=DIR` on stdout once it serves.
    #[arg(long, conflicts_with_all = ["data_dir", "database_url", "nats_url"])]
    ephemeral: bool,
}

/// Serves until SIGTERM or SIGINT, then drains and flushes.
pub(super) async fn run(config_file: Option<&Path>, args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        common,
        grpc_addr,
        http_addr,
        ephemeral,
    } = args;
    let explicit = crate::ephemeral::Explicit {
        grpc_addr: grpc_addr.is_some(),
        http_addr: http_addr.is_some(),
    };
    let mut overrides = common.overrides();
    overrides.grpc_addr = grpc_addr;
    overrides.http_addr = http_addr;
    let password_on_command_line = overrides
        .database_url
        .as_deref()
        .is_some_and(tenantry_kit::db::has_password);
    let config = Config::load(config_file, &overrides)?;
    if !ephemeral {
        config.check_production(&common.services(), password_on_command_line)?;
    }
    // Listen before serving: a signal that arrives as soon as the
    // server says it is serving must stop it cleanly, not kill it.
    // A signal while the database or the bus is still awaited ends
    // the wait as well.
    let signals = Signals::listen()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        signals.wait().await;
        on_signal.cancel();
    });
    if ephemeral {
        return crate::ephemeral::serve(config, explicit, &common.services(), stop).await;
    }
    match crate::server::start_until(config, &common.services(), stop.clone()).await {
        Ok(server) => server.wait().await,
        Err(error) if stop.is_cancelled() => {
            tracing::info!("stopped before serving: {error:#}");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// SIGTERM and SIGINT, listened for from the moment this is made.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => tracing::info!("received SIGTERM"),
            _ = self.interrupt.recv() => tracing::info!("received SIGINT"),
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
