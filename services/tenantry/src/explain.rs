//! Every configuration key, its type, default, environment variable and
//! meaning: the one description behind `tenantry config explain` and the
//! README's configuration table.
//!
//! Defaults are not written here but read from [`Config::default`], so they
//! cannot disagree with what a process uses; a row names its default in
//! words only where the value alone would mislead (generated secrets,
//! per-machine values). A test walks the serialized default configuration
//! and fails when a key is missing here or a row names no key.

use serde_json::Value;

use crate::config::Config;

/// One configuration key.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key in its TOML spelling (`log.level`); `<id>` stands for a
    /// name the operator chooses (a map's key).
    pub key: String,
    /// What the value is.
    pub ty: &'static str,
    /// The default in words, where the built-in value does not say it.
    pub default: Option<&'static str>,
    /// Other ways to set it besides its `TENANTRY_*` variable.
    pub also: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

impl Key {
    fn new(key: impl Into<String>, ty: &'static str, meaning: &'static str) -> Key {
        Key {
            key: key.into(),
            ty,
            default: None,
            also: "",
            meaning,
        }
    }

    fn default_is(mut self, default: &'static str) -> Key {
        self.default = Some(default);
        self
    }

    fn also(mut self, also: &'static str) -> Key {
        self.also = also;
        self
    }

    /// The environment variable: `TENANTRY_`, the key in capitals, `__`
    /// for each dot.
    pub fn env(&self) -> String {
        format!("TENANTRY_{}", self.key.replace('.', "__").to_uppercase())
    }

    /// The path of the map this row describes an entry of, if any.
    fn map_path(&self) -> Option<&str> {
        self.key.find(".<").map(|at| &self.key[..at])
    }
}

