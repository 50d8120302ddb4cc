//! Email addresses: verification mails and links, resending them, and changing
//! the address.

use super::*;

impl Accounts {
    /// Writes a verification token for `email` and returns the mail to send
    /// after the commit.
    pub(super) async fn start_verification(
        &self,
        tx: &mut Write,
        user: &UserRow,
        email: &str,
        client: &ClientInfo,
    ) -> Result<Mail> {
        let now = now_micros();
        let expires = now + micros(self.options().verification_ttl());
        self.store()
            .expire_one_time(tx, &user.id, VERIFY_EMAIL, now)
            .await?;
        let token = self
            .issue_one_time(tx, (&user.id, VERIFY_EMAIL), email, (now, expires))
            .await?;
        self.emit_user_event(
            tx,
            user,
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

    pub(super) async fn send(&self, mail: Mail) {
        if let Err(error) = self.inner.mailer.send(mail).await {
            // The user can ask for the mail again; the account change stands.
            tracing::warn!(error = format!("{error:#}"), "sending mail failed");
        }
    }

    /// The unused, unexpired single-use token of `purpose` with this hash,
    /// and its (active) user. Anything else is the same INVALID_ARGUMENT.
    pub(super) async fn pending_token(
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
            .ok_or(Refusal::TokenInvalid { field: "token" })?;
        let user = self
            .store()
            .user_by_id_for_update(tx, &row.user_id)
            .await?
            .filter(UserRow::is_active)
            .ok_or(Refusal::TokenInvalid { field: "token" })?;
        Ok((row, user))
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
            return Err(Refusal::TokenInvalid { field: "token" }.into());
        }
        let email = row.payload;
        if user.pending_email.as_deref() == Some(email.as_str()) {
            let old = user.email.clone();
            self.store()
                .update_user(
                    &mut tx,
                    &user.id,
                    user_update!("email = $3, pending_email = NULL, email_verified_at_us = $4"),
                    |q| q.bind(email.clone()).bind(now),
                )
                .await
                .map_err(email_taken)?;
            let event = NewEvent::new(
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
                .set_email_verified(&mut tx, &user.id, now)
                .await?;
        } else {
            // The address changed again since this link was sent.
            return Err(Refusal::TokenInvalid { field: "token" }.into());
        }
        self.emit_user_event(
            &mut tx,
            &user,
            client,
            &events::UserEmailVerified {
                user_id: user.id.clone(),
                email,
            },
        )
        .await?;
        let user = self
            .commit_user(tx, &user.id, || {
                Refusal::TokenInvalid { field: "token" }.into()
            })
            .await?;
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
        self.send_verification(&user, &email, client).await
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
        self.send_verification(&user, &target, client).await
    }

    /// Writes a verification token for `email`, commits, and mails it.
    async fn send_verification(
        &self,
        user: &UserRow,
        email: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let mail = self
            .start_verification(&mut tx, user, email, client)
            .await?;
        self.commit(tx).await?;
        self.send(mail).await;
        Ok(())
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
            return Err(Refusal::EmailTaken.into());
        }
        let mut tx = self.begin().await?;
        let pending = new_email.clone();
        self.store()
            .update_user(&mut tx, &user.id, user_update!("pending_email = $3"), |q| {
                q.bind(pending)
            })
            .await?;
        let mail = self
            .start_verification(&mut tx, &user, &new_email, client)
            .await?;
        let updated = self
            .commit_user(tx, &user.id, || Refusal::SessionInvalid.into())
            .await?;
        self.send(mail).await;
        Ok(updated)
    }
}
