//! Accounts, sign-in and sessions: the identity service's domain logic.
//!
//! Handlers in `api.rs` convert requests and call these methods; every
//! state change here writes its rows and its domain event in one
//! transaction, and mail goes out only after the commit.

use std::sync::Arc;
use std::time::Duration;

use prost::Name;
use tenantry_kit::auth::{AuthConfig, Claims, Principal, PrincipalKind};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::outbox::{NewEvent, Outbox};
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::events::v1 as events;

use crate::directory::Directory;
use crate::email::normalize_email;
use crate::keys::KeyRing;
use crate::mailer::{Mail, Mailer};
use crate::password::{PasswordHasher, check_policy};
use crate::secrets::{hash_token, new_token};
use crate::store::{NewOneTime, PendingSignUp, SessionRow, Store, UserRow};
use crate::{Options, totp};

/// Single-use token purposes.
const VERIFY_EMAIL: &str = "verify_email";
const RESET_PASSWORD: &str = "reset_password";
const MFA_LOGIN: &str = "mfa_login";

/// The mail a sign-up for a taken address sends the address's owner.
const ACCOUNT_EXISTS: &str = "account_exists";

/// How many wrong codes an MFA challenge survives.
const MFA_ATTEMPTS: i64 = 5;

/// One error for every failed sign-in, whatever failed: no user enumeration.
fn invalid_credentials() -> Error {
    Error::new(
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
        "invalid email or password",
    )
    .with_domain("identity")
}

fn invalid_token(field: &str) -> Error {
    Error::new(
        Code::InvalidArgument,
        "TOKEN_INVALID",
        "the token is invalid, used or expired",
    )
    .with_domain("identity")
    .with_violation(field, "is invalid, used or expired")
}

pub(crate) fn invalid_session() -> Error {
    Error::new(
        Code::Unauthenticated,
        "SESSION_INVALID",
        "the session is invalid or has ended",
    )
    .with_domain("identity")
}

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