/// Every key, in the order the README lists them.
pub fn keys() -> Vec<Key> {
    let mut keys = vec![
        Key::new("mode", "`development` \\| `production`", "`production` refuses settings that only work for one process on one machine (run `tenantry config check` to see which)"),
        Key::new("data_dir", "path", "where the embedded SQLite database and generated secrets live; created on first run").also("`--data-dir`"),
        Key::new("grpc_addr", "address", "gRPC listen address of every service; port 0 picks a free one and logs it").also("`--grpc-addr`"),
        Key::new("http_addr", "address", "HTTP listen address: gateway, console, `/metrics`, `/healthz`, `/readyz`").also("`--http-addr`"),
        Key::new("database_url", "URL", "`postgres://…` for production; `sqlite:…` for one machine").default_is("unset: SQLite in `data_dir`").also("`DATABASE_URL`, `--database-url`"),
        Key::new("nats_url", "URL", "`nats://…` or `tls://…` switches the event bus to NATS JetStream").default_is("unset: the local bus, durable in the database").also("`NATS_URL`, `--nats-url`"),
        Key::new("nats_namespace", "string", "separates installations sharing one NATS server (letters, digits, `_`)"),
        Key::new("nats_ack_wait_ms", "integer (200–60000)", "how long NATS waits for a consumer's acknowledgement before handing the event to another replica: the longest a crashed consumer holds the others up"),
        Key::new("auto_migrate", "bool", "apply pending migrations on `serve`; production may run `tenantry migrate` before a rollout instead"),
        Key::new("shutdown_grace_secs", "integer", "seconds in-flight calls get at shutdown"),
        Key::new("page_token_key", "64 hex digits", "signs page tokens; replicas of one service must share it").default_is("generated into `data_dir`"),
        Key::new("internal_key", "64 hex digits", "with it the services prove to each other that they are Tenantry services (a write handing its events to the authorization index); every process but a gateway-only one must share it").default_is("generated into `data_dir`"),
        Key::new("edge_key", "64 hex digits", "with it the gateway reports the requests it refused over an organization's rate limit to the audit log; gateway and audit processes share it, and it allows nothing else").default_is("generated into `data_dir`"),
        Key::new("sealing_keys.<id>", "64 hex digits", "keys sealing reversible secrets (TOTP) at rest, by id; to rotate, add one, make it `sealing_key_id` and restart; required in production mode where identity runs").default_is("one key generated into `data_dir` (id `local`)"),
        Key::new("sealing_key_id", "string", "the id of the key new secrets are sealed with").default_is("unset: the only key of `sealing_keys`"),
        Key::new("trusted_proxies", "list of CIDRs", "peers whose `X-Forwarded-For` the gRPC services believe for a call's client address: where the gateway runs").default_is("unset: loopback; in production mode none, unless the process runs the gateway"),
        Key::new("auth.issuer", "string", "the `iss` identity signs and every service requires"),
        Key::new("auth.audience", "string", "the `aud` identity signs and every service requires"),
        Key::new("auth.leeway_secs", "integer (0–300)", "clock skew tolerated on token times"),
        Key::new("auth.jwks_refresh_secs", "integer", "how often the public keys are fetched from identity"),
        Key::new("auth.jwks_min_refresh_secs", "integer", "least time between fetches caused by tokens with an unknown key id"),
        Key::new("peers.in_process", "bool", "services of this process call each other in-process, through the same layers and handlers as a network call; `false` sends those calls over the process's own gRPC port"),
    ];
    for (peer, what) in [
        (
            "identity",
            "identity service (token keys, sign-in); every process that does not run identity needs it",
        ),
        ("organization", "organization service"),
        ("rbac", "rbac service"),
        ("billing", "billing service"),
        ("audit", "audit service"),
    ] {
        keys.push(
            Key::new(format!("peers.{peer}"), "URL", what)
                .default_is("unset: this process; production mode refuses it unset where a service of the process calls it"),
        );
    }
    keys.extend([
        Key::new("log.format", "`json` \\| `text`", "one JSON object per line, or text for humans"),
        Key::new("log.level", "filter", "a `tracing` filter such as `info,tenantry_rbac=debug`"),
        Key::new("log.stream", "`stdout` \\| `stderr`", "where log lines go (`serve --ephemeral` logs to stderr)"),
        Key::new("database.max_connections", "integer (≥ 1)", "most connections per process, half of them for writes").default_is("`10` (SQLite: one writing and at most 4 reading)"),
        Key::new("database.acquire_timeout_secs", "integer", "wait for a connection before answering UNAVAILABLE"),
        Key::new("outbox.poll_interval_ms", "integer (≥ 1)", "how often the relay looks for events written by other processes; writes in this process wake it at once"),
        Key::new("outbox.batch_size", "integer (≥ 1)", "most events published per relay round"),
        Key::new("outbox.retain_published_hours", "integer", "published events are deleted after this"),
        // Identity.
        Key::new("identity.access_token_ttl_secs", "integer (≤ 3600)", "lifetime of access tokens, for users and for service accounts alike"),
        Key::new("identity.refresh_token_ttl_secs", "integer", "lifetime of each refresh token"),
        Key::new("identity.session_lifetime_hours", "integer", "absolute lifetime of a session"),
        Key::new("identity.verification_ttl_hours", "integer", "lifetime of email verification links"),
        Key::new("identity.reset_ttl_minutes", "integer", "lifetime of password reset links"),
        Key::new("identity.verify_before_sign_in", "bool", "`SignUp` waits for the address to be proved and answers alike for taken addresses; `false` signs in at once and tells who has an account (development only)"),
        Key::new("identity.key_rotation_days", "integer", "a new signing key is made when the newest is this old"),
        Key::new("identity.totp_issuer", "string", "the issuer authenticator apps show"),
        Key::new("identity.platform_admins", "list of emails", "platform administrators: granted the role at sign-up, and at every identity start to those who already have an account (idempotent, audited)"),
        Key::new("identity.public_base_url", "URL", "the gateway's public URL, for discovery documents; production mode requires it where identity runs"),
        Key::new("identity.password.min_length", "integer (≥ 8)", "fewest code points of a new password, after NFKC normalization"),
        Key::new("identity.password.max_length", "integer (64–4096)", "most code points of a new password"),
        Key::new("identity.password.min_strength", "integer (0–4)", "lowest zxcvbn score of a new password, the user's email and name counted as known; 0 turns it off"),
        Key::new("identity.password.memory_kib", "integer (≤ 1048576)", "Argon2id memory cost in KiB"),
        Key::new("identity.password.iterations", "integer (1–64)", "Argon2id time cost"),
        Key::new("identity.password.parallelism", "integer (1–64)", "Argon2id lanes (more add cost, not speed)"),
        Key::new("identity.password.max_concurrent_hashes", "integer", "most hashes running at once; each holds `memory_kib`").default_is("the number of CPUs"),
        Key::new("identity.throttle.free_attempts_per_account", "integer", "failed sign-ins per account before waits begin"),
        Key::new("identity.throttle.free_attempts_per_address", "integer", "failed sign-ins per client address before waits begin"),
        Key::new("identity.throttle.backoff_base_ms", "integer", "the first wait; each further failure doubles it"),
        Key::new("identity.throttle.backoff_max_secs", "integer", "the longest wait"),
    ]);
    keys.extend(mailer(
        "identity.mailer",
        "verification, password-reset and sign-in mails",
    ));
    keys.extend([
        // Organization.
        Key::new("organization.purge_after_days", "integer (1–365)", "how long a deleted organization, team or project can be restored"),
        Key::new("organization.purge_interval_secs", "integer (≥ 1)", "how often objects past their purge time are deleted for good"),
        Key::new("organization.check_quotas", "bool", "creating an organization, team or project asks billing for quota first"),
        Key::new("organization.default_project", "string", "display name of the project a new organization starts with when asked (a user's first always does); empty: none"),
        Key::new("organization.project_visibility", "`granted` \\| `all_members`", "which projects members of a new root organization see"),
    ]);
    keys.extend(mailer("organization.mailer", "ownership transfer mails"));
    keys.extend([
        // Rbac.
        Key::new("rbac.retain_revisions", "integer (≥ 100)", "revisions of the change log kept for replicas that fall behind and for `Watch` cursors"),
        Key::new("rbac.resend_interval_secs", "integer", "least time between two sends of one invitation"),
        Key::new("rbac.max_sends", "integer (1–100)", "how many times one invitation may be sent"),
    ]);
    keys.extend(mailer("rbac.mailer", "invitation mails"));
    keys.extend([
        // Billing.
        Key::new("billing.catalog_file", "path", "a TOML file whose `[plans.<id>]` tables replace the built-in plans (see docs/runbook.md)").default_is("unset: the built-in plans"),
        Key::new("billing.providers.<id>.kind", "string", "a payment provider whose webhooks are accepted: its format (`stripe`)").default_is("no providers"),
        Key::new("billing.providers.<id>.webhook_secret", "string", "the provider endpoint's signing secret (`whsec_…`)").default_is("no providers"),
        Key::new("billing.providers.<id>.tolerance_secs", "integer", "how old a signed webhook timestamp may be").default_is("`300`"),
        Key::new("billing.sweep_interval_secs", "integer", "how often ended trials and due cancellations are written back"),
        // Audit.
        Key::new("audit.checkpoint_key", "64 hex digits", "Ed25519 seed signing checkpoints; replicas share it; production mode requires it where audit runs").default_is("generated into `data_dir`"),
        Key::new("audit.checkpoint_interval_secs", "integer", "how often the head of every chain that moved is signed"),
        Key::new("audit.retention_interval_secs", "integer", "how often events past their plan's retention are purged"),
        Key::new("audit.max_metadata_bytes", "integer", "most bytes of an event's metadata; longer is cut, with a marker"),
        // Gateway.
        Key::new("gateway.cors_origins", "list of origins", "origins allowed by CORS (`*` for any, without credentials); empty: no CORS headers"),
        Key::new("gateway.max_body_bytes", "integer", "largest REST request body (413 above)"),
        Key::new("gateway.timeout_secs", "integer", "deadline of a REST call (504 after)"),
        Key::new("gateway.stream_timeout_secs", "integer", "deadline of a streamed REST call (exports)"),
        Key::new("gateway.redis_url", "URL", "Redis for rate-limit buckets shared by every gateway replica").default_is("unset: each replica counts alone"),
        Key::new("gateway.redis_key_prefix", "string", "prefix of the gateway's Redis keys, to share one Redis between deployments"),
        Key::new("gateway.default_rate_limits_per_minute.<class>", "integer", "requests per minute by class (`read`, `write`, `auth`, `expensive`) for callers acting in no organization"),
        Key::new("gateway.auth_per_address_per_minute", "integer", "`auth` requests per client address and minute, on top of the organization's limit"),
        Key::new("gateway.plan_cache_secs", "integer", "how long an organization's plan limits are reused"),
        Key::new("gateway.trusted_proxies", "list of CIDRs", "proxies in front of the gateway whose `X-Forwarded-For` is believed"),
        Key::new("gateway.expensive_methods", "list of gRPC methods", "methods in the `expensive` class besides streams"),
        Key::new("gateway.rate_limit_audit_window_secs", "integer", "window over which refused requests are counted before one audit event reports them"),
        Key::new("gateway.public_url", "URL", "the URL clients reach the gateway at, for documents that name endpoints").default_is("unset: `http` and the request's `Host`"),
        // Console.
        Key::new("console.enabled", "bool", "serve the admin console at `/console` on the HTTP port"),
        Key::new("console.key", "64 hex digits", "seals the console's session cookies; every gateway replica shares it").default_is("generated into `data_dir`"),
        Key::new("console.public_url", "URL", "the URL users reach the console at; `https` makes its cookies `Secure`").default_is("unset: cookies follow `X-Forwarded-Proto`"),
    ]);
    keys
}

