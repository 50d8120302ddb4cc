//! Layered configuration: defaults → TOML file → environment → CLI flags.
//!
//! The environment layer reads `TENANTRY_*` variables, with `__` separating
//! nested keys (`TENANTRY_LOG__LEVEL=debug` sets `log.level`); the
//! conventional `DATABASE_URL` and `NATS_URL` are accepted too, below their
//! `TENANTRY_` spellings. Unknown keys are errors, and every error names the
//! key and where its value came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `TENANTRY_*` environment variables that are not configuration keys: the
/// command line's own (`TENANTRY_CONFIG`, `TENANTRY_SERVICES`, and those of
/// the commands that call a server: `TENANTRY_CONFIG_DIR`,
/// `TENANTRY_CONTEXT`, `TENANTRY_ENDPOINT`, `TENANTRY_OUTPUT`,
/// `TENANTRY_ORGANIZATION` and the credentials `TENANTRY_TOKEN`,
/// `TENANTRY_API_KEY`, `TENANTRY_CLIENT_ID`, `TENANTRY_CLIENT_SECRET`),
/// which a CI job may set beside a `tenantry serve` it starts; and
/// `TENANTRY_COMMIT`, the commit a build records (cargo hands a build
/// script's variables to the programs and tests it runs, and an image
/// build may leave it in the environment). The
/// `[organization]` table is still set key by key
/// (`TENANTRY_ORGANIZATION__PURGE_AFTER_DAYS`): only the bare name is not
/// configuration.
const NOT_CONFIG: &[&str] = &[
    "config",
    "services",
    "config_dir",
    "context",
    "endpoint",
    "output",
    "organization",
    "token",
    "api_key",
    "client_id",
    "client_secret",
    "commit",
];

/// Prefix of the test suite's own `TENANTRY_TEST_*` variables.
const TEST_PREFIX: &str = "test_";

fn is_config_key(key: &str) -> bool {
    // figment hands the key over with its original case.
    let key = key.to_ascii_lowercase();
    !NOT_CONFIG.contains(&key.as_str()) && !key.starts_with(TEST_PREFIX)
}

/// Loads a configuration of type `T` from its defaults, an optional TOML
/// file, the environment and finally `overrides` (CLI flags, already
/// serialized; `None` fields are skipped by the caller's serde attributes).
pub fn load<T, O>(file: Option<&Path>, overrides: &O) -> anyhow::Result<T>
where
    T: DeserializeOwned + Serialize + Default,
    O: Serialize,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        if !file.exists() {
            anyhow::bail!("config file {} does not exist", file.display());
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    let figment = figment
        .merge(
            Env::raw()
                .only(&["DATABASE_URL"])
                .map(|_| "database_url".into()),
        )
        .merge(Env::raw().only(&["NATS_URL"]).map(|_| "nats_url".into()))
        .merge(
            Env::prefixed("TENANTRY_")
                .filter(|key| is_config_key(key.as_str()))
                .split("__"),
        )
        .merge(Serialized::defaults(overrides));
    figment.extract().map_err(|error| {
        let messages: Vec<String> = error.into_iter().map(describe).collect();
        anyhow::anyhow!("invalid configuration: {}", messages.join("; "))
    })
}

/// One configuration error as `` `key` problem (from SOURCE) ``: the key in
/// its config-file spelling, and where the bad value came from.
fn describe(error: figment::Error) -> String {
    let key = error.path.join(".").to_lowercase();
    let origin = error
        .metadata
        .as_ref()
        .map(|metadata| match &metadata.source {
            Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
            Some(figment::Source::Code(_)) => " (from a command-line flag)".to_string(),
            _ if metadata.name.contains("TENANTRY_") => {
                format!(" (from TENANTRY_{})", error.path.join("__").to_uppercase())
            }
            _ => format!(" (from {})", metadata.name),
        });
    if key.is_empty() {
        format!("{}{}", error.kind, origin.unwrap_or_default())
    } else {
        format!("`{key}`: {}{}", error.kind, origin.unwrap_or_default())
    }
}

/// Log output settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` (one object per line, the default) or `text` (for humans).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,tenantry_rbac=debug`.
    /// Default: `info`.
    pub level: String,
    /// `stdout` (the default) or `stderr`: where log lines go. `serve
    /// --ephemeral` logs to stderr, so that stdout carries only what a
    /// script reads (the addresses it serves on).
    pub stream: LogStream,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Json,
            level: "info".into(),
            stream: LogStream::Stdout,
        }
    }
}

/// Where log lines are written.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The process's standard output.
    #[default]
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Connection pool settings for the database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Most connections, half of them for writes. Default: 10 (SQLite:
    /// one writing connection and at most 4 reading).
    pub max_connections: u32,
    /// How long to wait for a connection, in seconds, before answering
    /// UNAVAILABLE. Default: 5.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

impl DatabaseConfig {
    /// The acquire timeout as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }
}

/// Outbox relay settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// How often the relay looks for unpublished events written by other
    /// processes, in milliseconds. Writes in this process wake it at once.
    /// Default: 500.
    pub poll_interval_ms: u64,
    /// Most events published per round. Default: 256.
    pub batch_size: u32,
    /// Published events are deleted after this many hours. Default: 168.
    pub retain_published_hours: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            poll_interval_ms: 500,
            batch_size: 256,
            retain_published_hours: 168,
        }
    }
}

/// Validates a listen address given as text, naming the key.
pub fn parse_addr(key: &str, value: &str) -> anyhow::Result<SocketAddr> {
    value.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid configuration: `{key}` must be an address like 127.0.0.1:8080, got `{value}`"
        )
    })
}

/// The SQLite URL for a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("tenantry.db").display()
    )
}

/// The default data directory: `./.tenantry`.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from(".tenantry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        grpc_addr: String,
        log: LogConfig,
    }

    fn no_flags() -> std::collections::BTreeMap<String, String> {
        Default::default()
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "grpc_adr = \"x\"\n").unwrap();
        let error = load::<Sample, _>(Some(&file), &no_flags())
            .unwrap_err()
            .to_string();
        assert!(error.contains("grpc_adr"), "{error}");
    }

    #[test]
    fn bad_enum_values_say_what_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "[log]\nformat = \"xml\"\n").unwrap();
        let error = load::<Sample, _>(Some(&file), &no_flags())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("json") && error.contains("format"),
            "{error}"
        );
    }

    #[test]
    fn test_and_command_line_variables_are_not_configuration() {
        assert!(!is_config_key("TEST_DATABASE_URL"));
        assert!(!is_config_key("SERVICES"));
        assert!(!is_config_key("config"));
        assert!(!is_config_key("CONFIG_DIR"));
        assert!(!is_config_key("COMMIT"));
        assert!(!is_config_key("ORGANIZATION"));
        assert!(is_config_key("ORGANIZATION__PURGE_AFTER_DAYS"));
        assert!(is_config_key("GRPC_ADDR"));
    }

    #[test]
    fn bad_addresses_name_the_key() {
        let error = parse_addr("grpc_addr", "nowhere").unwrap_err().to_string();
        assert!(error.contains("grpc_addr"), "{error}");
    }
}
