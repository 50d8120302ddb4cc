//! The second factor: TOTP enrollment and confirmation, recovery codes, the MFA
//! step of sign-in, and secrets sealed at rest.

use super::*;

impl Accounts {
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
            .ok_or(Refusal::TokenInvalid { field: "mfa_token" })?;
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, &challenge.user_id)
            .await?
            .filter(|user| user.is_active() && user.mfa_enabled())
            .ok_or(Refusal::TokenInvalid { field: "mfa_token" })?;
        let accepted = self.check_factor(&mut tx, &user, &factor, now).await?;
        if !accepted {
            drop(tx);
            self.store().fail_one_time(&hash).await?;
            let reason = events::login_failed::Reason::InvalidMfaCode;
            self.record_failed_login(&user, &user.email, reason, challenge.attempts + 1, client)
                .await?;
            return Err(Refusal::InvalidMfaCode.into());
        }
        if !self.store().use_one_time(&mut tx, &hash, now).await? {
            return Err(Refusal::TokenInvalid { field: "mfa_token" }.into());
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
    pub(super) async fn check_factor(
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
                            .update_user(tx, &user.id, user_update!("totp_last_step = $3"), |q| {
                                q.bind(step)
                            })
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
                    self.emit_user_event(
                        tx,
                        user,
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

    /// A TOTP secret (base32) as stored: sealed for its user.
    pub(super) fn seal_totp(&self, user_id: &str, base32: &str) -> String {
        self.inner
            .sealer
            .seal(base32.as_bytes(), &totp_context(user_id))
    }

    /// A stored TOTP secret, opened; `None` when it does not open (an
    /// unknown key, tampering), which fails the factor closed.
    pub(super) fn open_totp(&self, user_id: &str, stored: &str) -> Option<totp::TotpSecret> {
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

    /// Starts TOTP enrollment: a new secret, valid for 15 minutes until
    /// confirmed with a code.
    pub async fn enroll_totp(
        &self,
        principal: &Principal,
        client: &ClientInfo,
    ) -> Result<Enrollment> {
        let user = self.user_principal(principal).await?;
        if user.mfa_enabled() {
            return Err(Refusal::MfaAlreadyEnabled.into());
        }
        let secret = totp::TotpSecret::generate();
        let encoded = secret.to_base32();
        let expires = now_micros() + micros(Duration::from_secs(900));
        let mut tx = self.begin().await?;
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                user_update!("pending_totp_secret = $3, pending_totp_expires_at_us = $4"),
                |q| q.bind(self.seal_totp(&user.id, &encoded)).bind(expires),
            )
            .await?;
        self.emit_user_event(
            &mut tx,
            &user,
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
            .ok_or(Refusal::NoPendingEnrollment)?;
        let step = totp::verify(&secret, code, now / 1_000_000, None)
            .ok_or(Refusal::InvalidEnrollmentCode)?;
        let (codes, hashes) = recovery_codes();
        let mut tx = self.begin().await?;
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                user_update!("totp_secret = pending_totp_secret, totp_enabled_at_us = $3, totp_last_step = $4, \
                 pending_totp_secret = NULL, pending_totp_expires_at_us = NULL"),
                |q| q.bind(now).bind(step),
            )
            .await?;
        self.store()
            .replace_recovery_codes(&mut tx, &user.id, &hashes)
            .await?;
        self.emit_user_event(
            &mut tx,
            &user,
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
                .ok_or(Refusal::SessionInvalid)?;
            tokens = Some(self.issue(&mut tx, &user, &session, true).await?);
        }
        let user = self
            .commit_user(tx, &user.id, || Refusal::SessionInvalid.into())
            .await?;
        Ok((user, codes, tokens))
    }

    /// Turns TOTP off (re-authentication required).
    pub async fn disable_totp(
        &self,
        principal: &Principal,
        password: &str,
        client: &ClientInfo,
    ) -> Result<UserRow> {
        let user = self.reauthenticated_with_mfa(principal, password).await?;
        let mut tx = self.begin().await?;
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                user_update!(
                    "totp_secret = NULL, totp_enabled_at_us = NULL, totp_last_step = NULL"
                ),
                |q| q,
            )
            .await?;
        self.store()
            .replace_recovery_codes(&mut tx, &user.id, &[])
            .await?;
        self.emit_user_event(
            &mut tx,
            &user,
            client,
            &events::MfaDisabled {
                user_id: user.id.clone(),
                by_admin: false,
            },
        )
        .await?;
        self.commit_user(tx, &user.id, || Refusal::SessionInvalid.into())
            .await
    }

    /// Replaces the recovery codes (re-authentication required).
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>> {
        let user = self.reauthenticated_with_mfa(principal, password).await?;
        let (codes, hashes) = recovery_codes();
        let mut tx = self.begin().await?;
        self.store()
            .replace_recovery_codes(&mut tx, &user.id, &hashes)
            .await?;
        self.emit_user_event(
            &mut tx,
            &user,
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

    /// The caller, re-authenticated with their current password, who has
    /// TOTP on: what turning it off or replacing the recovery codes asks.
    async fn reauthenticated_with_mfa(
        &self,
        principal: &Principal,
        password: &str,
    ) -> Result<UserRow> {
        let user = self.user_principal(principal).await?;
        self.reauthenticate(&user, password).await?;
        if !user.mfa_enabled() {
            return Err(Refusal::MfaNotEnabled.into());
        }
        Ok(user)
    }
}

/// New recovery codes, as shown once, and their hashes, as stored.
fn recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes = crate::secrets::new_recovery_codes();
    let hashes = codes
        .iter()
        .filter_map(|c| crate::secrets::normalize_recovery_code(c))
        .map(|c| hash_token(&c))
        .collect();
    (codes, hashes)
}