/// The rows of one service's `mailer` table.
fn mailer(prefix: &str, what: &'static str) -> Vec<Key> {
    let key = |name: &str| format!("{prefix}.{name}");
    vec![
        Key::new(key("kind"), "`log` \\| `smtp`", what),
        Key::new(key("from"), "string", "the sender address"),
        Key::new(
            key("link_base_url"),
            "URL",
            "base URL of links in mails: the console (`<public URL>/console`)",
        ),
        Key::new(
            key("smtp.host"),
            "string",
            "the SMTP relay's host (required for `smtp`)",
        ),
        Key::new(key("smtp.port"), "integer", "the relay's port"),
        Key::new(
            key("smtp.tls"),
            "`starttls` \\| `tls` \\| `none`",
            "how the connection is protected (`none` only for a loopback relay)",
        ),
        Key::new(
            key("smtp.username"),
            "string",
            "login name, if the relay wants one",
        )
        .default_is("unset"),
        Key::new(
            key("smtp.password"),
            "string",
            "password; set it in the environment from a Secret",
        )
        .default_is("unset"),
        Key::new(
            key("smtp.timeout_secs"),
            "integer",
            "seconds before a delivery attempt gives up",
        ),
    ]
}

/// The default of `key` in words: the row's own, or the built-in value.
pub fn default_of(key: &Key, defaults: &Value) -> String {
    if let Some(default) = key.default {
        return default.to_string();
    }
    let path = key.map_path().unwrap_or(&key.key);
    render(lookup(defaults, path).unwrap_or(&Value::Null))
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |value, part| value.get(part))
}

