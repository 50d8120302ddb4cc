//! Accounts, sign-in and sessions: the identity service's domain logic.
//!
//! Handlers in `api.rs` convert requests and call these methods; every
//! state change here writes its rows and its domain event in one
//! transaction, and mail goes out only after the commit. One file per flow:
//! `signup`, `email`, `passwords`, `login`, `mfa`, `sessions`;
//! this one holds the shared types and the write helpers.

use std::sync::Arc;
use std::time::Duration;

use tenantry_kit::auth::{AuthConfig, Claims, Principal, PrincipalKind};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::outbox::{NewEvent, Outbox};
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::events::v1 as events;

use crate::directory::Directory;
use crate::email::normalize_email;
use crate::error::Error as Refusal;
use crate::keys::KeyRing;
use crate::mailer::{Mail, Mailer};
use crate::password::{PasswordHasher, check_policy};
use crate::secrets::{hash_token, new_token};
use crate::store::{NewOneTime, PendingSignUp, SessionRow, Store, UserRow, user_update};
use crate::{Options, totp};

/// Single-use token purposes.
const VERIFY_EMAIL: &str = "verify_email";
const RESET_PASSWORD: &str = "reset_password";
const MFA_LOGIN: &str = "mfa_login";

/// The mail a sign-up for a taken address sends the address's owner.
const ACCOUNT_EXISTS: &str = "account_exists";

/// How many wrong codes an MFA challenge survives.
const MFA_ATTEMPTS: i64 = 5;

/// Where a call came from, for sessions, throttling and audit.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub address: String,
    pub user_agent: String,
    pub request_id: String,
}

impl ClientInfo {
    fn request_context(&self) -> events::RequestContext {
        events::RequestContext {
            request_id: self.request_id.clone(),
            trace_id: tenantry_kit::telemetry::current_trace_id().unwrap_or_default(),
            client_address: self.address.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

/// Tokens handed to a client after sign-in, refresh or an organization switch.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub access_expires_at_us: i64,
    pub refresh_token: Option<String>,
    pub refresh_expires_at_us: i64,
    pub user_id: String,
    pub session_id: String,
    pub organization_id: Option<String>,
    pub mfa: bool,
    pub mfa_pending: bool,
}

/// The result of a password check: tokens, or an MFA step first.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    Tokens(Tokens),
    MfaRequired {
        mfa_token: String,
        expires_at_us: i64,
    },
}

/// What a sign-up gives the caller at once.
#[derive(Debug, Clone)]
pub enum SignedUp {
    /// The account, signed in, in its first organization (when the
    /// deployment does not verify addresses first).
    SignedIn {
        user: Box<UserRow>,
        tokens: Tokens,
        organization: Option<String>,
    },
    /// A mail went to the address; nothing is said about the address.
    MailSent,
}

/// A verified address: its user, and the first session when the link
/// completed a sign-up (tokens and the first organization).
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: UserRow,
    pub session: Option<(Tokens, Option<String>)>,
}

/// A second factor.
#[derive(Debug, Clone)]
pub enum Factor {
    Totp(String),
    RecoveryCode(String),
}

/// What `Me` answers.
#[derive(Debug, Clone)]
pub struct MeView {
    pub user: UserRow,
    pub memberships: Vec<crate::directory::Membership>,
    pub active_organization: Option<String>,
    pub organization_created: bool,
}

/// TOTP enrollment in progress.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub otpauth_uri: String,
    pub secret: String,
    pub expires_at_us: i64,
}

/// The identity domain.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub(crate) inner: Arc<Inner>,
}

/// What [`Accounts`] works with.
#[derive(Debug)]
pub struct Dependencies {
    pub store: Store,
    pub outbox: Outbox,
    /// Where writes hand the authorization index their user events.
    pub index: Arc<tenantry_kit::index::IndexSink>,
    pub hasher: PasswordHasher,
    pub keys: KeyRing,
    pub mailer: Arc<dyn Mailer>,
    pub directory: Directory,
    pub options: Options,
    pub auth: AuthConfig,
    /// Seals TOTP secrets at rest.
    pub sealer: Arc<tenantry_kit::seal::Sealer>,
}

type Inner = Dependencies;

/// What a TOTP secret is sealed for: its user (a sealed secret copied to
/// another user's row does not open).
fn totp_context(user_id: &str) -> String {
    format!("identity.totp:{user_id}")
}

