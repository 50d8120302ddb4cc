//! The keys a process holds: configured (hex, shared by every replica
//! through a Secret), or generated once into the data directory and kept
//! there with owner-only permissions, so that one machine's processes share
//! them across restarts.

use std::path::Path;

use anyhow::Context as _;
use tenantry_kit::auth::InternalKey;

use crate::config::Config;

/// The page-token key: configured, or generated once and kept in the data
/// directory so tokens survive restarts.
pub(crate) fn page_token_key(config: &Config) -> anyhow::Result<[u8; 32]> {
    shared_key(config, "page_token_key", config.page_token_key.as_deref())
}

/// The internal key: configured, or generated once into the data directory
/// (processes sharing the data directory share it).
pub(crate) fn internal_key(config: &Config) -> anyhow::Result<InternalKey> {
    shared_key(config, "internal_key", config.internal_key.as_deref()).map(InternalKey::new)
}

/// The edge key: configured, or generated once into the data directory.
pub(crate) fn edge_key(config: &Config) -> anyhow::Result<InternalKey> {
    shared_key(config, "edge_key", config.edge_key.as_deref()).map(InternalKey::new)
}

/// A key every replica must share: configured as hex under `name`, or
/// generated once and kept in the data directory as `<name>` with `.key`.
pub(crate) fn shared_key(
    config: &Config,
    name: &str,
    configured: Option<&str>,
) -> anyhow::Result<[u8; 32]> {
    if let Some(hex_key) = configured {
        return decode_key(hex_key).with_context(|| format!("invalid configuration: `{name}`"));
    }
    if config
        .database_url
        .as_deref()
        .is_some_and(|url| url.starts_with("postgres"))
    {
        tracing::warn!(
            key = name,
            "a shared key is not set; other replicas will not share it"
        );
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory `data_dir` = {}",
            config.data_dir.display()
        )
    })?;
    let file = match name {
        // The name this file had before the other keys existed.
        "page_token_key" => "page_token.key".to_string(),
        other => format!("{other}.key"),
    };
    let path = config.data_dir.join(file);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return decode_key(text.trim()).with_context(|| format!("{} is corrupt", path.display()));
    }
    let key: [u8; 32] = rand::random();
    write_secret(&path, &hex::encode(key))?;
    Ok(key)
}

/// The keys that seal secrets at rest: the configured ones, or one
/// generated into `data_dir`.
pub(crate) fn sealer(config: &Config) -> anyhow::Result<tenantry_kit::seal::Sealer> {
    if config.sealing_keys.is_empty() {
        let key = shared_key(config, "sealing_key", None)?;
        return tenantry_kit::seal::Sealer::new("local", &[("local".to_string(), key)].into());
    }
    let mut keys = std::collections::BTreeMap::new();
    for (id, hex_key) in &config.sealing_keys {
        keys.insert(
            id.clone(),
            decode_key(hex_key)
                .with_context(|| format!("invalid configuration: `sealing_keys.{id}`"))?,
        );
    }
    let current = match &config.sealing_key_id {
        Some(id) => id.clone(),
        None => keys.keys().next().cloned().unwrap_or_default(),
    };
    tenantry_kit::seal::Sealer::new(&current, &keys)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

fn decode_key(hex_key: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_key).context("must be hex")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("must be 32 bytes (64 hex digits)"))
}

fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
