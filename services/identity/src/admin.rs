//! Instance administration: platform administrators manage any user and the
//! service accounts (machine identities) of internal services.

use tenantry_kit::auth::{Claims, Principal, PrincipalKind};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::outbox::NewEvent;
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::events::v1 as events;

use crate::accounts::{Accounts, ClientInfo, field_change, user_actor, valid_display_name};
use crate::error::Error as Refusal;
use crate::secrets::{
    hash_api_key_secret, invalid_client_secret, new_client_secret, parse_client_secret,
    tokens_equal,
};
use crate::store::{CredentialRow, ServiceAccountRow, UserRow, user_update};

/// A freshly minted service-account token.
#[derive(Debug, Clone)]
pub struct ServiceToken {
    pub access_token: String,
    pub expires_at_us: i64,
    pub service_account_id: String,
    pub organization_id: Option<String>,
}

/// What an administrator does to a user's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Sign the user out everywhere and refuse their sign-ins.
    Disable,
    /// Let a disabled user sign in again.
    Enable,
    /// Soft-delete the user, signing them out everywhere.
    Delete,
    /// Restore a soft-deleted user.
    Undelete,
}

fn not_admin() -> Error {
    Error::permission_denied("platform.admin").with_domain("identity")
}

impl Accounts {
    /// The caller, who must be a platform administrator.
    pub async fn require_platform_admin(&self, principal: &Principal) -> Result<UserRow> {
        let user = self.user_principal(principal).await?;
        if user.platform_admin {
            Ok(user)
        } else {
            Err(not_admin())
        }
    }

    /// Users in id order, after a cursor.
    pub async fn list_users(
        &self,
        principal: &Principal,
        after_id: &str,
        limit: i64,
        email_prefix: &str,
        show_deleted: bool,
    ) -> Result<Vec<UserRow>> {
        self.require_platform_admin(principal).await?;
        self.store()
            .users(after_id, limit, email_prefix, show_deleted)
            .await
    }

