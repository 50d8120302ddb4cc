//! The `IdentityService` gRPC handler: converts requests, calls
//! [`Accounts`], converts answers. No domain logic lives here. This file
//! holds the handler's type, what it reads off a request and how rows
//! become resources; `handlers` holds the RPCs.

use tenantry_kit::auth::Principal;
use tenantry_kit::error::Error;
use tenantry_kit::names::{OrganizationName, SessionName, UserName};
use tenantry_kit::page_token::PageTokens;
use tenantry_proto::tenantry::identity::v1 as pb;
use tonic::{Request, Status};

use crate::accounts::{Accounts, ClientInfo, Tokens, timestamp};
use crate::keys::KeyRing;
use crate::store::{SessionRow, UserRow};

mod handlers;

/// The public RPCs of the identity service: callable without a token.
pub const PUBLIC_METHODS: &[&str] = &[
    "/tenantry.identity.v1.IdentityService/SignUp",
    "/tenantry.identity.v1.IdentityService/VerifyEmail",
    "/tenantry.identity.v1.IdentityService/ResendVerification",
    "/tenantry.identity.v1.IdentityService/RequestPasswordReset",
    "/tenantry.identity.v1.IdentityService/ResetPassword",
    "/tenantry.identity.v1.IdentityService/Login",
    "/tenantry.identity.v1.IdentityService/CompleteMfaLogin",
    "/tenantry.identity.v1.IdentityService/Refresh",
    "/tenantry.identity.v1.IdentityService/Logout",
    "/tenantry.identity.v1.IdentityService/GetJwks",
    "/tenantry.identity.v1.IdentityService/GetOpenIdConfiguration",
    "/tenantry.identity.v1.ApiKeyService/AuthenticateApiKey",
    "/tenantry.identity.v1.ServiceAccountService/IssueServiceAccountToken",
];

/// The RPCs a token that may only enroll MFA can call.
pub const MFA_ENROLLMENT_METHODS: &[&str] = &[
    "/tenantry.identity.v1.IdentityService/Me",
    "/tenantry.identity.v1.IdentityService/EnrollTotp",
    "/tenantry.identity.v1.IdentityService/ConfirmTotp",
    "/tenantry.identity.v1.IdentityService/Logout",
];

/// The handler.
#[derive(Debug, Clone)]
pub struct IdentityApi {
    pub accounts: Accounts,
    pub keys: KeyRing,
    pub page_tokens: PageTokens,
    pub issuer: String,
    pub public_base_url: String,
}

pub(crate) fn client_info<T>(request: &Request<T>) -> ClientInfo {
    let header = |name: &str| {
        request
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(512)
            .collect::<String>()
    };
    ClientInfo {
        address: tenantry_kit::net::of_request(request)
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        user_agent: header("user-agent"),
        request_id: header("x-request-id"),
    }
}

pub(crate) fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    Principal::from_request(request)
        .cloned()
        .map_err(Status::from)
}

/// Parses `users/{id}`, accepting `users/me` for the caller.
fn user_id_from_name(field: &str, name: &str, caller: &Principal) -> Result<String, Error> {
    match name {
        "users/me" => Ok(caller.id.clone()),
        _ => Ok(UserName::parse(field, name)?.id),
    }
}

/// The user resource as clients see it.
pub fn user_to_proto(user: &UserRow) -> pb::User {
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

fn tokens_to_proto(tokens: Tokens) -> pb::AuthTokens {
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

fn session_to_proto(session: &SessionRow, current: Option<&str>) -> pb::Session {
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

/// The organization id from an optional `organizations/{id}` field.
pub(crate) fn optional_organization(field: &str, name: &str) -> Result<Option<String>, Error> {
    if name.is_empty() {
        return Ok(None);
    }
    Ok(Some(OrganizationName::parse(field, name)?.id))
}

fn required(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid_field(field, "is required").with_domain("identity"));
    }
    Ok(())
}

/// `organizations/{id}` for an organization id, empty for none.
pub(crate) fn organization_name_of(id: Option<&str>) -> String {
    id.map(|id| OrganizationName::new(id).to_string())
        .unwrap_or_default()
}