fn render(value: &Value) -> String {
    match value {
        Value::Null => "unset".into(),
        Value::String(s) if s.is_empty() => "empty".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) => items.iter().map(render).collect::<Vec<_>>().join(", "),
        Value::Object(map) if map.is_empty() => "none".into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("`{k}` = {}", render(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => format!("`{other}`"),
    }
}

/// The built-in configuration as JSON, for defaults.
pub fn defaults() -> Value {
    serde_json::to_value(Config::default()).expect("the configuration serializes")
}

/// The table as Markdown: what `tenantry config explain` prints and the
/// README shows. Rows whose key starts with `prefix` only, if given.
pub fn markdown(prefix: Option<&str>) -> String {
    let defaults = defaults();
    let mut out =
        String::from("| key | type | default | environment | meaning |\n|---|---|---|---|---|\n");
    for key in keys()
        .iter()
        .filter(|key| prefix.is_none_or(|p| key.key.starts_with(p)))
    {
        let mut env = format!("`{}`", key.env());
        if !key.also.is_empty() {
            env = format!("{env}, {}", key.also);
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            key.key,
            key.ty,
            default_of(key, &defaults),
            env,
            key.meaning
        ));
    }
    out
}

/// Every key path of the serialized default configuration, maps counted
/// once by their own path.
pub fn serialized_keys(value: &Value, maps: &[&str], path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) if !maps.contains(&path) => {
            for (name, field) in fields {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                serialized_keys(field, maps, &child, out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table lies between these lines.
    const BEGIN: &str = "<!-- BEGIN config explain -->\n";
    const END: &str = "<!-- END config explain -->";

    #[test]
    fn every_key_of_the_configuration_is_explained_and_every_row_is_a_key() {
        let keys = keys();
        let maps: Vec<&str> = keys.iter().filter_map(Key::map_path).collect();
        let mut serialized = Vec::new();
        serialized_keys(&defaults(), &maps, "", &mut serialized);
        let described: std::collections::BTreeSet<&str> = keys
            .iter()
            .map(|key| key.map_path().unwrap_or(&key.key))
            .collect();
        let missing: Vec<&String> = serialized
            .iter()
            .filter(|key| !described.contains(key.as_str()))
            .collect();
        assert!(missing.is_empty(), "keys without a row: {missing:?}");
        let extra: Vec<&&str> = described
            .iter()
            .filter(|key| !serialized.iter().any(|s| s == *key))
            .collect();
        assert!(extra.is_empty(), "rows without a key: {extra:?}");
        let mut seen = std::collections::BTreeSet::new();
        for key in &keys {
            assert!(seen.insert(&key.key), "{} twice", key.key);
        }
    }

    #[test]
    fn the_readme_shows_the_generated_table() {
        let readme = include_str!("../../../README.md");
        let start = readme.find(BEGIN).expect("the README marks its table") + BEGIN.len();
        let end = readme[start..].find(END).expect("the table ends") + start;
        assert_eq!(
            &readme[start..end],
            markdown(None),
            "the README's configuration table differs from `tenantry config explain`; paste its output between the markers"
        );
    }

    #[test]
    fn environment_variables_follow_the_nesting() {
        let key = Key::new("identity.mailer.smtp.password", "string", "");
        assert_eq!(key.env(), "TENANTRY_IDENTITY__MAILER__SMTP__PASSWORD");
    }
}
