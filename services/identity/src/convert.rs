//! Proto ↔ domain conversions of the identity service, in one place (see
//! STYLE.md): how its rows and answers (users, sessions, tokens,
//! memberships, API keys, service accounts and their credentials) become
//! the resources clients see. The handlers call these.

use tenantry_kit::names::BuiltInRole;
use tenantry_kit::names::{
    ApiKeyName, CredentialName, OrganizationName, ProjectName, ServiceAccountName, SessionName,
    TeamName, UserName,
};
use tenantry_proto::tenantry::identity::v1 as pb;

use crate::accounts::{Tokens, timestamp};
use crate::directory::Membership;
use crate::store::{ApiKeyRow, CredentialRow, ServiceAccountRow, SessionRow, UserRow};

/// The user resource as clients see it.
pub(crate) fn user_to_proto(user: &UserRow) -> pb::User {
    let state = if user.deleted_at_us.is_some() {
        pb::UserState::Deleted
    } else if user.state == "disabled" {
        pb::UserState::Disabled
    } else {
        pb::UserState::Active
    };
    pb::User {
        name: UserName::new(&user.id).to_string(),
        email: user.email.clone(),
        email_verified: user.email_verified_at_us.is_some(),
        pending_email: user.pending_email.clone().unwrap_or_default(),
        display_name: user.display_name.clone(),
        state: state as i32,
        mfa_enabled: user.mfa_enabled(),
        platform_admin: user.platform_admin,
        create_time: Some(timestamp(user.created_at_us)),
        update_time: Some(timestamp(user.updated_at_us)),
        last_login_time: user.last_login_at_us.map(timestamp),
        password_change_time: Some(timestamp(user.password_changed_at_us)),
        delete_time: user.deleted_at_us.map(timestamp),
        purge_time: None,
        etag: format!("\"{}\"", user.version),
        recovery_codes_remaining: user.recovery_codes_remaining as i32,
    }
}

/// Tokens of a session as clients see them.
pub(crate) fn tokens_to_proto(tokens: Tokens) -> pb::AuthTokens {
    let now = tenantry_kit::db::now_micros();
    let expires_in = (tokens.access_expires_at_us - now).max(0);
    pb::AuthTokens {
        access_token: tokens.access_token,
        token_type: "Bearer".into(),
        expires_in: Some(prost_types::Duration {
            seconds: expires_in / 1_000_000,
            nanos: ((expires_in % 1_000_000) * 1000) as i32,
        }),
        expire_time: Some(timestamp(tokens.access_expires_at_us)),
        refresh_token_expire_time: tokens
            .refresh_token
            .as_ref()
            .map(|_| timestamp(tokens.refresh_expires_at_us)),
        refresh_token: tokens.refresh_token.unwrap_or_default(),
        user: UserName::new(&tokens.user_id).to_string(),
        session: SessionName::new(&tokens.user_id, &tokens.session_id).to_string(),
        organization: organization_name_of(tokens.organization_id.as_deref()),
        mfa_authenticated: tokens.mfa,
        mfa_enrollment_required: tokens.mfa_pending,
    }
}

/// A session as its user sees it; `current` is the caller's own session.
pub(crate) fn session_to_proto(session: &SessionRow, current: Option<&str>) -> pb::Session {
    pb::Session {
        name: SessionName::new(&session.user_id, &session.id).to_string(),
        active_organization: organization_name_of(session.active_organization_id.as_deref()),
        device: session
            .user_agent
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string(),
        user_agent: session.user_agent.clone(),
        client_address: session.client_address.clone(),
        mfa_authenticated: session.mfa,
        current: current == Some(session.id.as_str()),
        create_time: Some(timestamp(session.created_at_us)),
        last_seen_time: Some(timestamp(session.last_seen_at_us)),
        expire_time: Some(timestamp(session.expires_at_us)),
    }
}

/// `organizations/{id}` for an organization id, empty for none.
pub(crate) fn organization_name_of(id: Option<&str>) -> String {
    id.map(|id| OrganizationName::new(id).to_string())
        .unwrap_or_default()
}

/// An API key as its managers see it, its state as of `now_us`.
pub(crate) fn key_to_proto(key: &ApiKeyRow, now_us: i64) -> pb::ApiKey {
    let state = if key.revoked_at_us.is_some() {
        pb::ApiKeyState::Revoked
    } else if key.expires_at_us.is_some_and(|e| e <= now_us) {
        pb::ApiKeyState::Expired
    } else {
        pb::ApiKeyState::Active
    };
    pb::ApiKey {
        name: ApiKeyName::new(&key.organization_id, &key.id).to_string(),
        display_name: key.display_name.clone(),
        team: team_name(key),
        project: key
            .project_id
            .as_ref()
            .map(|p| ProjectName::new(&key.organization_id, p).to_string())
            .unwrap_or_default(),
        permissions: key.permissions.clone(),
        expire_time: key.expires_at_us.map(timestamp),
        key_prefix: format!("tnt_{}", key.key_id),
        state: state as i32,
        created_by: UserName::new(&key.created_by).to_string(),
        create_time: Some(timestamp(key.created_at_us)),
        last_used_time: key.last_used_at_us.map(timestamp),
        revoke_time: key.revoked_at_us.map(timestamp),
        revoked_by: String::new(),
    }
}

/// The name of a key's team, empty for a key of no team.
pub(crate) fn team_name(key: &ApiKeyRow) -> String {
    key.team_id
        .as_ref()
        .map(|t| TeamName::new(&key.organization_id, t).to_string())
        .unwrap_or_default()
}

/// A service account as platform administrators see it.
pub(crate) fn account_to_proto(account: &ServiceAccountRow) -> pb::ServiceAccount {
    pb::ServiceAccount {
        name: ServiceAccountName::new(&account.id).to_string(),
        display_name: account.display_name.clone(),
        description: account.description.clone(),
        created_by: UserName::new(&account.created_by).to_string(),
        create_time: Some(timestamp(account.created_at_us)),
        last_used_time: account.last_used_at_us.map(timestamp),
        etag: format!("\"{}\"", account.updated_at_us),
    }
}

/// A service account's credential, without its secret.
pub(crate) fn credential_to_proto(credential: &CredentialRow) -> pb::ServiceAccountCredential {
    pb::ServiceAccountCredential {
        name: CredentialName::new(&credential.service_account_id, &credential.id).to_string(),
        client_id: credential.client_id.clone(),
        display_name: credential.display_name.clone(),
        expire_time: credential.expires_at_us.map(timestamp),
        created_by: if credential.created_by.is_empty() {
            String::new()
        } else {
            UserName::new(&credential.created_by).to_string()
        },
        create_time: Some(timestamp(credential.created_at_us)),
        last_used_time: credential.last_used_at_us.map(timestamp),
    }
}

/// A membership as `Me` reports it.
pub(crate) fn membership_to_proto(m: Membership) -> pb::MembershipSummary {
    pb::MembershipSummary {
        organization: OrganizationName::new(&m.organization_id).to_string(),
        organization_display_name: m.display_name,
        organization_slug: m.slug,
        root_organization: organization_name_of(
            Some(m.root_organization_id.as_str()).filter(|id| !id.is_empty()),
        ),
        owner: m.roles.iter().any(|r| BuiltInRole::Owner.is(r)),
        roles: m.roles,
        require_mfa: m.require_mfa,
    }
}
