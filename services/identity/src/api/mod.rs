//! The `IdentityService` gRPC handler: converts requests, calls
//! [`Accounts`], converts answers. No domain logic lives here. This file
//! holds the handler's type and what it reads off a request; `handlers`
//! holds the RPCs, and [`crate::convert`] how rows become resources.

use tenantry_kit::auth::Principal;
use tenantry_kit::error::Error;
use tenantry_kit::names::{OrganizationName, UserName};
use tenantry_kit::page_token::PageTokens;
use tenantry_proto::tenantry::identity::v1 as pb;
use tonic::{Request, Status};

use crate::accounts::{Accounts, ClientInfo, timestamp};
use crate::keys::KeyRing;

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
