//! The configuration of a Tenantry process: every key, its default, and
//! the checks that run before anything starts.
//!
//! Layers, later winning: built-in defaults → the TOML file given with
//! `--config` → `TENANTRY_*` environment variables (`__` for nesting, e.g.
//! `TENANTRY_LOG__LEVEL`; `DATABASE_URL` and `NATS_URL` work too) → flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::services::ServiceKind;
use tenantry_kit::config::{DatabaseConfig, LogConfig, OutboxConfig};

/// Every setting of a Tenantry process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded database and generated secrets live; created on
    /// first run. Default: `.tenantry`.
    pub data_dir: PathBuf,
    /// The gRPC listen address of every service (one port). Port 0 picks a
    /// free port; the chosen address is logged. Default: `127.0.0.1:50051`.
    pub grpc_addr: SocketAddr,
    /// The HTTP listen address (gateway, metrics, health). Default:
    /// `127.0.0.1:8080`.
    pub http_addr: SocketAddr,
    /// `postgres://…` for production; unset means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// `nats://…` for NATS JetStream; unset means the local bus, durable in
    /// the database.
    pub nats_url: Option<String>,
    /// Separates installations sharing one NATS server (letters, digits and
    /// `_`). Default: empty.
    pub nats_namespace: String,
    /// How long NATS waits for a consumer to acknowledge an event before it
    /// hands the event to another replica of that consumer, in
    /// milliseconds (200 to 60000). Consumers take one event at a time, so
    /// this bounds how long a crashed consumer holds the others up.
    /// Default: 2000.
    pub nats_ack_wait_ms: u64,
    /// Apply pending migrations when serving. Production deployments run
    /// `tenantry migrate` before a rollout and may turn this off. Default: true.
    pub auto_migrate: bool,
    /// Seconds to let in-flight calls finish at shutdown. Default: 20.
    pub shutdown_grace_secs: u64,
    /// 64 hex digits signing page tokens; replicas of one service must share
    /// it. Unset: generated once and kept in `data_dir`.
    pub page_token_key: Option<String>,
    /// 64 hex digits with which the services of one deployment prove to
    /// each other that they are Tenantry services (internal calls such as
    /// handing the authorization index a write's events); every process but
    /// a gateway-only one must share it. Unset: generated once and kept in
    /// `data_dir`.
    pub internal_key: Option<String>,
    /// 64 hex digits with which the gateway reports what it refused at the
    /// edge (requests over an organization's rate limit) to the audit
    /// service. Only gateway and audit processes hold it, and it lets its
    /// holder do nothing else: the gateway holds no `internal_key`. Unset:
    /// generated once and kept in `data_dir`.
    pub edge_key: Option<String>,
    /// Keys that seal reversible secrets at rest (TOTP secrets): key id →
    /// 64 hex digits. To rotate, add a key, make it current
    /// (`sealing_key_id`) and restart: identity seals every secret again
    /// with it at start; then the old key can go. Unset: one key generated
    /// once and kept in `data_dir` (id `local`); production mode requires
    /// them for identity.
    pub sealing_keys: std::collections::BTreeMap<String, String>,
    /// The id of the key new secrets are sealed with. Unset: the only key
    /// of `sealing_keys`.
    pub sealing_key_id: Option<String>,
    /// `development` (the default: generated secrets and SQLite are fine) or
    /// `production`, where `serve` refuses settings that only work for one
    /// process on one machine (see [`Config::check_production`]).
    pub mode: Mode,
    /// Peers (CIDRs) whose `X-Forwarded-For` the gRPC services believe for
    /// a call's client address: where the gateway runs. Default: loopback
    /// in development mode; in production mode only when this process runs
    /// the gateway itself (its calls arrive over loopback), none otherwise,
    /// so no other local process can claim an address.
    pub trusted_proxies: Option<Vec<String>>,
    /// How access tokens are issued and verified.
    pub auth: tenantry_kit::auth::AuthConfig,
    /// Where services not running in this process answer.
    pub peers: PeersConfig,
    /// Log output.
    pub log: LogConfig,
    /// Database pool.
    pub database: DatabaseConfig,
    /// Outbox relay.
    pub outbox: OutboxConfig,
    /// Identity service options.
    pub identity: tenantry_identity::Options,
    /// Organization service options.
    pub organization: tenantry_organization::Options,
    /// Membership/RBAC service options.
    pub rbac: tenantry_rbac::Options,
    /// Billing service options.
    pub billing: tenantry_billing::Options,
    /// Audit service options.
    pub audit: tenantry_audit::Options,
    /// Gateway options.
    pub gateway: tenantry_gateway::Options,
    /// Admin console options (served with the gateway at `/console`).
    pub console: tenantry_console::Options,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: tenantry_kit::config::default_data_dir(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            nats_url: None,
            nats_namespace: String::new(),
            nats_ack_wait_ms: 2000,
            auto_migrate: true,
            shutdown_grace_secs: 20,
            page_token_key: None,
            internal_key: None,
            edge_key: None,
            sealing_keys: Default::default(),
            sealing_key_id: None,
            mode: Mode::Development,
            trusted_proxies: None,
            auth: Default::default(),
            peers: PeersConfig::default(),
            log: LogConfig::default(),
            database: DatabaseConfig::default(),
            outbox: OutboxConfig::default(),
            identity: Default::default(),
            organization: Default::default(),
            rbac: Default::default(),
            billing: Default::default(),
            audit: Default::default(),
            gateway: Default::default(),
            console: Default::default(),
        }
    }
}