    /// Loads a user for an administrative change, checking the etag.
    async fn user_for_admin(&self, id: &str, etag: &str) -> Result<UserRow> {
        let user = self
            .store()
            .user_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found("user").with_domain("identity"))?;
        if !etag.is_empty() && etag != format!("\"{}\"", user.version) {
            return Err(Refusal::EtagMismatch.into());
        }
        Ok(user)
    }

    /// Changes a user's display name (the user themself or an admin).
    pub async fn update_display_name(
        &self,
        principal: &Principal,
        id: &str,
        display_name: &str,
        etag: &str,
        client: &ClientInfo,
    ) -> Result<UserRow> {
        let caller = self.user_principal(principal).await?;
        if caller.id != id && !caller.platform_admin {
            return Err(Error::not_found("user").with_domain("identity"));
        }
        let display_name = valid_display_name("user.display_name", display_name)?;
        let user = self.user_for_admin(id, etag).await?;
        let mut tx = self.begin().await?;
        let name = display_name.to_string();
        self.store()
            .update_user(&mut tx, &user.id, user_update!("display_name = $3"), |q| {
                q.bind(name)
            })
            .await?;
        let event = NewEvent::new(
            "user",
            user.id.clone(),
            user_actor(&caller),
            &events::UserUpdated {
                user_id: user.id.clone(),
                display_name: display_name.to_string(),
                changed_fields: vec!["display_name".into()],
            },
        )
        .with_changes(vec![field_change(
            "display_name",
            &user.display_name,
            display_name,
        )]);
        self.append(&mut tx, event, client).await?;
        self.commit_user(tx, &user.id, || Error::not_found("user"))
            .await
    }

    /// Changes a user's standing. Disabling and deleting take the user away:
    /// they end every session at once, and no administrator does them to
    /// themselves.
    pub async fn change_standing(
        &self,
        principal: &Principal,
        id: &str,
        change: Standing,
        etag: &str,
        client: &ClientInfo,
    ) -> Result<UserRow> {
        let admin = self.require_platform_admin(principal).await?;
        if admin.id == id {
            match change {
                Standing::Disable => return Err(Refusal::CannotDisableSelf.into()),
                Standing::Delete => return Err(Refusal::CannotDeleteSelf.into()),
                Standing::Enable | Standing::Undelete => {}
            }
        }
        let user = self.user_for_admin(id, etag).await?;
        let mut tx = self.begin().await?;
        let (store, id) = (self.store(), user.id.as_str());
        match change {
            Standing::Disable | Standing::Enable => {
                let state = if change == Standing::Enable {
                    "active"
                } else {
                    "disabled"
                };
                let set_state = user_update!("state = $3");
                store
                    .update_user(&mut tx, id, set_state, |q| q.bind(state))
                    .await?;
            }
            Standing::Delete => {
                let now = now_micros();
                let set_deleted = user_update!("deleted_at_us = $3");
                store
                    .update_user(&mut tx, id, set_deleted, |q| q.bind(now))
                    .await?;
            }
            Standing::Undelete => {
                let restore = user_update!("deleted_at_us = NULL");
                store.update_user(&mut tx, id, restore, |q| q).await?;
            }
        }
        if matches!(change, Standing::Disable | Standing::Delete) {
            let reason = events::session_revoked::Reason::Unspecified;
            self.revoke_all(&mut tx, &user, None, reason, client)
                .await?;
        }
        let (user_id, actor) = (user.id.clone(), user_actor(&admin));
        let event = match change {
            Standing::Disable => {
                let reason = String::new();
                NewEvent::new("user", id, actor, &events::UserDisabled { user_id, reason })
            }
            Standing::Enable => NewEvent::new("user", id, actor, &events::UserEnabled { user_id }),
            Standing::Delete => {
                let deleted = events::UserDeleted {
                    user_id,
                    purge_time: None,
                };
                NewEvent::new("user", id, actor, &deleted)
            }
            Standing::Undelete => {
                NewEvent::new("user", id, actor, &events::UserUndeleted { user_id })
            }
        };
        self.append(&mut tx, event, client).await?;
        self.commit_user(tx, &user.id, || Error::not_found("user"))
            .await
    }

    // Service accounts.

    /// The service account `id`; NOT_FOUND when there is none.
    async fn existing_service_account(&self, id: &str) -> Result<ServiceAccountRow> {
        self.store()
            .service_account(id)
            .await?
            .ok_or_else(|| Error::not_found("service account").with_domain("identity"))
    }

    /// Writes the event `payload` about the service account `id`, done by
    /// `admin`, and commits.
    async fn commit_service_account<M: tenantry_proto::EventType>(
        &self,
        mut tx: Write,
        admin: &UserRow,
        id: &str,
        client: &ClientInfo,
        payload: &M,
    ) -> Result<()> {
        self.emit(
            &mut tx,
            ("service_account", id),
            user_actor(admin),
            client,
            payload,
        )
        .await?;
        self.commit(tx).await
    }

    /// Creates a service account.
    pub async fn create_service_account(
        &self,
        principal: &Principal,
        display_name: &str,
        description: &str,
        request_id: &str,
        client: &ClientInfo,
    ) -> Result<ServiceAccountRow> {
        let admin = self.require_platform_admin(principal).await?;
        let request_id = valid_request_id(request_id)?;
        if let Some(request_id) = &request_id
            && let Some(existing) = self
                .store()
                .service_account_by_request(&admin.id, request_id)
                .await?
        {
            return Ok(existing);
        }
        let display_name = valid_display_name("service_account.display_name", display_name)?;
        if description.chars().count() > 1000 {
            return Err(Error::invalid_field(
                "service_account.description",
                "must be at most 1000 characters",
            )
            .with_domain("identity"));
        }
        let now = now_micros();
        let account = ServiceAccountRow {
            id: new_id().to_string(),
            display_name: display_name.to_string(),
            description: description.to_string(),
            created_by: admin.id.clone(),
            created_at_us: now,
            updated_at_us: now,
            request_id,
            last_used_at_us: None,
        };
        let mut tx = self.begin().await?;
        self.store()
            .insert_service_account(&mut tx, &account)
            .await?;
        let event = events::ServiceAccountCreated {
            service_account_id: account.id.clone(),
            display_name: account.display_name.clone(),
            ..Default::default()
        };
        self.commit_service_account(tx, &admin, &account.id, client, &event)
            .await?;
        Ok(account)
    }

    /// A service account, for administrators.
    pub async fn service_account(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<ServiceAccountRow> {
        self.require_platform_admin(principal).await?;
        self.existing_service_account(id).await
    }

    /// Service accounts in id order, after a cursor.
    pub async fn service_accounts(
        &self,
        principal: &Principal,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<ServiceAccountRow>> {
        self.require_platform_admin(principal).await?;
        self.store().service_accounts(after_id, limit).await
    }

    /// Deletes a service account and its credentials; tokens it holds expire
    /// within their short lifetime.
    pub async fn delete_service_account(
        &self,
        principal: &Principal,
        id: &str,
        etag: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let admin = self.require_platform_admin(principal).await?;
        let account = self.existing_service_account(id).await?;
        tenantry_kit::request::check_etag(etag, account.updated_at_us)?;
        let mut tx = self.begin().await?;
        if !self.store().delete_service_account(&mut tx, id).await? {
            return Err(Error::not_found("service account").with_domain("identity"));
        }
        let event = events::ServiceAccountDeleted {
            service_account_id: id.to_string(),
        };
        self.commit_service_account(tx, &admin, id, client, &event)
            .await
    }

    /// Creates client credentials; the secret is returned once, stored hashed.
    /// A replay of the same `request_id` answers the first credential with
    /// an empty secret (the secret is shown once).
    pub async fn create_credential(
        &self,
        principal: &Principal,
        service_account_id: &str,
        spec: NewCredential<'_>,
        client: &ClientInfo,
    ) -> Result<(CredentialRow, String)> {
        let admin = self.require_platform_admin(principal).await?;
        let NewCredential {
            display_name,
            expires_at_us,
            request_id,
        } = spec;
        let request_id = valid_request_id(request_id)?;
        if display_name.chars().count() > 200 {
            return Err(Error::invalid_field(
                "credential.display_name",
                "must be at most 200 characters",
            )
            .with_domain("identity"));
        }
        self.existing_service_account(service_account_id).await?;
        if let Some(request_id) = &request_id
            && let Some(existing) = self
                .store()
                .credential_by_request(service_account_id, request_id)
                .await?
        {
            return Ok((existing, String::new()));
        }
        if expires_at_us.is_some_and(|e| e <= now_micros()) {
            return Err(
                Error::invalid_field("credential.expire_time", "must be in the future")
                    .with_domain("identity"),
            );
        }
        let (parts, secret) = new_client_secret();
        let credential = CredentialRow {
            id: new_id().to_string(),
            service_account_id: service_account_id.to_string(),
            client_id: parts.id.clone(),
            secret_hash: hash_api_key_secret(&parts.secret),
            created_at_us: now_micros(),
            expires_at_us,
            last_used_at_us: None,
            display_name: display_name.trim().to_string(),
            created_by: admin.id.clone(),
            request_id,
        };
        let mut tx = self.begin().await?;
        self.store().insert_credential(&mut tx, &credential).await?;
        let event = events::ServiceAccountCredentialCreated {
            service_account_id: service_account_id.to_string(),
            credential_id: credential.id.clone(),
            expire_time: expires_at_us.map(crate::accounts::timestamp),
        };
        self.commit_service_account(tx, &admin, service_account_id, client, &event)
            .await?;
        Ok((credential, secret))
    }

    /// A service account's credentials (never their secrets).
    pub async fn credentials(
        &self,
        principal: &Principal,
        service_account_id: &str,
    ) -> Result<Vec<CredentialRow>> {
        self.require_platform_admin(principal).await?;
        self.existing_service_account(service_account_id).await?;
        self.store().credentials(service_account_id).await
    }

    /// Revokes one credential.
    pub async fn delete_credential(
        &self,
        principal: &Principal,
        service_account_id: &str,
        id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let admin = self.require_platform_admin(principal).await?;
        let mut tx = self.begin().await?;
        if !self
            .store()
            .delete_credential(&mut tx, service_account_id, id)
            .await?
        {
            return Err(Error::not_found("credential").with_domain("identity"));
        }
        let event = events::ServiceAccountCredentialRevoked {
            service_account_id: service_account_id.to_string(),
            credential_id: id.to_string(),
        };
        self.commit_service_account(tx, &admin, service_account_id, client, &event)
            .await
    }

    /// Exchanges client credentials for a short-lived access token. Every
    /// failure looks the same; the secret is checked in constant time.
    pub async fn issue_service_token(
        &self,
        client_id: &str,
        client_secret: &str,
        organization: Option<String>,
    ) -> Result<ServiceToken> {
        let parts = parse_client_secret(client_secret)?;
        if !tokens_equal(&parts.id, client_id) {
            return Err(invalid_client_secret());
        }
        let now = now_micros();
        let credential = self
            .store()
            .credential_by_client_id(client_id)
            .await?
            .filter(|c| c.expires_at_us.is_none_or(|e| e > now))
            .ok_or_else(invalid_client_secret)?;
        if !tokens_equal(&hash_api_key_secret(&parts.secret), &credential.secret_hash) {
            return Err(invalid_client_secret());
        }
        let account = self
            .store()
            .service_account(&credential.service_account_id)
            .await?
            .ok_or_else(invalid_client_secret)?;
        self.store().touch_credential(&credential.id, now).await?;
        let auth = &self.inner.auth;
        // As long as a user's access token (`access_token_ttl_secs`): it
        // cannot be revoked either. A service renews it by asking again
        // with its client credentials, as the client library does before
        // it expires; there is no refresh token to keep.
        let ttl = self.options().access_token_ttl();
        let exp = (now + ttl.as_micros() as i64) / 1_000_000;
        let claims = Claims {
            iss: auth.issuer.clone(),
            aud: auth.audience.clone(),
            sub: account.id.clone(),
            sid: None,
            org: organization.clone(),
            iat: now / 1_000_000,
            exp,
            nbf: None,
            jti: new_id().to_string(),
            amr: vec!["client_credentials".into()],
            kind: PrincipalKind::ServiceAccount,
            perms: None,
            team: None,
            mfa_pending: false,
            name: Some(account.display_name.clone()),
        };
        Ok(ServiceToken {
            access_token: self.inner.keys.signing_key().sign(&claims),
            expires_at_us: exp * 1_000_000,
            service_account_id: account.id,
            organization_id: organization,
        })
    }
}

/// Grants the platform administrator role to the user with `email`: what
/// `tenantry admin bootstrap` runs, straight against the database, before
/// any administrator exists to do it over the API.
pub async fn grant_platform_admin(db: &tenantry_kit::db::Database, email: &str) -> Result<UserRow> {
    let store = crate::store::Store::new(db.clone());
    let email = crate::email::normalize_email("email", email)?;
    let user = store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| Error::not_found("user").with_domain("identity"))?;
    grant(&store, &user.id).await
}

