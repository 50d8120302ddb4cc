//! The identity service: who-you-are for the whole suite. Users and their
//! credentials (argon2id passwords, TOTP with recovery codes), email
//! verification and password reset, sessions with rotating refresh tokens,
//! Ed25519-signed access tokens and the JWKS that every other service
//! verifies them with.
//!
//! Shape: [`Options`] → [`build`] → [`Service::register`]. Domain logic lives
//! in [`accounts`]; storage in [`store`]; the gRPC handler in [`api`];
//! how rows become resources in `convert`.
//! [`api_keys`] and [`service_accounts`] serve the other two services.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod api_keys;
pub mod bulk;
mod convert;
pub mod directory;
pub mod email;
mod error;
pub mod keys;
pub mod mailer;
pub mod password;
pub mod schema;
pub mod secrets;
pub mod service_accounts;
pub mod store;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenantry_kit::auth::{Claims, JwkKey, JwksSource, PrincipalKind};
use tenantry_kit::configure_server;
use tenantry_kit::db::Migration;
use tenantry_kit::outbox::Outbox;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::identity::v1 as identity_pb;

use crate::accounts::Accounts;
use crate::directory::Directory;
use crate::keys::KeyRing;
use crate::mailer::MailerOptions;
use crate::password::{PasswordHasher, PasswordOptions};
use crate::store::Store;

pub use api::{MFA_ENROLLMENT_METHODS, PUBLIC_METHODS};

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "identity";

/// The service's tables.
pub const MIGRATIONS: &[Migration] = schema::MIGRATIONS;

/// Options of the identity service (the `[identity]` table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Lifetime of access tokens, users' and service accounts' alike, in
    /// seconds. Default: 900 (15 minutes).
    pub access_token_ttl_secs: u64,
    /// Lifetime of each refresh token, in seconds. Default: 2592000 (30 days).
    pub refresh_token_ttl_secs: u64,
    /// Absolute lifetime of a session, in hours. Default: 720 (30 days).
    pub session_lifetime_hours: u64,
    /// Lifetime of email verification links, in hours. Default: 24.
    pub verification_ttl_hours: u64,
    /// Lifetime of password reset links, in minutes. Default: 60.
    pub reset_ttl_minutes: u64,
    /// Whether `SignUp` waits for the address to be proved before it creates
    /// anything. Default: true: `SignUp` answers the same whether or not the
    /// address has an account (the owner of a taken address gets a mail
    /// instead), and the account, its first organization and its first
    /// session come from the link in the verification mail. False signs the
    /// new user in at once and answers `EMAIL_TAKEN` for a taken address,
    /// which tells anyone who has an account: for development only.
    pub verify_before_sign_in: bool,
    /// A new signing key is created when the newest is this old, in days.
    /// Default: 30.
    pub key_rotation_days: u64,
    /// The issuer shown in authenticator apps. Default: `Tenantry`.
    pub totp_issuer: String,
    /// Emails of platform administrators, granted the instance-level role at
    /// sign-up, and at every start of identity to those that already have
    /// an account (once, with the `PlatformAdminGranted` event). Default:
    /// none.
    pub platform_admins: Vec<String>,
    /// The public base URL of the gateway, for discovery documents. Default:
    /// `http://127.0.0.1:8080`.
    pub public_base_url: String,
    /// Password hashing and policy.
    pub password: PasswordOptions,
    /// Sign-in throttling.
    pub throttle: ThrottleOptions,
    /// Outgoing mail.
    pub mailer: MailerOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            session_lifetime_hours: 30 * 24,
            verification_ttl_hours: 24,
            reset_ttl_minutes: 60,
            verify_before_sign_in: true,
            key_rotation_days: 30,
            totp_issuer: "Tenantry".into(),
            platform_admins: Vec::new(),
            public_base_url: "http://127.0.0.1:8080".into(),
            password: PasswordOptions::default(),
            throttle: ThrottleOptions::default(),
            mailer: MailerOptions::default(),
        }
    }
}

