//! Sign-in with a password: one answer for every failure, throttling per
//! account and address, and the organization a session starts in (members
//! only).

use super::*;

impl Accounts {
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
                    self.record_failed_login(&user, &email, reason, failures, client)
                        .await?;
                }
                return Err(Refusal::InvalidCredentials.into());
            }
        };
        self.store().clear_throttle(&account_key).await?;

        if verified.needs_rehash {
            // Parameters changed since this hash was made: upgrade it now,
            // while we hold the plain password.
            let hash = self.inner.hasher.hash(password).await?;
            let mut tx = self.begin().await?;
            self.store()
                .update_user(&mut tx, &user.id, user_update!("password_hash = $3"), |q| {
                    q.bind(hash)
                })
                .await?;
            self.commit(tx).await?;
        }

        if user.mfa_enabled() {
            let now = now_micros();
            let expires = now + micros(Duration::from_secs(300));
            let payload = serde_json::json!({ "organization": organization }).to_string();
            let mut tx = self.begin().await?;
            let token = self
                .issue_one_time(&mut tx, (&user.id, MFA_LOGIN), &payload, (now, expires))
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

    /// Records a failed sign-in of `user` (tried with `email`), in a write of
    /// its own.
    pub(super) async fn record_failed_login(
        &self,
        user: &UserRow,
        email: &str,
        reason: events::login_failed::Reason,
        consecutive_failures: i64,
        client: &ClientInfo,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.emit_user_event(
            &mut tx,
            user,
            client,
            &events::LoginFailed {
                user_id: user.id.clone(),
                email: email.to_string(),
                reason: reason as i32,
                consecutive_failures: consecutive_failures as i32,
            },
        )
        .await?;
        self.commit(tx).await
    }

    /// Opens a session for a user whose credentials were checked.
    pub(super) async fn sign_in(
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

    pub(super) async fn emit_login(
        &self,
        tx: &mut Write,
        user: &UserRow,
        session: &SessionRow,
        client: &ClientInfo,
    ) -> Result<()> {
        self.emit_user_event(
            tx,
            user,
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
    pub(crate) async fn member_of(&self, user_id: &str, organization: &str) -> Result<bool> {
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
    pub(super) async fn resolve_access(
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

    /// Refuses the attempt while any key is blocked, telling when to retry.
    pub(super) async fn check_throttle(&self, keys: &[&str]) -> Result<()> {
        let now = now_micros();
        let mut wait_us = 0;
        for key in keys {
            if let Some((_, blocked_until)) = self.store().throttle(key).await? {
                wait_us = wait_us.max(blocked_until - now);
            }
        }
        if wait_us > 0 {
            let seconds = (wait_us as u64).div_ceil(1_000_000);
            return Err(Refusal::LoginThrottled {
                retry_after: Duration::from_secs(seconds),
            }
            .into());
        }
        Ok(())
    }

    /// Counts a failure; past the free attempts, each further failure
    /// doubles the wait (base, 2×base, 4×base, … up to the maximum).
    pub(super) async fn record_failure(&self, key: &str, free_attempts: u32) -> Result<i64> {
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