/// The organization a sign-in asks a session for.
enum Organization {
    /// One the user just became a member of (sign-up): theirs.
    Joined(Option<String>),
    /// One named in the request, or (`None`) the one they used last: only
    /// if they are a member.
    Asked(Option<String>),
}

fn micros(duration: Duration) -> i64 {
    duration.as_micros() as i64
}

/// A user's write refused for a unique key: its address is another
/// account's (the id of a new user is fresh).
fn email_taken(error: Error) -> Error {
    if error.code() == Code::AlreadyExists {
        Refusal::EmailTaken.into()
    } else {
        error
    }
}

pub(crate) fn user_actor(user: &UserRow) -> events::Actor {
    events::Actor {
        kind: events::actor::Kind::User as i32,
        id: user.id.clone(),
        display_name: user.display_name.clone(),
    }
}

mod email;
mod import;
mod login;
mod mfa;
mod passwords;
mod sessions;
mod signup;

impl Accounts {
    pub fn new(dependencies: Dependencies) -> Self {
        Accounts {
            inner: Arc::new(dependencies),
        }
    }

    pub(crate) fn options(&self) -> &Options {
        &self.inner.options
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Begins a write: its events go to the outbox and, for those the
    /// authorization index follows, to the index.
    pub(crate) async fn begin(&self) -> Result<Write> {
        Ok(Write::new(
            self.store().begin().await?,
            &self.inner.outbox,
            Some(&self.inner.index),
        ))
    }

    /// Writes a user event in `tx`.
    pub(crate) async fn emit<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        (aggregate_type, aggregate_id): (&'static str, &str),
        actor: events::Actor,
        client: &ClientInfo,
        payload: &M,
    ) -> Result<()> {
        let event = NewEvent::new(aggregate_type, aggregate_id, actor, payload);
        self.append(tx, event, client).await
    }

    /// Writes a new single-use token of `purpose` for a user, carrying
    /// `payload`, from `now` until `expires`; the token.
    pub(crate) async fn issue_one_time(
        &self,
        tx: &mut Write,
        (user_id, purpose): (&str, &str),
        payload: &str,
        (now, expires): (i64, i64),
    ) -> Result<String> {
        let token = new_token();
        let one_time = NewOneTime {
            token_hash: &hash_token(&token),
            user_id,
            purpose,
            payload,
            now_us: now,
            expires_at_us: expires,
        };
        self.store().insert_one_time(tx, &one_time).await?;
        Ok(token)
    }

    /// Writes an event of `user`'s own doing about their account in `tx`.
    pub(crate) async fn emit_user_event<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        user: &UserRow,
        client: &ClientInfo,
        payload: &M,
    ) -> Result<()> {
        self.emit(tx, ("user", &user.id), user_actor(user), client, payload)
            .await
    }

    /// Writes a prepared event (with field changes, say) in `tx`, stamped
    /// with the request it came from.
    pub(crate) async fn append(
        &self,
        tx: &mut Write,
        event: NewEvent,
        client: &ClientInfo,
    ) -> Result<()> {
        tx.emit(event.with_request(client.request_context()))
            .await?;
        Ok(())
    }

    /// Commits a write: the relay wakes, the index has its user events, the
    /// answer carries its token.
    pub(crate) async fn commit(&self, tx: Write) -> Result<()> {
        tx.commit().await?;
        Ok(())
    }

    /// Commits a write that changed a user and answers the user as it now
    /// is; `gone` is the answer should the user have vanished meanwhile.
    pub(crate) async fn commit_user(
        &self,
        mut tx: Write,
        id: &str,
        gone: fn() -> Error,
    ) -> Result<UserRow> {
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, id)
            .await?
            .ok_or_else(gone)?;
        self.commit(tx).await?;
        Ok(user)
    }

    /// A user by id, if it exists.
    pub async fn user(&self, id: &str) -> Result<Option<UserRow>> {
        self.store().user_by_id(id).await
    }
}

/// A display name as it is stored: trimmed, 1 to 200 characters;
/// INVALID_ARGUMENT naming `field` otherwise.
pub(crate) fn valid_display_name<'a>(field: &str, name: &'a str) -> Result<&'a str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(
            Error::invalid_field(field, "must be 1 to 200 characters").with_domain("identity")
        );
    }
    Ok(name)
}

/// One changed field, before and after, for audit. Never for secrets.
pub(crate) fn field_change(field: &str, before: &str, after: &str) -> events::FieldChange {
    events::FieldChange {
        field: field.to_string(),
        before: before.to_string(),
        after: after.to_string(),
    }
}

pub use tenantry_kit::db::timestamp;
