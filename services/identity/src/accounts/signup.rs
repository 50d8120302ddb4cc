//! Sign-up: the account, its first organization and default project, and sign-
//! up by invitation. With verification first (the default), the account is only
//! created from the mailed link.

use super::*;

impl Accounts {
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
        let display_name = valid_display_name("display_name", display_name)?;
        let password = self.policy_for(password, &email, display_name)?;
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
    pub(super) async fn sign_up_by_mail(
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
    pub(super) async fn complete_sign_up(
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
                Code::AlreadyExists => Refusal::TokenInvalid { field: "token" }.into(),
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

    pub(super) async fn emit_signed_up(
        &self,
        tx: &mut Write,
        user: &UserRow,
        client: &ClientInfo,
    ) -> Result<()> {
        self.emit_user_event(
            tx,
            user,
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
    pub(super) async fn first_organization(
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
        let display_name = valid_display_name("display_name", display_name)?;
        let password = self.policy_for(password, &email, display_name)?;
        let invitation = self
            .inner
            .directory
            .lookup_invitation(invitation_token)
            .await?
            .ok_or(Refusal::TokenInvalid {
                field: "invitation_token",
            })?;
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
    pub(super) async fn first_session(
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
    pub(super) fn short_user_token(&self, user: &UserRow) -> String {
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
    pub(super) fn new_user(
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
    pub(super) async fn take_back_sign_up(
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
        self.emit_user_event(
            &mut tx,
            user,
            client,
            &events::UserDeleted {
                user_id: user.id.clone(),
                purge_time: None,
            },
        )
        .await?;
        self.commit(tx).await
    }

    pub(super) async fn insert_new_user(
        &self,
        tx: &mut Write,
        user: &UserRow,
        client: &ClientInfo,
    ) -> Result<()> {
        self.insert_user_row(tx, user).await?;
        if user.platform_admin {
            self.emit_user_event(
                tx,
                user,
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

    pub(super) async fn insert_user_row(&self, tx: &mut Write, user: &UserRow) -> Result<()> {
        self.store()
            .insert_user(tx, user)
            .await
            .map_err(email_taken)
    }
}