/// Sign-in throttling (`[identity.throttle]`): after the free attempts, each
/// failure doubles the wait, from `backoff_base_ms` up to `backoff_max_secs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleOptions {
    /// Failed attempts per account before waits begin. Default: 5.
    pub free_attempts_per_account: u32,
    /// Failed attempts per client address before waits begin. Default: 20.
    pub free_attempts_per_address: u32,
    /// The first wait, in milliseconds. Default: 1000.
    pub backoff_base_ms: u64,
    /// The longest wait, in seconds. Default: 900.
    pub backoff_max_secs: u64,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions {
            free_attempts_per_account: 5,
            free_attempts_per_address: 20,
            backoff_base_ms: 1000,
            backoff_max_secs: 900,
        }
    }
}

impl Options {
    /// Checks the values, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("identity.access_token_ttl_secs", self.access_token_ttl_secs),
            (
                "identity.refresh_token_ttl_secs",
                self.refresh_token_ttl_secs,
            ),
            (
                "identity.session_lifetime_hours",
                self.session_lifetime_hours,
            ),
            (
                "identity.verification_ttl_hours",
                self.verification_ttl_hours,
            ),
            ("identity.reset_ttl_minutes", self.reset_ttl_minutes),
            ("identity.key_rotation_days", self.key_rotation_days),
            (
                "identity.throttle.backoff_base_ms",
                self.throttle.backoff_base_ms,
            ),
            (
                "identity.throttle.backoff_max_secs",
                self.throttle.backoff_max_secs,
            ),
        ];
        for (key, value) in positive {
            anyhow::ensure!(value > 0, "invalid configuration: `{key}` must be positive");
        }
        anyhow::ensure!(
            self.access_token_ttl_secs <= 3600,
            "invalid configuration: `identity.access_token_ttl_secs` must be at most 3600: access tokens cannot be revoked"
        );
        // Checked here, not first at start, so that `tenantry config
        // check` names a mistyped address.
        for admin in &self.platform_admins {
            email::normalize_email("identity.platform_admins", admin).map_err(|e| {
                anyhow::anyhow!("invalid configuration: {} (`{admin}`)", e.message())
            })?;
        }
        self.mailer.validate("identity.mailer")?;
        self.password.validate()
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_lifetime_hours * 3600)
    }

    pub fn verification_ttl(&self) -> Duration {
        Duration::from_secs(self.verification_ttl_hours * 3600)
    }

    pub fn reset_ttl(&self) -> Duration {
        Duration::from_secs(self.reset_ttl_minutes * 60)
    }
}

/// The running identity service.
#[derive(Debug, Clone)]
pub struct Service {
    outbox: Outbox,
    api: api::IdentityApi,
    bulk: bulk::BulkApi,
    service_accounts: service_accounts::ServiceAccountApi,
    api_keys: api_keys::ApiKeyApi,
    keys: KeyRing,
}

/// Builds the service: loads (or creates) the signing keys and starts the
/// outbox relay and the key refresher.
pub async fn build(ctx: &ServiceContext, options: &Options) -> anyhow::Result<Service> {
    options.validate()?;
    let store = Store::new(ctx.db.clone());
    let outbox = ctx.outbox(NAME)?;
    let rotation = Duration::from_secs(options.key_rotation_days * 24 * 3600);
    let keys = KeyRing::load(store.clone(), rotation, options.access_token_ttl()).await?;
    spawn_key_refresher(ctx, keys.clone());

    let hasher = PasswordHasher::new(&options.password)?;
    let mailer = mailer::build(&options.mailer, "identity.mailer", ctx.data_dir.clone())?;
    let directory = Directory::new(&ctx.peers, service_token(ctx, &keys))?;
    let accounts = Accounts::new(accounts::Dependencies {
        store,
        outbox: outbox.clone(),
        index: ctx.index_sink(NAME)?,
        hasher,
        keys: keys.clone(),
        mailer,
        directory,
        options: options.clone(),
        auth: ctx.auth.clone(),
        sealer: ctx
            .sealer
            .clone()
            .ok_or_else(|| anyhow::anyhow!("a process running identity has the sealing keys"))?,
    });
    let resealed = accounts
        .reseal_totp_secrets()
        .await
        .map_err(|e| anyhow::anyhow!("sealing stored TOTP secrets: {e}"))?;
    if resealed > 0 {
        tracing::info!(resealed, "sealed stored TOTP secrets with the current key");
    }
    let granted = admin::grant_configured_platform_admins(&ctx.db, &options.platform_admins)
        .await
        .map_err(|e| anyhow::anyhow!("granting `identity.platform_admins` their role: {e}"))?;
    for user in granted {
        tracing::info!(
            user = %user.id,
            "granted the platform administrator role to an address of `identity.platform_admins`"
        );
    }
    let service_accounts = service_accounts::ServiceAccountApi {
        accounts: accounts.clone(),
        page_tokens: ctx.page_tokens.clone(),
    };
    let api_keys = api_keys::ApiKeyApi::new(accounts.clone(), ctx.page_tokens.clone());
    let bulk = bulk::BulkApi {
        accounts: accounts.clone(),
    };
    let api = api::IdentityApi {
        accounts,
        keys: keys.clone(),
        page_tokens: ctx.page_tokens.clone(),
        issuer: ctx.auth.issuer.clone(),
        public_base_url: options.public_base_url.clone(),
    };
    Ok(Service {
        outbox,
        api,
        bulk,
        service_accounts,
        api_keys,
        keys,
    })
}