/// Grants the role to every address of `identity.platform_admins` that
/// already has an account without it, at identity's start: the address
/// may have signed up before it was configured, and an operator without
/// database access (a Kubernetes deployment) makes an administrator by
/// setting the variable and restarting. Addresses without an account get
/// the role when they sign up. The users granted it now.
pub async fn grant_configured_platform_admins(
    db: &tenantry_kit::db::Database,
    emails: &[String],
) -> Result<Vec<UserRow>> {
    let store = crate::store::Store::new(db.clone());
    let mut granted = Vec::new();
    for email in emails {
        let email = crate::email::normalize_email("identity.platform_admins", email)?;
        let Some(user) = store.user_by_email(&email).await? else {
            continue;
        };
        if user.platform_admin || user.deleted_at_us.is_some() {
            continue;
        }
        let user = grant(&store, &user.id).await?;
        granted.push(user);
    }
    Ok(granted)
}

/// Makes the user a platform administrator with its event, once: the row
/// is read again under the write lock, so that replicas starting together
/// grant it (and emit `PlatformAdminGranted`) once between them.
async fn grant(store: &crate::store::Store, user_id: &str) -> Result<UserRow> {
    let mut tx = store.begin().await?;
    let user = store
        .user_by_id_for_update(&mut tx, user_id)
        .await?
        .ok_or_else(|| Error::not_found("user").with_domain("identity"))?;
    if user.platform_admin {
        tx.commit().await?;
        return Ok(user);
    }
    store
        .update_user(&mut tx, &user.id, user_update!("platform_admin = 1"), |q| q)
        .await?;
    let system = events::Actor {
        kind: events::actor::Kind::System as i32,
        ..Default::default()
    };
    let event = NewEvent::new(
        "user",
        user.id.clone(),
        system,
        &events::PlatformAdminGranted {
            user_id: user.id.clone(),
            bootstrap: true,
        },
    );
    tenantry_kit::outbox::Outbox::new(crate::NAME)
        .append(&mut tx, event)
        .await?;
    let updated = store
        .user_by_id_for_update(&mut tx, &user.id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    tx.commit().await?;
    Ok(updated)
}

/// What a new service account credential is made of.
#[derive(Debug, Clone, Copy)]
pub struct NewCredential<'a> {
    pub display_name: &'a str,
    pub expires_at_us: Option<i64>,
    /// The client's id for the create; empty for none.
    pub request_id: &'a str,
}

/// A client's request id: empty is none; at most 128 characters.
fn valid_request_id(request_id: &str) -> Result<Option<String>> {
    if request_id.len() > 128 {
        return Err(
            Error::invalid_field("request_id", "must be at most 128 characters")
                .with_domain("identity"),
        );
    }
    Ok((!request_id.is_empty()).then(|| request_id.to_string()))
}