pub(crate) fn user_actor(user: &UserRow) -> events::Actor {
    events::Actor {
        kind: events::actor::Kind::User as i32,
        id: user.id.clone(),
        display_name: user.display_name.clone(),
    }
}

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
    pub(crate) async fn emit<M: Name>(
        &self,
        tx: &mut Write,
        event_type: &'static str,
        (aggregate_type, aggregate_id): (&'static str, &str),
        actor: events::Actor,
        client: &ClientInfo,
        payload: &M,
    ) -> Result<()> {
        let event = NewEvent::new(event_type, aggregate_type, aggregate_id, actor, payload);
        self.append(tx, event, client).await
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

    /// A user by id, if it exists.
    pub async fn user(&self, id: &str) -> Result<Option<UserRow>> {
        self.store().user_by_id(id).await
    }

    // Sign-up and email verification.

    /// Signs a new user up. With `verify_before_sign_in` (the default) it
    /// only mails the address and answers the same whether or not the
    /// address has an account; the account comes from the mailed link
    /// ([`verify_email`](Self::verify_email)). Otherwise it creates the
    /// account and its first organization and signs it in at once.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
        organization_name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<SignedUp> {
        let email = normalize_email("email", email)?;
        if organization_name.is_some_and(|n| n.chars().count() > 200) {
            return Err(Error::invalid_field(
                "organization_display_name",
                "must be at most 200 characters",
            )
            .with_domain("identity"));
        }
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 200 {
            return Err(
                Error::invalid_field("display_name", "must be 1 to 200 characters")
                    .with_domain("identity"),
            );
        }
        let local_part = email.split('@').next().unwrap_or_default();
        let password = check_policy(
            password,
            &self.options().password,
            &[&email, local_part, display_name],
        )?;
        // Hash before the transaction: it takes tens of milliseconds.
        let hash = self.inner.hasher.hash(&password).await?;
        let organization_name = organization_name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or_default()
            .to_string();
        if self.options().verify_before_sign_in {
            self.sign_up_by_mail(email, display_name, hash, organization_name)
                .await?;
            return Ok(SignedUp::MailSent);
        }

        let now = now_micros();
        let user = self.new_user(email.clone(), display_name, hash, now);
        let mut tx = self.begin().await?;
        self.insert_new_user(&mut tx, &user, client).await?;
        self.emit_signed_up(&mut tx, &user, client).await?;
        let verification = self
            .start_verification(&mut tx, &user, &email, client)
            .await?;
        self.commit(tx).await?;
        let organization = self
            .first_organization(&user, &organization_name, None, client)
            .await?;
        self.send(verification).await;
        let (user, tokens) = self.first_session(user, &organization, client).await?;
        Ok(SignedUp::SignedIn {
            user: Box::new(user),
            tokens,
            organization,
        })
    }

    /// Keeps a sign-up until its address is proved, and mails the address:
    /// the link that completes it, or, when the address has an account
    /// already, a note saying so. The caller learns nothing either way, and
    /// both take the same work (the row is written for a taken address too;
    /// its link is never sent).
    async fn sign_up_by_mail(
        &self,
        email: String,
        display_name: &str,
        password_hash: String,
        organization_name: String,
    ) -> Result<()> {
        let taken = self.store().user_by_email(&email).await?.is_some();
        let now = now_micros();
        let token = new_token();
        let pending = PendingSignUp {
            email: email.clone(),
            display_name: display_name.to_string(),
            password_hash,
            organization_name,
            created_at_us: now,
            expires_at_us: now + micros(self.options().verification_ttl()),
        };
        let mut tx = self.begin().await?;
        self.store()
            .insert_pending_sign_up(&mut tx, &hash_token(&token), &pending)
            .await?;
        self.commit(tx).await?;
        let base = &self.options().mailer.link_base_url;
        let mail = if taken {
            Mail {
                to: email,
                kind: ACCOUNT_EXISTS,
                subject: "You already have an account".into(),
                body: format!(
                    "Hello,\n\nsomeone, perhaps you, tried to sign up with this address, which already has an account.\nSign in at {base}/sign-in, or choose a new password at {base}/forgot-password.\n\nIf it was not you, ignore this message: nothing changed."
                ),
            }
        } else {
            Mail {
                to: email,
                kind: VERIFY_EMAIL,
                subject: "Confirm your email address to finish signing up".into(),
                body: format!(
                    "Hello {display_name},\n\nfinish signing up with this link:\n{base}/verify-email?token={token}\n\ntoken: {token}\n\nThe link expires in {} hours and works once. If you did not sign up, ignore this message: no account exists until the link is used.",
                    self.options().verification_ttl_hours
                ),
            }
        };
        self.send(mail).await;
        Ok(())
    }

    /// Creates the account of a pending sign-up whose link was just used
    /// (`token_hash`, taken in `tx`), its first organization and its first
    /// session.
    async fn complete_sign_up(
        &self,
        mut tx: Write,
        token_hash: &str,
        pending: PendingSignUp,
        client: &ClientInfo,
    ) -> Result<Verified> {
        let now = now_micros();
        let user = UserRow {
            email_verified_at_us: Some(now),
            ..self.new_user(
                pending.email.clone(),
                &pending.display_name,
                pending.password_hash,
                now,
            )
        };
        // An address that got its account since (another of its links, or an
        // invitation) makes this link one that no longer works.
        self.insert_new_user(&mut tx, &user, client)
            .await
            .map_err(|error| match error.code() {
                Code::AlreadyExists => invalid_token("token"),
                _ => error,
            })?;
        self.store()
            .close_pending_sign_ups(&mut tx, &user.email)
            .await?;
        self.emit_signed_up(&mut tx, &user, client).await?;
        self.commit(tx).await?;
        let organization = self
            .first_organization(&user, &pending.organization_name, Some(token_hash), client)
            .await?;
        let (user, tokens) = self.first_session(user, &organization, client).await?;
        Ok(Verified {
            user,
            session: Some((tokens, organization)),
        })
    }

    async fn emit_signed_up(
        &self,
        tx: &mut Write,
        user: &UserRow,
        client: &ClientInfo,
    ) -> Result<()> {
        self.emit(
            tx,
            "identity.user.signed_up",
            ("user", &user.id),
            user_actor(user),
            client,
            &events::UserSignedUp {
                user_id: user.id.clone(),
                email: user.email.clone(),
                display_name: user.display_name.clone(),
                invitation_id: String::new(),
                email_verified: user.email_verified_at_us.is_some(),
            },
        )
        .await
    }

    /// Creates a new user's first organization through the organization
    /// service (`name` empty for the default). Sign-up promises it: when it
    /// cannot be created (after retries of the same idempotent request), the
    /// account is taken back — and the link of a pending sign-up
    /// (`pending_hash`) works again — and the caller gets the error, free to
    /// try again. A deployment without the organization service
    /// (UNIMPLEMENTED) promises none.
    async fn first_organization(
        &self,
        user: &UserRow,
        name: &str,
        pending_hash: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Option<String>> {
        let name = match name {
            "" => format!("{}'s organization", user.display_name),
            name => name.to_string(),
        };
        let mut attempt = 0;
        loop {
            match self
                .inner
                .directory
                .create_first_organization(&user.id, &self.short_user_token(user), &name)
                .await
            {
                Ok(organization) => return Ok(organization),
                Err(error) if attempt < 2 => {
                    tracing::warn!(user_id = %user.id, error = %error, "creating the first organization failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * 3u64.pow(attempt)))
                        .await;
                }
                Err(error) => {
                    tracing::warn!(user_id = %user.id, error = %error, "creating the first organization failed; taking the sign-up back");
                    self.take_back_sign_up(user, pending_hash, client).await?;
                    return Err(error);
                }
            }
        }
    }

    /// Creates an account through an invitation: the address must be the
    /// invited one (the link proved the mailbox, so it starts verified), no
    /// first organization is created, and the new user joins the inviting
    /// organization by accepting the invitation as themself.
    pub async fn sign_up_with_invitation(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
        invitation_token: &str,
        client: &ClientInfo,
    ) -> Result<(UserRow, Tokens, Option<String>)> {
        let email = normalize_email("email", email)?;
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 200 {
            return Err(
                Error::invalid_field("display_name", "must be 1 to 200 characters")
                    .with_domain("identity"),
            );
        }
        let local_part = email.split('@').next().unwrap_or_default();
        let password = check_policy(
            password,
            &self.options().password,
            &[&email, local_part, display_name],
        )?;
        let invitation = self
            .inner
            .directory
            .lookup_invitation(invitation_token)
            .await?
            .ok_or_else(|| invalid_token("invitation_token"))?;
        if normalize_email("email", &invitation.email).ok().as_deref() != Some(email.as_str()) {
            return Err(Error::invalid_field(
                "email",
                "must be the address the invitation was sent to",
            )
            .with_domain("identity"));
        }
        let hash = self.inner.hasher.hash(&password).await?;
        let now = now_micros();
        let user = UserRow {
            email_verified_at_us: Some(now),
            ..self.new_user(email, display_name, hash, now)
        };
        let mut tx = self.begin().await?;
        self.insert_new_user(&mut tx, &user, client).await?;
        self.store()
            .close_pending_sign_ups(&mut tx, &user.email)
            .await?;
        self.emit_signed_up(&mut tx, &user, client).await?;
        self.commit(tx).await?;

        // Accept as the new user, with a one-minute token of theirs.
        let acceptance = self.short_user_token(&user);
        let organization = match self
            .inner
            .directory
            .accept_invitation(invitation_token, &acceptance)
            .await
        {
            Ok(true) => Some(invitation.organization_id),
            // An external user: no organization of theirs to sign in to.
            Ok(false) => None,
            Err(error) => {
                // The account stands; the user can accept again once signed in.
                tracing::warn!(user_id = %user.id, error = %error, "accepting the invitation at sign-up failed");
                None
            }
        };
        let (user, tokens) = self.first_session(user, &organization, client).await?;
        Ok((user, tokens, organization))
    }

    /// A new user's first session, in the organization they were given (if
    /// any), and the user as it is now.
    async fn first_session(
        &self,
        user: UserRow,
        organization: &Option<String>,
        client: &ClientInfo,
    ) -> Result<(UserRow, Tokens)> {
        let tokens = self
            .sign_in(
                &user,
                Organization::Joined(organization.clone()),
                false,
                client,
            )
            .await?;
        let user = self.store().user_by_id(&user.id).await?.unwrap_or(user);
        Ok((user, tokens))
    }

    /// A sessionless one-minute access token of `user`, for a call identity
    /// makes on the user's behalf.
    fn short_user_token(&self, user: &UserRow) -> String {
        let now = now_micros() / 1_000_000;
        self.inner.keys.signing_key().sign(&Claims {
            iss: self.inner.auth.issuer.clone(),
            aud: self.inner.auth.audience.clone(),
            sub: user.id.clone(),
            sid: None,
            org: None,
            iat: now,
            exp: now + 60,
            nbf: None,
            jti: new_id().to_string(),
            amr: vec!["pwd".into()],
            kind: PrincipalKind::User,
            perms: None,
            team: None,
            mfa_pending: false,
            name: Some(user.display_name.clone()),
        })
    }

    /// A new active user row.
    fn new_user(
        &self,
        email: String,
        display_name: &str,
        password_hash: String,
        now: i64,
    ) -> UserRow {
        UserRow {
            id: new_id().to_string(),
            platform_admin: self.options().platform_admins.iter().any(|admin| {
                normalize_email("platform_admins", admin).is_ok_and(|admin| admin == email)
            }),
            email,
            display_name: display_name.to_string(),
            password_hash,
            email_verified_at_us: None,
            pending_email: None,
            state: "active".into(),
            deleted_at_us: None,
            totp_secret: None,
            totp_enabled_at_us: None,
            totp_last_step: None,
            pending_totp_secret: None,
            pending_totp_expires_at_us: None,
            last_login_at_us: None,
            last_organization_id: None,
            password_changed_at_us: now,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
            recovery_codes_remaining: 0,
        }
    }

    /// Inserts a new user, answering EMAIL_TAKEN for a taken address. A user
    /// made a platform administrator by configuration gets the same event
    /// as one granted it later, so that other services (billing's plan
    /// administration) learn of it.
    /// Removes an account whose sign-up could not be completed: the user,
    /// their single-use tokens, and (as an event) every copy other services
    /// made of it. Nothing else exists yet: no session was opened.
    async fn take_back_sign_up(
        &self,
        user: &UserRow,
        pending_hash: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.store().delete_new_user(&mut tx, &user.id).await?;
        if let Some(hash) = pending_hash {
            self.store().release_pending_sign_up(&mut tx, hash).await?;
        }
        self.emit(
            &mut tx,
            "identity.user.deleted",
            ("user", &user.id),
            user_actor(user),
            client,
            &events::UserDeleted {
                user_id: user.id.clone(),
                purge_time: None,
            },
        )
        .await?;
        self.commit(tx).await
    }

    async fn insert_new_user(
        &self,
        tx: &mut Write,
        user: &UserRow,
        client: &ClientInfo,
    ) -> Result<()> {
        self.insert_user_row(tx, user).await?;
        if user.platform_admin {
            self.emit(
                tx,
                "identity.user.platform_admin_granted",
                ("user", &user.id),
                user_actor(user),
                client,
                &events::PlatformAdminGranted {
                    user_id: user.id.clone(),
                    bootstrap: true,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn insert_user_row(&self, tx: &mut Write, user: &UserRow) -> Result<()> {
        self.store().insert_user(tx, user).await.map_err(|error| {
            if error.code() == Code::AlreadyExists {
                Error::new(
                    Code::AlreadyExists,
                    "EMAIL_TAKEN",
                    "an account with this email exists",
                )
                .with_domain("identity")
            } else {
                error
            }
        })
    }

    /// Writes a verification token for `email` and returns the mail to send
    /// after the commit.
    async fn start_verification(
        &self,
        tx: &mut Write,
        user: &UserRow,
        email: &str,
        client: &ClientInfo,
    ) -> Result<Mail> {
        let now = now_micros();
        let token = new_token();
        let expires = now + micros(self.options().verification_ttl());
        self.store()
            .expire_one_time(tx, &user.id, VERIFY_EMAIL, now)
            .await?;
        self.store()
            .insert_one_time(
                tx,
                &NewOneTime {
                    token_hash: &hash_token(&token),
                    user_id: &user.id,
                    purpose: VERIFY_EMAIL,
                    payload: email,
                    now_us: now,
                    expires_at_us: expires,
                },
            )
            .await?;
        self.emit(
            tx,
            "identity.user.email_verification_requested",
            ("user", &user.id),
            user_actor(user),
            client,
            &events::UserEmailVerificationRequested {
                user_id: user.id.clone(),
                email: email.to_string(),
                expire_time: Some(timestamp(expires)),
            },
        )
        .await?;
        let link = format!(
            "{}/verify-email?token={token}",
            self.options().mailer.link_base_url
        );
        Ok(Mail {
            to: email.to_string(),
            kind: VERIFY_EMAIL,
            subject: "Verify your email address".into(),
            body: format!(
                "Hello {},\n\nconfirm your email address with this link:\n{link}\n\ntoken: {token}\n\nThe link expires in {} hours and works once.",
                user.display_name,
                self.options().verification_ttl_hours
            ),
        })
    }

    async fn send(&self, mail: Mail) {
        if let Err(error) = self.inner.mailer.send(mail).await {
            // The user can ask for the mail again; the account change stands.
            tracing::warn!(error = format!("{error:#}"), "sending mail failed");
        }
    }

    /// The unused, unexpired single-use token of `purpose` with this hash,
    /// and its (active) user. Anything else is the same INVALID_ARGUMENT.
    async fn pending_token(
        &self,
        tx: &mut Write,
        hash: &str,
        purpose: &str,
        now_us: i64,
    ) -> Result<(crate::store::OneTimeRow, UserRow)> {
        let row = self
            .store()
            .one_time(tx, hash)
            .await?
            .filter(|row| {
                row.purpose == purpose && row.used_at_us.is_none() && row.expires_at_us > now_us
            })
            .ok_or_else(|| invalid_token("token"))?;
        let user = self
            .store()
            .user_by_id_for_update(tx, &row.user_id)
            .await?
            .filter(UserRow::is_active)
            .ok_or_else(|| invalid_token("token"))?;
        Ok((row, user))
    }

    /// The password policy for an existing user's new password: the email,
    /// its local part and the display name are off limits.
    fn new_password_policy(&self, user: &UserRow, password: &str) -> Result<String> {
        let local_part = user.email.split('@').next().unwrap_or_default();
        check_policy(
            password,
            &self.options().password,
            &[&user.email, local_part, &user.display_name],
        )
        .map_err(|e| e.with_violation("new_password", "does not meet the password policy"))
    }

    /// Confirms an email address: a pending sign-up's (creating its account
    /// and signing it in), the account's, or a pending new one.
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<Verified> {
        let now = now_micros();
        let hash = hash_token(token);
        let mut tx = self.begin().await?;
        if let Some(pending) = self
            .store()
            .take_pending_sign_up(&mut tx, &hash, now)
            .await?
        {
            return self.complete_sign_up(tx, &hash, pending, client).await;
        }
        let (row, user) = self
            .pending_token(&mut tx, &hash, VERIFY_EMAIL, now)
            .await?;
        if !self.store().use_one_time(&mut tx, &hash, now).await? {
            return Err(invalid_token("token"));
        }
        let email = row.payload;
        if user.pending_email.as_deref() == Some(email.as_str()) {
            let old = user.email.clone();
            self.store()
                .update_user(
                    &mut tx,
                    &user.id,
                    "email = $2, pending_email = NULL, email_verified_at_us = $3",
                    |q| q.bind(email.clone()).bind(now),
                )
                .await
                .map_err(|error| {
                    if error.code() == Code::AlreadyExists {
                        Error::new(
                            Code::AlreadyExists,
                            "EMAIL_TAKEN",
                            "an account with this email exists",
                        )
                        .with_domain("identity")
                    } else {
                        error
                    }
                })?;
            let event = NewEvent::new(
                "identity.user.email_changed",
                "user",
                user.id.clone(),
                user_actor(&user),
                &events::UserEmailChanged {
                    user_id: user.id.clone(),
                    old_email: old.clone(),
                    new_email: email.clone(),
                },
            )
            .with_changes(vec![field_change("email", &old, &email)]);
            self.append(&mut tx, event, client).await?;
        } else if user.email == email {
            self.store()
                .update_user(&mut tx, &user.id, "email_verified_at_us = $2", |q| {
                    q.bind(now)
                })
                .await?;
        } else {
            // The address changed again since this link was sent.
            return Err(invalid_token("token"));
        }
        self.emit(
            &mut tx,
            "identity.user.email_verified",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::UserEmailVerified {
                user_id: user.id.clone(),
                email,
            },
        )
        .await?;
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, &user.id)
            .await?
            .ok_or_else(|| invalid_token("token"))?;
        self.commit(tx).await?;
        Ok(Verified {
            user,
            session: None,
        })
    }

    /// Mails a new verification link. Answers the same whether or not the
    /// address has an account, so it reveals nothing.
    pub async fn resend_verification(&self, email: &str, client: &ClientInfo) -> Result<()> {
        let email = normalize_email("email", email)?;
        let Some(user) = self.store().user_by_email(&email).await? else {
            return Ok(());
        };
        if !user.is_active() || user.email_verified_at_us.is_some() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let mail = self
            .start_verification(&mut tx, &user, &email, client)
            .await?;
        self.commit(tx).await?;
        self.send(mail).await;
        Ok(())
    }

    /// Sends the signed-in caller's verification again: to the new address
    /// they asked to change to, or else to their address while it is not
    /// verified; nothing when there is nothing to verify.
    pub async fn resend_verification_to_caller(
        &self,
        principal: &Principal,
        client: &ClientInfo,
    ) -> Result<()> {
        let user = self.user_principal(principal).await?;
        let target = match &user.pending_email {
            Some(pending) => pending.clone(),
            None if user.email_verified_at_us.is_none() => user.email.clone(),
            None => return Ok(()),
        };
        let mut tx = self.begin().await?;
        let mail = self
            .start_verification(&mut tx, &user, &target, client)
            .await?;
        self.commit(tx).await?;
        self.send(mail).await;
        Ok(())
    }

    // Sign-in.

    /// Checks a password and signs the user in, or asks for the second
    /// factor. Unknown emails and wrong passwords take the same time and
    /// answer the same error; repeated failures are throttled per account and
    /// per client address.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        organization: Option<String>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let email = normalize_email("email", email)?;
        let account_key = format!("account:{email}");
        let address_key = format!("address:{}", client.address);
        self.check_throttle(&[&account_key, &address_key]).await?;

        let user = self.store().user_by_email(&email).await?;
        let verified = match &user {
            Some(user) => {
                self.inner
                    .hasher
                    .verify(password, &user.password_hash)
                    .await?
            }
            None => {
                self.inner.hasher.verify_dummy(password).await;
                crate::password::Verification {
                    matches: false,
                    needs_rehash: false,
                }
            }
        };
        let user = match user {
            Some(user) if verified.matches && user.is_active() => user,
            user => {
                let failures = self
                    .record_failure(
                        &account_key,
                        self.options().throttle.free_attempts_per_account,
                    )
                    .await?;
                self.record_failure(
                    &address_key,
                    self.options().throttle.free_attempts_per_address,
                )
                .await?;
                if let Some(user) = user {
                    let reason = if verified.matches {
                        events::login_failed::Reason::UserDisabled
                    } else {
                        events::login_failed::Reason::InvalidCredentials
                    };
                    let mut tx = self.begin().await?;
                    self.emit(
                        &mut tx,
                        "identity.login.failed",
                        ("user", &user.id),
                        user_actor(&user),
                        client,
                        &events::LoginFailed {
                            user_id: user.id.clone(),
                            email: email.clone(),
                            reason: reason as i32,
                            consecutive_failures: failures as i32,
                        },
                    )
                    .await?;
                    self.commit(tx).await?;
                }
                return Err(invalid_credentials());
            }
        };
        self.store().clear_throttle(&account_key).await?;

        if verified.needs_rehash {
            // Parameters changed since this hash was made: upgrade it now,
            // while we hold the plain password.
            let hash = self.inner.hasher.hash(password).await?;
            let mut tx = self.begin().await?;
            self.store()
                .update_user(&mut tx, &user.id, "password_hash = $2", |q| q.bind(hash))
                .await?;
            self.commit(tx).await?;
        }

        if user.mfa_enabled() {
            let now = now_micros();
            let token = new_token();
            let expires = now + micros(Duration::from_secs(300));
            let payload = serde_json::json!({ "organization": organization }).to_string();
            let mut tx = self.begin().await?;
            self.store()
                .insert_one_time(
                    &mut tx,
                    &NewOneTime {
                        token_hash: &hash_token(&token),
                        user_id: &user.id,
                        purpose: MFA_LOGIN,
                        payload: &payload,
                        now_us: now,
                        expires_at_us: expires,
                    },
                )
                .await?;
            self.commit(tx).await?;
            return Ok(LoginOutcome::MfaRequired {
                mfa_token: token,
                expires_at_us: expires,
            });
        }
        let tokens = self
            .sign_in(&user, Organization::Asked(organization), false, client)
            .await?;
        Ok(LoginOutcome::Tokens(tokens))
    }

    /// Finishes a sign-in that needed a second factor.
    pub async fn complete_mfa_login(
        &self,
        mfa_token: &str,
        factor: Factor,
        client: &ClientInfo,
    ) -> Result<Tokens> {
        let now = now_micros();
        let hash = hash_token(mfa_token);
        let mut tx = self.begin().await?;
        let challenge = self
            .store()
            .one_time(&mut tx, &hash)
            .await?
            .filter(|row| {
                row.purpose == MFA_LOGIN
                    && row.used_at_us.is_none()
                    && row.expires_at_us > now
                    && row.attempts < MFA_ATTEMPTS
            })
            .ok_or_else(|| invalid_token("mfa_token"))?;
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, &challenge.user_id)
            .await?
            .filter(|user| user.is_active() && user.mfa_enabled())
            .ok_or_else(|| invalid_token("mfa_token"))?;
        let accepted = self.check_factor(&mut tx, &user, &factor, now).await?;
        if !accepted {
            drop(tx);
            self.store().fail_one_time(&hash).await?;
            let mut tx = self.begin().await?;
            self.emit(
                &mut tx,
                "identity.login.failed",
                ("user", &user.id),
                user_actor(&user),
                client,
                &events::LoginFailed {
                    user_id: user.id.clone(),
                    email: user.email.clone(),
                    reason: events::login_failed::Reason::InvalidMfaCode as i32,
                    consecutive_failures: (challenge.attempts + 1) as i32,
                },
            )
            .await?;
            self.commit(tx).await?;
            return Err(Error::new(
                Code::Unauthenticated,
                "INVALID_MFA_CODE",
                "the code is not valid",
            )
            .with_domain("identity"));
        }
        if !self.store().use_one_time(&mut tx, &hash, now).await? {
            return Err(invalid_token("mfa_token"));
        }
        self.commit(tx).await?;
        let organization: Option<String> =
            serde_json::from_str::<serde_json::Value>(&challenge.payload)
                .ok()
                .and_then(|v| v["organization"].as_str().map(str::to_string));
        self.sign_in(&user, Organization::Asked(organization), true, client)
            .await
    }

    /// Checks a TOTP code (recording its step against replay) or uses a
    /// recovery code, in `tx`.
    async fn check_factor(
        &self,
        tx: &mut Write,
        user: &UserRow,
        factor: &Factor,
        now_us: i64,
    ) -> Result<bool> {
        match factor {
            Factor::Totp(code) => {
                let Some(secret) = user
                    .totp_secret
                    .as_deref()
                    .and_then(|stored| self.open_totp(&user.id, stored))
                else {
                    return Ok(false);
                };
                match totp::verify(&secret, code, now_us / 1_000_000, user.totp_last_step) {
                    Some(step) => {
                        self.store()
                            .update_user(tx, &user.id, "totp_last_step = $2", |q| q.bind(step))
                            .await?;
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            Factor::RecoveryCode(code) => {
                let Some(normalized) = crate::secrets::normalize_recovery_code(code) else {
                    return Ok(false);
                };
                let used = self
                    .store()
                    .use_recovery_code(tx, &user.id, &hash_token(&normalized))
                    .await?;
                if used {
                    self.emit(
                        tx,
                        "identity.mfa.recovery_code_used",
                        ("user", &user.id),
                        user_actor(user),
                        &ClientInfo::default(),
                        &events::MfaRecoveryCodeUsed {
                            user_id: user.id.clone(),
                            remaining_count: (user.recovery_codes_remaining - 1).max(0) as i32,
                        },
                    )
                    .await?;
                }
                Ok(used)
            }
        }
    }

    /// Opens a session for a user whose credentials were checked.
    async fn sign_in(
        &self,
        user: &UserRow,
        organization: Organization,
        mfa: bool,
        client: &ClientInfo,
    ) -> Result<Tokens> {
        // An organization enters a token only for its members: one named in
        // the request must be the user's (NOT_FOUND, as SwitchOrganization
        // answers, otherwise); a remembered one is dropped when the user has
        // left it since. The one sign-up just made them a member of is theirs.
        let requested = match organization {
            Organization::Joined(organization) => organization,
            Organization::Asked(Some(organization)) => {
                if !self.member_of(&user.id, &organization).await? {
                    return Err(Error::not_found("organization").with_domain("identity"));
                }
                Some(organization)
            }
            Organization::Asked(None) => match user.last_organization_id.clone() {
                Some(last) if self.member_of(&user.id, &last).await? => Some(last),
                _ => None,
            },
        };
        let access = self.resolve_access(requested.as_deref(), mfa).await?;
        let mut tx = self.begin().await?;
        let session = self
            .open_session(&mut tx, user, requested, access, mfa, client)
            .await?;
        let tokens = self.issue(&mut tx, user, &session, true).await?;
        self.store()
            .record_login(&mut tx, &user.id, now_micros())
            .await?;
        self.emit_login(&mut tx, user, &session, client).await?;
        self.commit(tx).await?;
        Ok(tokens)
    }

    async fn emit_login(
        &self,
        tx: &mut Write,
        user: &UserRow,
        session: &SessionRow,
        client: &ClientInfo,
    ) -> Result<()> {
        self.emit(
            tx,
            "identity.login.succeeded",
            ("user", &user.id),
            user_actor(user),
            client,
            &events::LoginSucceeded {
                user_id: user.id.clone(),
                session_id: session.id.clone(),
                organization_id: session.active_organization_id.clone().unwrap_or_default(),
                mfa_enrollment_only: session.mfa_pending,
                ..Default::default()
            },
        )
        .await
    }

    /// Whether the user is a member of the organization, by rbac. A
    /// deployment without rbac (no memberships known) admits none.
    async fn member_of(&self, user_id: &str, organization: &str) -> Result<bool> {
        Ok(self
            .inner
            .directory
            .memberships(user_id)
            .await?
            .iter()
            .any(|m| m.organization_id == organization))
    }

    /// Which organization a new session may act for, and whether it may only
    /// enroll MFA.
    async fn resolve_access(
        &self,
        requested: Option<&str>,
        mfa: bool,
    ) -> Result<(Option<String>, bool)> {
        let Some(organization) = requested else {
            return Ok((None, false));
        };
        Ok(
            match self.inner.directory.sign_in_policy(organization).await? {
                Some(policy) if policy.active && policy.require_mfa && !mfa => (None, true),
                Some(policy) if policy.active => (Some(organization.to_string()), false),
                _ => (None, false),
            },
        )
    }

    /// Creates a session. The requested organization becomes active only if
    /// it allows this sign-in: an organization that requires MFA gets a
    /// session that may only enroll MFA until the user has it.
    ///
    /// `access` comes from [`resolve_access`](Self::resolve_access), asked
    /// before the transaction so no network call holds a write lock.
    async fn open_session(
        &self,
        tx: &mut Write,
        user: &UserRow,
        requested: Option<String>,
        access: (Option<String>, bool),
        mfa: bool,
        client: &ClientInfo,
    ) -> Result<SessionRow> {
        let (active, mfa_pending) = access;
        let now = now_micros();
        let session = SessionRow {
            id: new_id().to_string(),
            user_id: user.id.clone(),
            active_organization_id: active,
            requested_organization_id: requested,
            mfa,
            mfa_pending,
            user_agent: client.user_agent.chars().take(512).collect(),
            client_address: client.address.clone(),
            created_at_us: now,
            last_seen_at_us: now,
            expires_at_us: now + micros(self.options().session_lifetime()),
            revoked_at_us: None,
        };
        self.store().insert_session(tx, &session).await?;
        Ok(session)
    }

    /// Signs an access token for a session and, when asked, a new refresh
    /// token.
    async fn issue(
        &self,
        tx: &mut Write,
        user: &UserRow,
        session: &SessionRow,
        with_refresh: bool,
    ) -> Result<Tokens> {
        let now = now_micros();
        let ttl = self.options().access_token_ttl();
        let mut amr = vec!["pwd".to_string()];
        if session.mfa {
            amr.push("mfa".to_string());
        }
        let claims = Claims {
            iss: self.inner.auth.issuer.clone(),
            aud: self.inner.auth.audience.clone(),
            sub: user.id.clone(),
            sid: Some(session.id.clone()),
            org: session.active_organization_id.clone(),
            iat: now / 1_000_000,
            exp: (now + micros(ttl)) / 1_000_000,
            nbf: None,
            jti: new_id().to_string(),
            amr,
            kind: PrincipalKind::User,
            perms: None,
            team: None,
            mfa_pending: session.mfa_pending,
            name: Some(user.display_name.clone()),
        };
        let access_token = self.inner.keys.signing_key().sign(&claims);
        let refresh_expires =
            (now + micros(self.options().refresh_token_ttl())).min(session.expires_at_us);
        let refresh_token = if with_refresh {
            let token = new_token();
            self.store()
                .insert_refresh(tx, &hash_token(&token), &session.id, now, refresh_expires)
                .await?;
            Some(token)
        } else {
            None
        };
        Ok(Tokens {
            access_token,
            access_expires_at_us: claims.exp * 1_000_000,
            refresh_token,
            refresh_expires_at_us: refresh_expires,
            user_id: user.id.clone(),
            session_id: session.id.clone(),
            organization_id: session.active_organization_id.clone(),
            mfa: session.mfa,
            mfa_pending: session.mfa_pending,
        })
    }

    /// Exchanges a refresh token for new tokens, rotating it. A token used
    /// twice means it leaked: the whole session ends.
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<Tokens> {
        let now = now_micros();
        let hash = hash_token(refresh_token);
        let mut tx = self.begin().await?;
        let row = self
            .store()
            .refresh(&mut tx, &hash)
            .await?
            .ok_or_else(invalid_session)?;
        let session = self
            .store()
            .session(&mut tx, &row.session_id)
            .await?
            .ok_or_else(invalid_session)?;
        let reused = row.rotated_at_us.is_some()
            || !self.store().rotate_refresh(&mut tx, &hash, now).await?;
        if reused {
            let actor = self.actor_for(&mut tx, &session.user_id).await?;
            let reason = events::session_revoked::Reason::RefreshTokenReused;
            if self
                .end_session(
                    &mut tx,
                    (&session.user_id, &session.id),
                    actor,
                    reason,
                    client,
                )
                .await?
            {
                tracing::warn!(session_id = %session.id, "refresh token reused; session revoked");
            }
            self.commit(tx).await?;
            return Err(invalid_session());
        }
        if row.expires_at_us <= now
            || session.revoked_at_us.is_some()
            || session.expires_at_us <= now
        {
            return Err(invalid_session());
        }
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, &session.user_id)
            .await?
            .filter(UserRow::is_active)
            .ok_or_else(invalid_session)?;
        self.store()
            .touch_session(
                &mut tx,
                &session.id,
                now,
                &client.address,
                &client.user_agent,
            )
            .await?;
        // A member who left (or was removed from) the session's organization
        // gets tokens for none: the organization stays out of every token.
        let mut session = session;
        if let Some(organization) = session.active_organization_id.clone()
            && !self.member_of(&user.id, &organization).await?
        {
            session.active_organization_id = None;
        }
        let tokens = self.issue(&mut tx, &user, &session, true).await?;
        self.commit(tx).await?;
        Ok(tokens)
    }

    /// Ends one session and records why, in `tx`. Returns false when it had
    /// already ended (nothing is written then).
    async fn end_session(
        &self,
        tx: &mut Write,
        (user_id, session_id): (&str, &str),
        actor: events::Actor,
        reason: events::session_revoked::Reason,
        client: &ClientInfo,
    ) -> Result<bool> {
        if !self
            .store()
            .revoke_session(tx, session_id, reason.as_str_name())
            .await?
        {
            return Ok(false);
        }
        self.emit(
            tx,
            "identity.session.revoked",
            ("user", user_id),
            actor,
            client,
            &events::SessionRevoked {
                user_id: user_id.to_string(),
                session_id: session_id.to_string(),
                reason: reason as i32,
            },
        )
        .await?;
        Ok(true)
    }

    /// The actor for a change made by (or on behalf of) `user_id`.
    async fn actor_for(&self, tx: &mut Write, user_id: &str) -> Result<events::Actor> {
        Ok(
            match self.store().user_by_id_for_update(tx, user_id).await? {
                Some(user) => user_actor(&user),
                None => events::Actor {
                    kind: events::actor::Kind::System as i32,
                    ..Default::default()
                },
            },
        )
    }

    /// Ends a session: the one a refresh token belongs to, or the caller's.
    pub async fn logout(
        &self,
        principal: Option<&Principal>,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let session_id = if !refresh_token.is_empty() {
            self.store()
                .refresh(&mut tx, &hash_token(refresh_token))
                .await?
                .map(|row| row.session_id)
        } else {
            principal.and_then(|p| p.session_id.clone())
        };
        let Some(session_id) = session_id else {
            return Err(if principal.is_some() || !refresh_token.is_empty() {
                invalid_session()
            } else {
                Error::unauthenticated("missing credentials").with_domain("identity")
            });
        };
        let session = self
            .store()
            .session(&mut tx, &session_id)
            .await?
            .ok_or_else(invalid_session)?;
        let actor = self.actor_for(&mut tx, &session.user_id).await?;
        let reason = events::session_revoked::Reason::Logout;
        self.end_session(
            &mut tx,
            (&session.user_id, &session.id),
            actor,
            reason,
            client,
        )
        .await?;
        self.commit(tx).await
    }

    /// Ends every session of the caller, optionally keeping the current one.
    pub async fn logout_everywhere(
        &self,
        principal: &Principal,
        keep_current: bool,
        client: &ClientInfo,
    ) -> Result<usize> {
        let user = self.user_principal(principal).await?;
        let keep = if keep_current {
            principal.session_id.clone()
        } else {
            None
        };
        let mut tx = self.begin().await?;
        let revoked = self
            .revoke_all(
                &mut tx,
                &user,
                keep.as_deref(),
                events::session_revoked::Reason::LogoutEverywhere,
                client,
            )
            .await?;
        self.commit(tx).await?;
        Ok(revoked)
    }

    pub(crate) async fn revoke_all(
        &self,
        tx: &mut Write,
        user: &UserRow,
        keep: Option<&str>,
        reason: events::session_revoked::Reason,
        client: &ClientInfo,
    ) -> Result<usize> {
        let mut revoked = 0;
        for session_id in self.store().live_session_ids(tx, &user.id).await? {
            if Some(session_id.as_str()) != keep
                && self
                    .end_session(
                        tx,
                        (&user.id, &session_id),
                        user_actor(user),
                        reason,
                        client,
                    )
                    .await?
            {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// A TOTP secret (base32) as stored: sealed for its user.
    fn seal_totp(&self, user_id: &str, base32: &str) -> String {
        self.inner
            .sealer
            .seal(base32.as_bytes(), &totp_context(user_id))
    }

    /// A stored TOTP secret, opened; `None` when it does not open (an
    /// unknown key, tampering), which fails the factor closed.
    fn open_totp(&self, user_id: &str, stored: &str) -> Option<totp::TotpSecret> {
        match self.inner.sealer.open(stored, &totp_context(user_id)) {
            Ok(plain) => totp::TotpSecret::from_base32(std::str::from_utf8(&plain).ok()?),
            Err(error) => {
                tracing::error!(user_id, %error, "a stored TOTP secret does not open");
                None
            }
        }
    }

    /// Seals every TOTP secret not yet sealed with the current key: those
    /// stored in clear before sealing existed, and those sealed with an
    /// older key (rotation). Runs at start; a secret that does not open is
    /// left as it is (and logged).
    pub async fn reseal_totp_secrets(&self) -> Result<usize> {
        let sealer = &self.inner.sealer;
        let mut resealed = 0;
        for (user_id, secret, pending) in self.store().totp_secrets().await? {
            let context = totp_context(&user_id);
            let again = |value: &Option<String>| -> Option<Option<String>> {
                match value {
                    None => Some(None),
                    Some(v) if sealer.is_current(v) => Some(Some(v.clone())),
                    Some(v) if tenantry_kit::seal::Sealer::is_sealed(v) => {
                        let plain = sealer.open(v, &context).ok()?;
                        Some(Some(sealer.seal(&plain, &context)))
                    }
                    Some(clear) => Some(Some(sealer.seal(clear.as_bytes(), &context))),
                }
            };
            let (Some(new_secret), Some(new_pending)) = (again(&secret), again(&pending)) else {
                tracing::error!(
                    user_id,
                    "a stored TOTP secret does not open with any configured key"
                );
                continue;
            };
            if new_secret == secret && new_pending == pending {
                continue;
            }
            self.store()
                .reseal_totp_secrets(
                    &user_id,
                    (secret.as_deref(), pending.as_deref()),
                    (new_secret.as_deref(), new_pending.as_deref()),
                )
                .await?;
            resealed += 1;
        }
        Ok(resealed)
    }

    /// The signed-in user behind a principal. Access tokens outlive a
    /// revoked session by at most their TTL; calls that manage the account
    /// check the session is still live.
    pub async fn user_principal(&self, principal: &Principal) -> Result<UserRow> {
        if principal.kind != PrincipalKind::User {
            return Err(Error::new(
                Code::PermissionDenied,
                "USER_REQUIRED",
                "only a signed-in user may call this",
            )
            .with_domain("identity"));
        }
        let user = self
            .store()
            .user_by_id(&principal.id)
            .await?
            .filter(UserRow::is_active)
            .ok_or_else(invalid_session)?;
        if let Some(session_id) = &principal.session_id
            && !self
                .store()
                .session_is_live(session_id, now_micros())
                .await?
        {
            return Err(invalid_session());
        }
        Ok(user)
    }

    /// The caller and their memberships; a user with no organization at all
    /// gets a first one, as at a first sign-in.
    pub async fn me(&self, principal: &Principal, client: &ClientInfo) -> Result<MeView> {
        let user = self.user_principal(principal).await?;
        let mut memberships = self.inner.directory.memberships(&user.id).await?;
        let mut active_organization = principal.organization.clone();
        let mut organization_created = false;
        if memberships.is_empty() && !principal.mfa_pending {
            let name = format!("{}'s organization", user.display_name);
            if let Some(organization) = self
                .inner
                .directory
                .create_first_organization(&user.id, &self.short_user_token(&user), &name)
                .await?
            {
                organization_created = true;
                memberships = self.inner.directory.memberships(&user.id).await?;
                self.enter_first_organization(&user, principal, &organization, client)
                    .await?;
                active_organization = Some(organization);
            }
        }
        Ok(MeView {
            user,
            memberships,
            active_organization,
            organization_created,
        })
    }

    /// Makes the organization `Me` just created for a user who had none the
    /// one their session works in (the next refresh gives tokens in it) and
    /// the one their next sign-in starts in.
    async fn enter_first_organization(
        &self,
        user: &UserRow,
        principal: &Principal,
        organization: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let org = organization.to_string();
        self.store()
            .update_user(&mut tx, &user.id, "last_organization_id = $2", |q| {
                q.bind(org)
            })
            .await?;
        let session = match &principal.session_id {
            Some(id) => self.store().session(&mut tx, id).await?,
            None => None,
        };
        if let Some(session) = session.filter(|s| s.revoked_at_us.is_none()) {
            self.store()
                .set_session_organization(
                    &mut tx,
                    &session.id,
                    Some(organization),
                    session.mfa,
                    false,
                )
                .await?;
            self.emit(
                &mut tx,
                "identity.session.organization_switched",
                ("user", &user.id),
                user_actor(user),
                client,
                &events::SessionOrganizationSwitched {
                    user_id: user.id.clone(),
                    session_id: session.id.clone(),
                    old_organization_id: session.active_organization_id.unwrap_or_default(),
                    new_organization_id: organization.to_string(),
                },
            )
            .await?;
        }
        self.commit(tx).await
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<SessionRow>> {
        let user = self.user_principal(principal).await?;
        self.store().live_sessions(&user.id, now_micros()).await
    }

    /// Ends one of the caller's sessions. Another user's session is NOT_FOUND.
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        session_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let user = self.user_principal(principal).await?;
        let mut tx = self.begin().await?;
        let session = self
            .store()
            .session(&mut tx, session_id)
            .await?
            .filter(|s| s.user_id == user.id && s.revoked_at_us.is_none())
            .ok_or_else(|| Error::not_found("session").with_domain("identity"))?;
        let reason = events::session_revoked::Reason::RevokedByUser;
        self.end_session(
            &mut tx,
            (&user.id, &session.id),
            user_actor(&user),
            reason,
            client,
        )
        .await?;
        self.commit(tx).await
    }

    // Passwords.

    /// Re-authenticates the caller with their current password (throttled
    /// like sign-in).
    async fn reauthenticate(&self, user: &UserRow, password: &str) -> Result<()> {
        let key = format!("account:{}", user.email);
        self.check_throttle(&[&key]).await?;
        if self
            .inner
            .hasher
            .verify(password, &user.password_hash)
            .await?
            .matches
        {
            Ok(())
        } else {
            self.record_failure(&key, self.options().throttle.free_attempts_per_account)
                .await?;
            Err(Error::new(
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
                "the current password is wrong",
            )
            .with_domain("identity")
            .with_violation("current_password", "is wrong"))
        }
    }

    /// Changes the caller's password and ends every other session; returns
    /// how many ended.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<usize> {
        let user = self.user_principal(principal).await?;
        self.reauthenticate(&user, current).await?;
        let new = self.new_password_policy(&user, new)?;
        let hash = self.inner.hasher.hash(&new).await?;
        let mut tx = self.begin().await?;
        let ended = self
            .set_password(
                &mut tx,
                &user,
                hash,
                principal.session_id.as_deref(),
                client,
            )
            .await?;
        self.commit(tx).await?;
        Ok(ended)
    }

    /// Stores a new password hash and ends the user's sessions (but
    /// `keep_session`); returns how many ended.
    async fn set_password(
        &self,
        tx: &mut Write,
        user: &UserRow,
        hash: String,
        keep_session: Option<&str>,
        client: &ClientInfo,
    ) -> Result<usize> {
        let now = now_micros();
        self.store()
            .update_user(
                tx,
                &user.id,
                "password_hash = $2, password_changed_at_us = $3",
                |q| q.bind(hash).bind(now),
            )
            .await?;
        let revoked = self
            .revoke_all(
                tx,
                user,
                keep_session,
                events::session_revoked::Reason::PasswordChanged,
                client,
            )
            .await?;
        self.emit(
            tx,
            "identity.user.password_changed",
            ("user", &user.id),
            user_actor(user),
            client,
            &events::UserPasswordChanged {
                user_id: user.id.clone(),
                revoked_session_count: revoked as i32,
            },
        )
        .await?;
        Ok(revoked)
    }

    /// Mails a reset link if the address has an account; answers the same
    /// either way.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<()> {
        let email = normalize_email("email", email)?;
        let Some(user) = self
            .store()
            .user_by_email(&email)
            .await?
            .filter(UserRow::is_active)
        else {
            return Ok(());
        };
        let now = now_micros();
        let token = new_token();
        let expires = now + micros(self.options().reset_ttl());
        let mut tx = self.begin().await?;
        self.store()
            .expire_one_time(&mut tx, &user.id, RESET_PASSWORD, now)
            .await?;
        self.store()
            .insert_one_time(
                &mut tx,
                &NewOneTime {
                    token_hash: &hash_token(&token),
                    user_id: &user.id,
                    purpose: RESET_PASSWORD,
                    payload: "",
                    now_us: now,
                    expires_at_us: expires,
                },
            )
            .await?;
        self.emit(
            &mut tx,
            "identity.user.password_reset_requested",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::UserPasswordResetRequested {
                user_id: user.id.clone(),
                expire_time: Some(timestamp(expires)),
            },
        )
        .await?;
        self.commit(tx).await?;
        let link = format!(
            "{}/reset-password?token={token}",
            self.options().mailer.link_base_url
        );
        self.send(Mail {
            to: user.email.clone(),
            kind: RESET_PASSWORD,
            subject: "Reset your password".into(),
            body: format!(
                "Hello {},\n\nset a new password with this link:\n{link}\n\ntoken: {token}\n\nIt expires in {} minutes and works once. If you did not ask for it, ignore this message.",
                user.display_name,
                self.options().reset_ttl_minutes
            ),
        })
        .await;
        Ok(())
    }

    /// Sets a new password from a reset link and ends every session.
    pub async fn reset_password(&self, token: &str, new: &str, client: &ClientInfo) -> Result<()> {
        let now = now_micros();
        let hash = hash_token(token);
        // Check the token before the (slow) hash, then again in the write.
        let mut tx = self.begin().await?;
        let (_, user) = self
            .pending_token(&mut tx, &hash, RESET_PASSWORD, now)
            .await?;
        drop(tx);
        let new = self.new_password_policy(&user, new)?;
        let password_hash = self.inner.hasher.hash(&new).await?;
        let mut tx = self.begin().await?;
        if !self.store().use_one_time(&mut tx, &hash, now).await? {
            return Err(invalid_token("token"));
        }
        // The link proves the mailbox, like a verification link would.
        if user.email_verified_at_us.is_none() {
            self.store()
                .update_user(&mut tx, &user.id, "email_verified_at_us = $2", |q| {
                    q.bind(now)
                })
                .await?;
        }
        let revoked = self
            .set_password(&mut tx, &user, password_hash, None, client)
            .await?;
        self.emit(
            &mut tx,
            "identity.user.password_reset",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::UserPasswordReset {
                user_id: user.id.clone(),
                revoked_session_count: revoked as i32,
            },
        )
        .await?;
        self.commit(tx).await
    }

    /// Starts an email change (re-authentication required): the new address
    /// becomes the account's once its verification link is used.
    pub async fn change_email(
        &self,
        principal: &Principal,
        password: &str,
        new_email: &str,
        client: &ClientInfo,
    ) -> Result<UserRow> {
        let user = self.user_principal(principal).await?;
        let new_email = normalize_email("new_email", new_email)?;
        self.reauthenticate(&user, password).await?;
        if new_email == user.email {
            return Err(
                Error::invalid_field("new_email", "is already the account's address")
                    .with_domain("identity"),
            );
        }
        if self.store().user_by_email(&new_email).await?.is_some() {
            return Err(Error::new(
                Code::AlreadyExists,
                "EMAIL_TAKEN",
                "an account with this email exists",
            )
            .with_domain("identity"));
        }
        let mut tx = self.begin().await?;
        let pending = new_email.clone();
        self.store()
            .update_user(&mut tx, &user.id, "pending_email = $2", |q| q.bind(pending))
            .await?;
        let mail = self
            .start_verification(&mut tx, &user, &new_email, client)
            .await?;
        let updated = self
            .store()
            .user_by_id_for_update(&mut tx, &user.id)
            .await?
            .ok_or_else(invalid_session)?;
        self.commit(tx).await?;
        self.send(mail).await;
        Ok(updated)
    }

    /// Issues an access token for another organization the user belongs to
    /// (the session keeps its refresh token, which now refreshes into the
    /// new organization).
    pub async fn switch_organization(
        &self,
        principal: &Principal,
        organization: &str,
        client: &ClientInfo,
    ) -> Result<Tokens> {
        let user = self.user_principal(principal).await?;
        let session_id = principal.session_id.clone().ok_or_else(invalid_session)?;
        let member = self
            .inner
            .directory
            .memberships(&user.id)
            .await?
            .iter()
            .any(|m| m.organization_id == organization);
        if !member {
            return Err(Error::not_found("organization").with_domain("identity"));
        }
        let mut tx = self.begin().await?;
        let session = self
            .store()
            .session(&mut tx, &session_id)
            .await?
            .ok_or_else(invalid_session)?;
        drop(tx);
        match self.inner.directory.sign_in_policy(organization).await? {
            Some(policy) if !policy.active => {
                return Err(Error::new(
                    Code::FailedPrecondition,
                    "ORGANIZATION_DEACTIVATED",
                    "the organization is deactivated",
                )
                .with_domain("identity"));
            }
            Some(policy) if policy.require_mfa && !session.mfa => {
                return Err(Error::new(
                    Code::FailedPrecondition,
                    "MFA_REQUIRED",
                    "the organization requires MFA; sign in with MFA first",
                )
                .with_domain("identity"));
            }
            _ => {}
        }
        let mut tx = self.begin().await?;
        self.store()
            .set_session_organization(&mut tx, &session.id, Some(organization), session.mfa, false)
            .await?;
        let org = organization.to_string();
        self.store()
            .update_user(&mut tx, &user.id, "last_organization_id = $2", |q| {
                q.bind(org)
            })
            .await?;
        self.emit(
            &mut tx,
            "identity.session.organization_switched",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::SessionOrganizationSwitched {
                user_id: user.id.clone(),
                session_id: session.id.clone(),
                old_organization_id: session.active_organization_id.clone().unwrap_or_default(),
                new_organization_id: organization.to_string(),
            },
        )
        .await?;
        let session = self
            .store()
            .session(&mut tx, &session.id)
            .await?
            .ok_or_else(invalid_session)?;
        let tokens = self.issue(&mut tx, &user, &session, false).await?;
        self.commit(tx).await?;
        Ok(tokens)
    }

    // MFA.

    /// Starts TOTP enrollment: a new secret, valid for 15 minutes until
    /// confirmed with a code.
    pub async fn enroll_totp(
        &self,
        principal: &Principal,
        client: &ClientInfo,
    ) -> Result<Enrollment> {
        let user = self.user_principal(principal).await?;
        if user.mfa_enabled() {
            return Err(Error::new(
                Code::FailedPrecondition,
                "MFA_ALREADY_ENABLED",
                "TOTP is already enabled",
            )
            .with_domain("identity"));
        }
        let secret = totp::TotpSecret::generate();
        let encoded = secret.to_base32();
        let expires = now_micros() + micros(Duration::from_secs(900));
        let mut tx = self.begin().await?;
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                "pending_totp_secret = $2, pending_totp_expires_at_us = $3",
                |q| q.bind(self.seal_totp(&user.id, &encoded)).bind(expires),
            )
            .await?;
        self.emit(
            &mut tx,
            "identity.mfa.enrollment_started",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::MfaEnrollmentStarted {
                user_id: user.id.clone(),
            },
        )
        .await?;
        self.commit(tx).await?;
        Ok(Enrollment {
            otpauth_uri: totp::otpauth_uri(&secret, &self.options().totp_issuer, &user.email),
            secret: encoded,
            expires_at_us: expires,
        })
    }

    /// Confirms TOTP with a first code: MFA is on, ten recovery codes are
    /// returned once, and a session that was waiting for MFA gets full tokens
    /// for the organization it asked for.
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(UserRow, Vec<String>, Option<Tokens>)> {
        let user = self.user_principal(principal).await?;
        let now = now_micros();
        let secret = user
            .pending_totp_secret
            .as_deref()
            .filter(|_| user.pending_totp_expires_at_us.is_some_and(|e| e > now))
            .and_then(|stored| self.open_totp(&user.id, stored))
            .ok_or_else(|| {
                Error::new(
                    Code::FailedPrecondition,
                    "NO_PENDING_ENROLLMENT",
                    "start TOTP enrollment first",
                )
                .with_domain("identity")
            })?;
        let step = totp::verify(&secret, code, now / 1_000_000, None).ok_or_else(|| {
            Error::new(
                Code::InvalidArgument,
                "INVALID_MFA_CODE",
                "the code is not valid",
            )
            .with_domain("identity")
            .with_violation("code", "is not the current code")
        })?;
        let codes = crate::secrets::new_recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| crate::secrets::normalize_recovery_code(c))
            .map(|c| hash_token(&c))
            .collect();
        let mut tx = self.begin().await?;
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                "totp_secret = pending_totp_secret, totp_enabled_at_us = $2, totp_last_step = $3, \
                 pending_totp_secret = NULL, pending_totp_expires_at_us = NULL",
                |q| q.bind(now).bind(step),
            )
            .await?;
        self.store()
            .replace_recovery_codes(&mut tx, &user.id, &hashes)
            .await?;
        self.emit(
            &mut tx,
            "identity.mfa.enrolled",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::MfaEnrolled {
                user_id: user.id.clone(),
                recovery_code_count: codes.len() as i32,
            },
        )
        .await?;
        // The session just proved a second factor.
        let mut tokens = None;
        if let Some(session_id) = &principal.session_id
            && let Some(session) = self.store().session(&mut tx, session_id).await?
        {
            let organization = session
                .requested_organization_id
                .clone()
                .filter(|_| session.mfa_pending);
            let active = match organization {
                Some(org) => Some(org),
                None => session.active_organization_id.clone(),
            };
            self.store()
                .set_session_organization(&mut tx, &session.id, active.as_deref(), true, false)
                .await?;
            let session = self
                .store()
                .session(&mut tx, session_id)
                .await?
                .ok_or_else(invalid_session)?;
            tokens = Some(self.issue(&mut tx, &user, &session, true).await?);
        }
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, &user.id)
            .await?
            .ok_or_else(invalid_session)?;
        self.commit(tx).await?;
        Ok((user, codes, tokens))
    }

    /// Turns TOTP off (re-authentication required).
    pub async fn disable_totp(
        &self,
        principal: &Principal,
        password: &str,
        client: &ClientInfo,
    ) -> Result<UserRow> {
        let user = self.user_principal(principal).await?;
        self.reauthenticate(&user, password).await?;
        if !user.mfa_enabled() {
            return Err(Error::new(
                Code::FailedPrecondition,
                "MFA_NOT_ENABLED",
                "TOTP is not enabled",
            )
            .with_domain("identity"));
        }
        let mut tx = self.begin().await?;
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                "totp_secret = NULL, totp_enabled_at_us = NULL, totp_last_step = NULL",
                |q| q,
            )
            .await?;
        self.store()
            .replace_recovery_codes(&mut tx, &user.id, &[])
            .await?;
        self.emit(
            &mut tx,
            "identity.mfa.disabled",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::MfaDisabled {
                user_id: user.id.clone(),
                by_admin: false,
            },
        )
        .await?;
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, &user.id)
            .await?
            .ok_or_else(invalid_session)?;
        self.commit(tx).await?;
        Ok(user)
    }

    /// Replaces the recovery codes (re-authentication required).
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>> {
        let user = self.user_principal(principal).await?;
        self.reauthenticate(&user, password).await?;
        if !user.mfa_enabled() {
            return Err(Error::new(
                Code::FailedPrecondition,
                "MFA_NOT_ENABLED",
                "TOTP is not enabled",
            )
            .with_domain("identity"));
        }
        let codes = crate::secrets::new_recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| crate::secrets::normalize_recovery_code(c))
            .map(|c| hash_token(&c))
            .collect();
        let mut tx = self.begin().await?;
        self.store()
            .replace_recovery_codes(&mut tx, &user.id, &hashes)
            .await?;
        self.emit(
            &mut tx,
            "identity.mfa.recovery_codes_regenerated",
            ("user", &user.id),
            user_actor(&user),
            client,
            &events::MfaRecoveryCodesRegenerated {
                user_id: user.id.clone(),
                recovery_code_count: codes.len() as i32,
            },
        )
        .await?;
        self.commit(tx).await?;
        Ok(codes)
    }

    // Throttling.

    /// Refuses the attempt while any key is blocked, telling when to retry.
    async fn check_throttle(&self, keys: &[&str]) -> Result<()> {
        let now = now_micros();
        let mut wait_us = 0;
        for key in keys {
            if let Some((_, blocked_until)) = self.store().throttle(key).await? {
                wait_us = wait_us.max(blocked_until - now);
            }
        }
        if wait_us > 0 {
            let seconds = (wait_us as u64).div_ceil(1_000_000);
            return Err(Error::new(
                Code::ResourceExhausted,
                "LOGIN_THROTTLED",
                "too many failed attempts; retry later",
            )
            .with_domain("identity")
            .with_retry_after(Duration::from_secs(seconds)));
        }
        Ok(())
    }

    /// Counts a failure; past the free attempts, each further failure
    /// doubles the wait (base, 2×base, 4×base, … up to the maximum).
    async fn record_failure(&self, key: &str, free_attempts: u32) -> Result<i64> {
        let throttle = &self.options().throttle;
        let failures = self
            .store()
            .throttle(key)
            .await?
            .map(|(f, _)| f)
            .unwrap_or(0)
            + 1;
        // The free attempts are spent by the failure that reaches their
        // number; from then on every attempt waits.
        let over = failures - i64::from(free_attempts) + 1;
        let blocked_until = if over > 0 {
            let exponent = (over - 1).min(20) as u32;
            let delay_ms = (throttle.backoff_base_ms.saturating_mul(1u64 << exponent))
                .min(throttle.backoff_max_secs * 1000);
            now_micros() + (delay_ms as i64) * 1000
        } else {
            0
        };
        self.store()
            .set_throttle(key, failures, blocked_until)
            .await?;
        Ok(failures)
    }
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