/// Identity calls other services as itself, with a five-minute token it
/// signs on demand.
fn service_token(ctx: &ServiceContext, keys: &KeyRing) -> directory::TokenSource {
    let keys = keys.clone();
    let auth = ctx.auth.clone();
    // Reused until a minute before it expires: signing on every outgoing
    // call would put an Ed25519 signature on the hot path of `Me`.
    let current: std::sync::Mutex<Option<(String, i64)>> = std::sync::Mutex::new(None);
    Arc::new(move || {
        let now = chrono::Utc::now().timestamp();
        let mut current = current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, exp)) = current.as_ref()
            && *exp - now > 60
        {
            return token.clone();
        }
        let exp = now + 300;
        let token = keys.signing_key().sign(&Claims {
            iss: auth.issuer.clone(),
            aud: auth.audience.clone(),
            sub: NAME.to_string(),
            sid: None,
            org: None,
            iat: now,
            exp,
            nbf: None,
            jti: tenantry_kit::id::new_id().to_string(),
            amr: vec!["svc".into()],
            kind: PrincipalKind::ServiceAccount,
            perms: None,
            team: None,
            mfa_pending: false,
            name: None,
        });
        *current = Some((token.clone(), exp));
        token
    })
}

/// Re-reads the keys every ten minutes: picks up rotations made by other
/// replicas and rotates when the newest key is too old.
fn spawn_key_refresher(ctx: &ServiceContext, keys: KeyRing) {
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            }
            if let Err(error) = keys.refresh().await {
                tracing::warn!(%error, "refreshing signing keys failed");
            }
        }
    });
}

impl Service {
    /// Mounts the service's gRPC servers.
    pub fn register(&self, routes: &mut GrpcRoutes) {
        routes.add(configure_server!(
            identity_pb::identity_service_server::IdentityServiceServer::new(self.api.clone())
        ));
        routes.add(configure_server!(
            identity_pb::api_key_service_server::ApiKeyServiceServer::new(self.api_keys.clone())
        ));
        routes.add(configure_server!(
            tenantry_proto::tenantry::bulk::v1::bulk_service_server::BulkServiceServer::new(
                self.bulk.clone()
            )
        ));
        routes.add(configure_server!(
            identity_pb::service_account_service_server::ServiceAccountServiceServer::new(
                self.service_accounts.clone()
            )
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The public keys, straight from the key ring: what a process hosting
    /// identity verifies tokens with, without a network hop.
    pub fn jwks_source(&self) -> Arc<dyn JwksSource> {
        Arc::new(KeyRingSource(self.keys.clone()))
    }
}

/// Hands the key ring's published keys to a `JwksCache` in-process.
#[derive(Debug)]
struct KeyRingSource(KeyRing);

#[async_trait::async_trait]
impl JwksSource for KeyRingSource {
    async fn fetch(&self) -> anyhow::Result<Vec<JwkKey>> {
        self.0.refresh().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(self.0.published())
    }
}
