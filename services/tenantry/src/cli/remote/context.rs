//! Contexts, as `zed context` keeps them: named endpoints with their
//! credentials, one of them current, in `contexts.json` under the user's
//! configuration directory (`$TENANTRY_CONFIG_DIR` when set, else
//! `~/.config/tenantry` or the platform's equivalent).
//!
//! The file holds secrets (API keys, refresh tokens, client secrets), so it
//! is written owner-only (0600, its directory 0700) and replaced atomically:
//! a crash never leaves half a file, and no other user can read it at any
//! moment.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The environment variable that moves the configuration directory.
pub const CONFIG_DIR_VAR: &str = "TENANTRY_CONFIG_DIR";

/// Every context and which one is current.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Contexts {
    /// The context commands use unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// The contexts by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One deployment and how to call it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Context {
    /// The gRPC endpoint, such as `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// The credential, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,
    /// The newest consistency token this context was answered, so that a
    /// command sees what the previous one wrote, on any replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency_token: Option<String>,
}

/// A stored credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Credential {
    /// An API key's secret.
    ApiKey { secret: String },
    /// A fixed access token.
    Token { token: String },
    /// A user's session from `tenantry login`.
    Session {
        email: String,
        access_token: String,
        refresh_token: String,
        /// Seconds since the Unix epoch.
        #[serde(default)]
        expire_time: Option<u64>,
    },
    /// A service account's client credentials.
    ClientCredentials {
        client_id: String,
        client_secret: String,
        #[serde(default)]
        organization: String,
    },
}

impl Credential {
    /// What it is, without its secret.
    pub fn describe(&self) -> String {
        match self {
            Credential::ApiKey { secret } => {
                // The `tnt_<id>` start of a key is public by design.
                let public: String = secret.splitn(3, '_').take(2).collect::<Vec<_>>().join("_");
                format!("API key {public}_…")
            }
            Credential::Token { .. } => "access token".into(),
            Credential::Session { email, .. } => format!("session of {email}"),
            Credential::ClientCredentials { client_id, .. } => {
                format!("service account client {client_id}")
            }
        }
    }
}

/// Where the contexts live.
pub fn dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CONFIG_DIR_VAR).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|d| d.join("tenantry"))
        .context("no configuration directory is known for this user: set TENANTRY_CONFIG_DIR")
}

/// The file of the contexts.
pub fn path() -> anyhow::Result<PathBuf> {
    Ok(dir()?.join("contexts.json"))
}

impl Contexts {
    /// Reads the contexts; none when the file does not exist yet.
    pub fn load() -> anyhow::Result<Contexts> {
        let path = path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a valid contexts file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contexts::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the contexts owner-only, replacing the file atomically.
    pub fn save(&self) -> anyhow::Result<()> {
        let dir = dir()?;
        create_private_dir(&dir)?;
        let path = path()?;
        let mut file = tempfile::Builder::new()
            .prefix(".contexts")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        // tempfile creates the file 0600 on Unix; say so anyway.
        set_private(file.path(), 0o600)?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.as_file().sync_all()?;
        file.persist(&path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    /// The context named `name`, or the current one.
    pub fn pick(&self, name: Option<&str>) -> anyhow::Result<(String, Context)> {
        let name = match name.or(self.current.as_deref()) {
            Some(name) => name.to_string(),
            None => anyhow::bail!(
                "no context: create one with `tenantry context set NAME --endpoint URL`, or pass --endpoint"
            ),
        };
        let context =
            self.contexts.get(&name).cloned().with_context(|| {
                format!("no context named `{name}` (see `tenantry context list`)")
            })?;
        Ok((name, context))
    }
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        set_private(dir, 0o700)?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_private(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot restrict {}", path.display()))
}

#[cfg(not(unix))]
fn set_private(_: &std::path::Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_described_by_its_public_start_only() {
        let key = Credential::ApiKey {
            secret: "tnt_0190abc_s3cr3t".into(),
        };
        assert_eq!(key.describe(), "API key tnt_0190abc_…");
    }
}