/// How strict `serve` is about settings.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Anything that works on one machine.
    #[default]
    Development,
    /// Refuse what breaks with several replicas or leaks secrets.
    Production,
}

/// Addresses (`http://host:port`) of services this process does not run
/// (`[peers]`), and how the services of this process call each other.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PeersConfig {
    /// Services of this process call each other in-process (through the
    /// same layers and handlers as a network call, without a socket).
    /// `false` sends those calls over the process's own gRPC port instead,
    /// as calls to other processes go: for comparing the two and for
    /// debugging with a packet capture. Default: true.
    pub in_process: bool,
    /// The identity service (token keys, sign-in). Default: this process.
    pub identity: Option<String>,
    /// The organization service. Default: this process.
    pub organization: Option<String>,
    /// The rbac service. Default: this process.
    pub rbac: Option<String>,
    /// The billing service. Default: this process.
    pub billing: Option<String>,
    /// The audit service. Default: this process.
    pub audit: Option<String>,
}

impl Default for PeersConfig {
    fn default() -> Self {
        PeersConfig {
            in_process: true,
            identity: None,
            organization: None,
            rbac: None,
            billing: None,
            audit: None,
        }
    }
}

/// Values given as command-line flags; unset ones leave lower layers alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
}

impl Config {
    /// The proxies whose `X-Forwarded-For` the services believe (see
    /// [`trusted_proxies`](Self::trusted_proxies)).
    pub fn effective_trusted_proxies(&self, services: &[ServiceKind]) -> Vec<String> {
        if let Some(configured) = &self.trusted_proxies {
            return configured.clone();
        }
        let loopback = || vec!["127.0.0.0/8".to_string(), "::1".to_string()];
        match self.mode {
            Mode::Production if !services.contains(&ServiceKind::Gateway) => Vec::new(),
            _ => loopback(),
        }
    }

