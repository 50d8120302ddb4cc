//! Sessions and tokens: opening, refreshing (with reuse detection), ending one
//! or all, switching organization, and `Me`.

use super::*;

impl Accounts {
    /// Creates a session. The requested organization becomes active only if
    /// it allows this sign-in: an organization that requires MFA gets a
    /// session that may only enroll MFA until the user has it.
    ///
    /// `access` comes from [`resolve_access`](Self::resolve_access), asked
    /// before the transaction so no network call holds a write lock.
    pub(super) async fn open_session(
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
    pub(super) async fn issue(
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
            .ok_or(Refusal::SessionInvalid)?;
        let session = self
            .store()
            .session(&mut tx, &row.session_id)
            .await?
            .ok_or(Refusal::SessionInvalid)?;
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
            return Err(Refusal::SessionInvalid.into());
        }
        if row.expires_at_us <= now
            || session.revoked_at_us.is_some()
            || session.expires_at_us <= now
        {
            return Err(Refusal::SessionInvalid.into());
        }
        let user = self
            .store()
            .user_by_id_for_update(&mut tx, &session.user_id)
            .await?
            .filter(UserRow::is_active)
            .ok_or(Refusal::SessionInvalid)?;
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
    pub(super) async fn end_session(
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
    pub(super) async fn actor_for(&self, tx: &mut Write, user_id: &str) -> Result<events::Actor> {
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
                Refusal::SessionInvalid.into()
            } else {
                Error::unauthenticated("missing credentials").with_domain("identity")
            });
        };
        let session = self
            .store()
            .session(&mut tx, &session_id)
            .await?
            .ok_or(Refusal::SessionInvalid)?;
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

    /// The signed-in user behind a principal. Access tokens outlive a
    /// revoked session by at most their TTL; calls that manage the account
    /// check the session is still live.
    pub async fn user_principal(&self, principal: &Principal) -> Result<UserRow> {
        if principal.kind != PrincipalKind::User {
            return Err(Refusal::UserRequired.into());
        }
        let user = self
            .store()
            .user_by_id(&principal.id)
            .await?
            .filter(UserRow::is_active)
            .ok_or(Refusal::SessionInvalid)?;
        if let Some(session_id) = &principal.session_id
            && !self
                .store()
                .session_is_live(session_id, now_micros())
                .await?
        {
            return Err(Refusal::SessionInvalid.into());
        }
        Ok(user)
    }

    /// The caller and their memberships; a user with no organization at all
    /// gets a first one, as at a first sign-in.
    pub async fn me(&self, principal: &Principal, client: &ClientInfo) -> Result<MeView> {
        let user = self.user_principal(principal).await?;
        let mut memberships = self.summaries(&user).await?;
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
                memberships = self.summaries(&user).await?;
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

    /// The user's memberships as `Me` shows them: with the organizations'
    /// names and policies, or only ids and roles while the organization
    /// service does not serve them.
    async fn summaries(&self, user: &UserRow) -> Result<Vec<crate::directory::Membership>> {
        let token = self.short_user_token(user);
        match self.inner.directory.my_organizations(&token).await? {
            Some(summaries) => Ok(summaries),
            None => self.inner.directory.memberships(&user.id).await,
        }
    }

    /// Makes the organization `Me` just created for a user who had none the
    /// one their session works in (the next refresh gives tokens in it) and
    /// the one their next sign-in starts in.
    pub(super) async fn enter_first_organization(
        &self,
        user: &UserRow,
        principal: &Principal,
        organization: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let org = organization.to_string();
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                user_update!("last_organization_id = $3"),
                |q| q.bind(org),
            )
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
            self.emit_user_event(
                &mut tx,
                user,
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
        let session_id = principal
            .session_id
            .clone()
            .ok_or(Refusal::SessionInvalid)?;
        if !self.member_of(&user.id, organization).await? {
            return Err(Error::not_found("organization").with_domain("identity"));
        }
        let mut tx = self.begin().await?;
        let session = self
            .store()
            .session(&mut tx, &session_id)
            .await?
            .ok_or(Refusal::SessionInvalid)?;
        drop(tx);
        match self.inner.directory.sign_in_policy(organization).await? {
            Some(policy) if !policy.active => {
                return Err(Refusal::OrganizationDeactivated.into());
            }
            Some(policy) if policy.require_mfa && !session.mfa => {
                return Err(Refusal::MfaRequired.into());
            }
            _ => {}
        }
        let mut tx = self.begin().await?;
        self.store()
            .set_session_organization(&mut tx, &session.id, Some(organization), session.mfa, false)
            .await?;
        let org = organization.to_string();
        self.store()
            .update_user(
                &mut tx,
                &user.id,
                user_update!("last_organization_id = $3"),
                |q| q.bind(org),
            )
            .await?;
        self.emit_user_event(
            &mut tx,
            &user,
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
            .ok_or(Refusal::SessionInvalid)?;
        let tokens = self.issue(&mut tx, &user, &session, false).await?;
        self.commit(tx).await?;
        Ok(tokens)
    }
}
