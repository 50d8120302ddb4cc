//! Passwords: the policy for new ones, re-authentication, change and reset by mail.

use super::*;

impl Accounts {
    /// The password policy for an existing user's new password: the email,
    /// its local part and the display name are off limits.
    pub(super) fn new_password_policy(&self, user: &UserRow, password: &str) -> Result<String> {
        self.policy_for(password, &user.email, &user.display_name)
            .map_err(|e| e.with_violation("new_password", "does not meet the password policy"))
    }

    /// The password policy for the account with `email` and `display_name`:
    /// the email, its local part and the name are off limits.
    pub(super) fn policy_for(
        &self,
        password: &str,
        email: &str,
        display_name: &str,
    ) -> Result<String> {
        let local_part = email.split('@').next().unwrap_or_default();
        check_policy(
            password,
            &self.options().password,
            &[email, local_part, display_name],
        )
    }

    /// Re-authenticates the caller with their current password (throttled
    /// like sign-in).
    pub(super) async fn reauthenticate(&self, user: &UserRow, password: &str) -> Result<()> {
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
            Err(Refusal::WrongCurrentPassword.into())
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
    pub(super) async fn set_password(
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
                user_update!("password_hash = $3, password_changed_at_us = $4"),
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
        self.emit_user_event(
            tx,
            user,
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
        let expires = now + micros(self.options().reset_ttl());
        let mut tx = self.begin().await?;
        self.store()
            .expire_one_time(&mut tx, &user.id, RESET_PASSWORD, now)
            .await?;
        let token = self
            .issue_one_time(&mut tx, (&user.id, RESET_PASSWORD), "", (now, expires))
            .await?;
        self.emit_user_event(
            &mut tx,
            &user,
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
            return Err(Refusal::TokenInvalid { field: "token" }.into());
        }
        // The link proves the mailbox, like a verification link would.
        if user.email_verified_at_us.is_none() {
            self.store()
                .set_email_verified(&mut tx, &user.id, now)
                .await?;
        }
        let revoked = self
            .set_password(&mut tx, &user, password_hash, None, client)
            .await?;
        self.emit_user_event(
            &mut tx,
            &user,
            client,
            &events::UserPasswordReset {
                user_id: user.id.clone(),
                revoked_session_count: revoked as i32,
            },
        )
        .await?;
        self.commit(tx).await
    }
}