    /// In production mode, the settings that would break a deployment of
    /// several replicas or leak a secret, each refused with what to do
    /// instead. `password_on_command_line` says whether `--database-url`
    /// carried a password (which `ps` shows to every user of the machine).
    pub fn check_production(
        &self,
        services: &[ServiceKind],
        password_on_command_line: bool,
    ) -> anyhow::Result<()> {
        let problems = self.production_problems(services, password_on_command_line);
        if problems.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "unsafe configuration for `mode = \"production\"`:\n  - {}",
            problems.join("\n  - ")
        )
    }

    /// What [`check_production`](Self::check_production) refuses, each
    /// problem on its own; empty outside production mode.
    pub fn production_problems(
        &self,
        services: &[ServiceKind],
        password_on_command_line: bool,
    ) -> Vec<String> {
        if self.mode != Mode::Production {
            return Vec::new();
        }
        let mut problems = Vec::new();
        // A gateway alone opens no database and no bus.
        let edge_only = services == [ServiceKind::Gateway];
        match &self.database_url {
            _ if edge_only => {}
            None => problems.push(
                "`database_url` is unset: SQLite in `data_dir` cannot be shared by several replicas; set DATABASE_URL=postgres://…".to_string(),
            ),
            Some(url) if url.starts_with("sqlite:") => problems.push(
                "`database_url` is SQLite, which several replicas cannot share; use postgres://…".to_string(),
            ),
            Some(_) => {}
        }
        if password_on_command_line {
            problems.push(
                "`--database-url` carries a password, which the process list shows; pass DATABASE_URL in the environment (from a Secret)".to_string(),
            );
        }
        if self.page_token_key.is_none() && !edge_only {
            problems.push(
                "`page_token_key` is unset: each replica would generate its own and refuse the others' page tokens; set TENANTRY_PAGE_TOKEN_KEY (64 hex digits, from a Secret)".to_string(),
            );
        }
        if self.internal_key.is_none() && !edge_only {
            problems.push(
                "`internal_key` is unset: each process would generate its own and refuse the others' internal calls; set TENANTRY_INTERNAL_KEY (64 hex digits, from a Secret)".to_string(),
            );
        }
        if self.edge_key.is_none()
            && (services.contains(&ServiceKind::Gateway) || services.contains(&ServiceKind::Audit))
        {
            problems.push(
                "`edge_key` is unset: the gateway and the audit service would each generate their own and the audit log would refuse the gateway's reports; set TENANTRY_EDGE_KEY (64 hex digits, from a Secret) on both".to_string(),
            );
        }
        if services.contains(&ServiceKind::Identity) && self.sealing_keys.is_empty() {
            problems.push(
                "`sealing_keys` is unset: TOTP secrets would be sealed with a key generated into one replica's data directory; set TENANTRY_SEALING_KEYS__<ID> (64 hex digits, from a Secret)".to_string(),
            );
        }
        if services.contains(&ServiceKind::Audit) && self.audit.checkpoint_key.is_none() {
            problems.push(
                "`audit.checkpoint_key` is unset: a generated key signs checkpoints nobody can verify later; set TENANTRY_AUDIT__CHECKPOINT_KEY (from a Secret)".to_string(),
            );
        }
        // Only identity writes it (into its discovery documents); a
        // gateway has `gateway.public_url` of its own.
        if services.contains(&ServiceKind::Identity)
            && self.identity.public_base_url
                == tenantry_identity::Options::default().public_base_url
        {
            problems.push(
                "`identity.public_base_url` is the development default; set it to the gateway's public URL (it goes into discovery documents and mails)".to_string(),
            );
        }
        if self.nats_url.is_none() && services.len() < ServiceKind::ALL.len() && !edge_only {
            problems.push(
                "`nats_url` is unset while the services run in separate processes; set NATS_URL=nats://…".to_string(),
            );
        }
        // Development assumes an unset peer runs in this process; in a
        // split deployment that is never so, and every call to it (the
        // token keys first) would fail after the start.
        for peer in self.missing_peers(services) {
            problems.push(format!(
                "`peers.{peer}` is unset, but this process calls the {peer} service and does not run it; set TENANTRY_PEERS__{}=http://<{peer} host>:50051",
                peer.name().to_uppercase()
            ));
        }
        problems
    }

    /// The services the given ones call (identity for its token keys
    /// included) that run elsewhere and have no `[peers]` address.
    pub fn missing_peers(&self, services: &[ServiceKind]) -> Vec<ServiceKind> {
        let mut needed: Vec<ServiceKind> = services
            .iter()
            .flat_map(|kind| kind.peers().iter().copied())
            .chain(std::iter::once(ServiceKind::Identity))
            .filter(|kind| !services.contains(kind))
            .collect();
        needed.sort();
        needed.dedup();
        needed.retain(|kind| self.peer(*kind).is_none());
        needed
    }

    /// The configured address of `kind`'s service.
    fn peer(&self, kind: ServiceKind) -> Option<&String> {
        match kind {
            ServiceKind::Identity => self.peers.identity.as_ref(),
            ServiceKind::Organization => self.peers.organization.as_ref(),
            ServiceKind::Rbac => self.peers.rbac.as_ref(),
            ServiceKind::Billing => self.peers.billing.as_ref(),
            ServiceKind::Audit => self.peers.audit.as_ref(),
            ServiceKind::Gateway => None,
        }
    }

    /// Loads and validates the configuration.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let config: Config = tenantry_kit::config::load(file, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense, naming the key; every
    /// problem at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        let problems = self.problems();
        match problems.as_slice() {
            [] => Ok(()),
            [one] => anyhow::bail!("{one}"),
            _ => anyhow::bail!("{}", problems.join("\n")),
        }
    }

    /// Every value that parses but makes no sense, each naming its key.
    /// A service's options report their first problem.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |result: anyhow::Result<()>| {
            if let Err(error) = result {
                problems.push(format!("{error:#}"));
            }
        };
        check(self.validate_transport());
        check(self.validate_keys());
        for proxy in self.trusted_proxies.iter().flatten() {
            check(
                tenantry_kit::net::Cidr::parse(proxy)
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("invalid configuration: `trusted_proxies`: {e}")),
            );
        }
        check(self.auth.validate());
        for (key, url) in [
            ("peers.identity", &self.peers.identity),
            ("peers.organization", &self.peers.organization),
            ("peers.rbac", &self.peers.rbac),
            ("peers.billing", &self.peers.billing),
            ("peers.audit", &self.peers.audit),
        ] {
            if let Some(url) = url {
                check(
                    if url.starts_with("http://") || url.starts_with("https://") {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!(
                            "invalid configuration: `{key}` must be an http:// or https:// URL"
                        ))
                    },
                );
            }
        }
        check(self.identity.validate());
        check(self.organization.validate());
        check(self.rbac.validate());
        check(self.billing.validate());
        check(self.audit.validate());
        check(self.gateway.validate());
        if self.database.max_connections == 0 {
            check(Err(anyhow::anyhow!(
                "invalid configuration: `database.max_connections` must be at least 1"
            )));
        }
        if self.outbox.batch_size == 0 || self.outbox.poll_interval_ms == 0 {
            check(Err(anyhow::anyhow!(
                "invalid configuration: `outbox.batch_size` and `outbox.poll_interval_ms` must be positive"
            )));
        }
        problems
    }

    /// The database and bus settings.
    fn validate_transport(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database_url {
            anyhow::ensure!(
                url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.starts_with("sqlite:"),
                "invalid configuration: `database_url` must start with postgres://, postgresql:// or sqlite:, got `{}`",
                tenantry_kit::db::redact_url(url)
            );
        }
        if let Some(url) = &self.nats_url {
            anyhow::ensure!(
                url.starts_with("nats://") || url.starts_with("tls://"),
                "invalid configuration: `nats_url` must start with nats:// or tls://"
            );
        }
        anyhow::ensure!(
            (200..=60_000).contains(&self.nats_ack_wait_ms),
            "invalid configuration: `nats_ack_wait_ms` must be from 200 to 60000"
        );
        Ok(())
    }

    /// The shared secrets and the sealing keys.
    fn validate_keys(&self) -> anyhow::Result<()> {
        let sealing = self
            .sealing_keys
            .iter()
            .map(|(id, key)| (format!("sealing_keys.{id}"), Some(key)));
        for (name, key) in [
            ("page_token_key".to_string(), self.page_token_key.as_ref()),
            ("internal_key".to_string(), self.internal_key.as_ref()),
            ("edge_key".to_string(), self.edge_key.as_ref()),
        ]
        .into_iter()
        .chain(sealing)
        {
            if let Some(key) = key {
                anyhow::ensure!(
                    key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()),
                    "invalid configuration: `{name}` must be 64 hex digits"
                );
            }
        }
        match (&self.sealing_key_id, self.sealing_keys.len()) {
            (Some(id), _) => anyhow::ensure!(
                self.sealing_keys.contains_key(id),
                "invalid configuration: `sealing_key_id` = `{id}` is not a key of `sealing_keys`"
            ),
            (None, 0 | 1) => {}
            (None, _) => anyhow::bail!(
                "invalid configuration: `sealing_key_id` must name the current key when `sealing_keys` has several"
            ),
        }
        Ok(())
    }

    /// The database URL in effect: the configured one, or SQLite in the
    /// data directory.
    pub fn effective_database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| tenantry_kit::config::sqlite_url(&self.data_dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything production mode asks of any process, so that a test sees
    /// only the rule it is about.
    fn production() -> Config {
        let key = "ab".repeat(32);
        Config {
            mode: Mode::Production,
            database_url: Some("postgres://db/tenantry".into()),
            nats_url: Some("nats://nats:4222".into()),
            page_token_key: Some(key.clone()),
            internal_key: Some(key.clone()),
            edge_key: Some(key.clone()),
            sealing_keys: [("k1".to_string(), key.clone())].into(),
            audit: tenantry_audit::Options {
                checkpoint_key: Some(key),
                ..Default::default()
            },
            ..Config::default()
        }
    }

    #[test]
    fn production_refuses_a_split_process_whose_peers_are_unset() {
        let mut config = production();
        let problems = config.production_problems(&[ServiceKind::Audit], false);
        // Audit calls rbac, and every service but identity fetches its
        // token keys from identity.
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("TENANTRY_PEERS__IDENTITY"),
            "{problems:?}"
        );
        assert!(problems[1].contains("`peers.rbac`"), "{problems:?}");
        config.peers.identity = Some("http://identity:50051".into());
        config.peers.rbac = Some("http://rbac:50051".into());
        assert!(
            config
                .check_production(&[ServiceKind::Audit], false)
                .is_ok()
        );
        // A gateway alone calls every service.
        assert_eq!(
            config.missing_peers(&[ServiceKind::Gateway]),
            [
                ServiceKind::Organization,
                ServiceKind::Billing,
                ServiceKind::Audit
            ]
        );
        // All in one process needs no peers; development assumes them here.
        assert!(config.missing_peers(&ServiceKind::ALL).is_empty());
        config.mode = Mode::Development;
        config.peers = PeersConfig::default();
        assert!(
            config
                .check_production(&[ServiceKind::Audit], false)
                .is_ok()
        );
    }

    #[test]
    fn production_asks_for_the_public_base_url_only_where_identity_runs() {
        let mut config = production();
        config.peers = PeersConfig {
            identity: Some("http://identity:50051".into()),
            organization: Some("http://organization:50051".into()),
            rbac: Some("http://rbac:50051".into()),
            billing: Some("http://billing:50051".into()),
            audit: Some("http://audit:50051".into()),
            ..PeersConfig::default()
        };
        assert!(
            config
                .check_production(&[ServiceKind::Gateway], false)
                .is_ok()
        );
        let error = config
            .check_production(&[ServiceKind::Identity], false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("identity.public_base_url"), "{error}");
        config.identity.public_base_url = "https://api.example.com".into();
        assert!(
            config
                .check_production(&[ServiceKind::Identity], false)
                .is_ok()
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut config = Config {
            nats_ack_wait_ms: 5,
            ..Config::default()
        };
        config.database.max_connections = 0;
        config.organization.purge_after_days = 0;
        assert_eq!(config.problems().len(), 3, "{:?}", config.problems());
        let error = config.validate().unwrap_err().to_string();
        for key in ["nats_ack_wait_ms", "max_connections", "purge_after_days"] {
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn production_trusts_no_forwarded_address_it_was_not_told_to() {
        let mut config = Config::default();
        let loopback = vec!["127.0.0.0/8".to_string(), "::1".to_string()];
        let split = [ServiceKind::Identity];
        let with_gateway = [ServiceKind::Identity, ServiceKind::Gateway];
        assert_eq!(config.effective_trusted_proxies(&split), loopback);
        config.mode = Mode::Production;
        assert!(config.effective_trusted_proxies(&split).is_empty());
        // Its own gateway calls it over loopback.
        assert_eq!(config.effective_trusted_proxies(&with_gateway), loopback);
        config.trusted_proxies = Some(vec!["10.0.0.0/8".into()]);
        assert_eq!(
            config.effective_trusted_proxies(&split),
            vec!["10.0.0.0/8".to_string()]
        );
    }
}
