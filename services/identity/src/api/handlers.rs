//! The `IdentityService` RPCs: each parses its request, calls [`Accounts`]
//! and converts the answer.

use tenantry_kit::names::SessionName;
use tenantry_kit::page_token::page_size;
use tonic::Response;

use super::*;
use crate::accounts::{Factor, LoginOutcome, SignedUp};
use crate::admin::Standing;
use crate::convert::{
    membership_to_proto, organization_name_of, session_to_proto, tokens_to_proto, user_to_proto,
};

impl IdentityApi {
    /// Disable, enable, delete and undelete: an administrator's change to the
    /// standing of the user `name`.
    async fn change_standing<T>(
        &self,
        request: &Request<T>,
        name: &str,
        etag: &str,
        change: Standing,
    ) -> Result<Option<pb::User>, Status> {
        let client = client_info(request);
        let caller = principal(request)?;
        let id = user_id_from_name("name", name, &caller)?;
        let user = self
            .accounts
            .change_standing(&caller, &id, change, etag, &client)
            .await?;
        Ok(Some(user_to_proto(&user)))
    }
}

#[tonic::async_trait]
impl pb::identity_service_server::IdentityService for IdentityApi {
    async fn sign_up(
        &self,
        request: Request<pb::SignUpRequest>,
    ) -> Result<Response<pb::SignUpResponse>, Status> {
        let client = client_info(&request);
        let request = request.into_inner();
        if !request.invitation_token.is_empty() {
            let (user, tokens, organization) = self
                .accounts
                .sign_up_with_invitation(
                    &request.email,
                    &request.password,
                    &request.display_name,
                    &request.invitation_token,
                    &client,
                )
                .await?;
            return Ok(Response::new(pb::SignUpResponse {
                user: Some(user_to_proto(&user)),
                tokens: Some(tokens_to_proto(tokens)),
                organization: organization_name_of(organization.as_deref()),
                verification_required: false,
            }));
        }
        let organization_name = (!request.organization_display_name.is_empty())
            .then_some(request.organization_display_name.as_str());
        let signed_up = self
            .accounts
            .sign_up(
                &request.email,
                &request.password,
                &request.display_name,
                organization_name,
                &client,
            )
            .await?;
        Ok(Response::new(match signed_up {
            SignedUp::SignedIn {
                user,
                tokens,
                organization,
            } => pb::SignUpResponse {
                user: Some(user_to_proto(&user)),
                tokens: Some(tokens_to_proto(tokens)),
                organization: organization_name_of(organization.as_deref()),
                verification_required: false,
            },
            SignedUp::MailSent => pb::SignUpResponse {
                verification_required: true,
                ..Default::default()
            },
        }))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        let client = client_info(&request);
        let request = request.into_inner();
        required("token", &request.token)?;
        let verified = self.accounts.verify_email(&request.token, &client).await?;
        let (tokens, organization) = match verified.session {
            Some((tokens, organization)) => (
                Some(tokens_to_proto(tokens)),
                organization_name_of(organization.as_deref()),
            ),
            None => (None, String::new()),
        };
        Ok(Response::new(pb::VerifyEmailResponse {
            user: Some(user_to_proto(&verified.user)),
            tokens,
            organization,
        }))
    }

    async fn resend_verification(
        &self,
        request: Request<pb::ResendVerificationRequest>,
    ) -> Result<Response<pb::ResendVerificationResponse>, Status> {
        let client = client_info(&request);
        if request.get_ref().email.trim().is_empty() {
            // No address: the signed-in caller's own.
            let caller = Principal::from_request(&request).map_err(|_| {
                Error::invalid_field("email", "is required unless the caller is signed in")
            })?;
            self.accounts
                .resend_verification_to_caller(caller, &client)
                .await?;
        } else {
            self.accounts
                .resend_verification(&request.into_inner().email, &client)
                .await?;
        }
        Ok(Response::new(pb::ResendVerificationResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        let client = client_info(&request);
        self.accounts
            .request_password_reset(&request.into_inner().email, &client)
            .await?;
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let client = client_info(&request);
        let request = request.into_inner();
        required("token", &request.token)?;
        self.accounts
            .reset_password(&request.token, &request.new_password, &client)
            .await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let client = client_info(&request);
        let request = request.into_inner();
        let organization = optional_organization("organization", &request.organization)?;
        let result = match self
            .accounts
            .login(&request.email, &request.password, organization, &client)
            .await?
        {
            LoginOutcome::Tokens(tokens) => {
                pb::login_response::Result::Tokens(tokens_to_proto(tokens))
            }
            LoginOutcome::MfaRequired {
                mfa_token,
                expires_at_us,
            } => pb::login_response::Result::MfaChallenge(pb::MfaChallenge {
                mfa_token,
                methods: vec![
                    pb::MfaMethod::Totp as i32,
                    pb::MfaMethod::RecoveryCode as i32,
                ],
                expire_time: Some(timestamp(expires_at_us)),
            }),
        };
        Ok(Response::new(pb::LoginResponse {
            result: Some(result),
        }))
    }

    async fn complete_mfa_login(
        &self,
        request: Request<pb::CompleteMfaLoginRequest>,
    ) -> Result<Response<pb::CompleteMfaLoginResponse>, Status> {
        let client = client_info(&request);
        let request = request.into_inner();
        required("mfa_token", &request.mfa_token)?;
        let factor = match request.factor {
            Some(pb::complete_mfa_login_request::Factor::TotpCode(code)) => Factor::Totp(code),
            Some(pb::complete_mfa_login_request::Factor::RecoveryCode(code)) => {
                Factor::RecoveryCode(code)
            }
            None => {
                return Err(
                    Error::invalid_field("factor", "give totp_code or recovery_code").into(),
                );
            }
        };
        let tokens = self
            .accounts
            .complete_mfa_login(&request.mfa_token, factor, &client)
            .await?;
        Ok(Response::new(pb::CompleteMfaLoginResponse {
            tokens: Some(tokens_to_proto(tokens)),
        }))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let client = client_info(&request);
        let request = request.into_inner();
        required("refresh_token", &request.refresh_token)?;
        let tokens = self
            .accounts
            .refresh(&request.refresh_token, &client)
            .await?;
        Ok(Response::new(pb::RefreshResponse {
            tokens: Some(tokens_to_proto(tokens)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let client = client_info(&request);
        let caller = request.extensions().get::<Principal>().cloned();
        let request = request.into_inner();
        self.accounts
            .logout(caller.as_ref(), &request.refresh_token, &client)
            .await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn logout_everywhere(
        &self,
        request: Request<pb::LogoutEverywhereRequest>,
    ) -> Result<Response<pb::LogoutEverywhereResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let revoked = self
            .accounts
            .logout_everywhere(&caller, request.into_inner().keep_current_session, &client)
            .await?;
        Ok(Response::new(pb::LogoutEverywhereResponse {
            revoked_session_count: revoked as i32,
        }))
    }

    async fn me(
        &self,
        request: Request<pb::MeRequest>,
    ) -> Result<Response<pb::MeResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let me = self.accounts.me(&caller, &client).await?;
        Ok(Response::new(pb::MeResponse {
            user: Some(user_to_proto(&me.user)),
            memberships: me
                .memberships
                .into_iter()
                .map(membership_to_proto)
                .collect(),
            active_organization: organization_name_of(me.active_organization.as_deref()),
            organization_created: me.organization_created,
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let request = request.into_inner();
        let ended = self
            .accounts
            .change_password(
                &caller,
                &request.current_password,
                &request.new_password,
                &client,
            )
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {
            revoked_session_count: i32::try_from(ended).unwrap_or(i32::MAX),
        }))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> Result<Response<pb::EnrollTotpResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let enrollment = self.accounts.enroll_totp(&caller, &client).await?;
        Ok(Response::new(pb::EnrollTotpResponse {
            otpauth_uri: enrollment.otpauth_uri,
            secret: enrollment.secret,
            digits: crate::totp::DIGITS as i32,
            period: Some(prost_types::Duration {
                seconds: crate::totp::PERIOD_SECS,
                nanos: 0,
            }),
            expire_time: Some(timestamp(enrollment.expires_at_us)),
        }))
    }

    async fn confirm_totp(
        &self,
        request: Request<pb::ConfirmTotpRequest>,
    ) -> Result<Response<pb::ConfirmTotpResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let (user, recovery_codes, tokens) = self
            .accounts
            .confirm_totp(&caller, &request.into_inner().code, &client)
            .await?;
        Ok(Response::new(pb::ConfirmTotpResponse {
            recovery_codes,
            tokens: tokens.map(tokens_to_proto),
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn disable_totp(
        &self,
        request: Request<pb::DisableTotpRequest>,
    ) -> Result<Response<pb::DisableTotpResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let user = self
            .accounts
            .disable_totp(&caller, &request.into_inner().current_password, &client)
            .await?;
        Ok(Response::new(pb::DisableTotpResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> Result<Response<pb::RegenerateRecoveryCodesResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let recovery_codes = self
            .accounts
            .regenerate_recovery_codes(&caller, &request.into_inner().current_password, &client)
            .await?;
        Ok(Response::new(pb::RegenerateRecoveryCodesResponse {
            recovery_codes,
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let caller = principal(&request)?;
        let id = user_id_from_name("name", &request.get_ref().name, &caller)?;
        // A user sees themselves; platform admins see anyone. Anyone else's
        // id is NOT_FOUND, whether or not it exists.
        let viewer = self.accounts.user_principal(&caller).await?;
        if id != viewer.id && !viewer.platform_admin {
            return Err(Error::not_found("user").into());
        }
        let user = self
            .accounts
            .user(&id)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let size = page_size(request.page_size, 50, 1000)?;
        // The token is bound to the filters, so it cannot be replayed
        // against another query.
        let query = format!(
            "users:{}:{}:{}",
            request.email, request.state, request.show_deleted
        );
        let after: String = self
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?
            .unwrap_or_default();
        let email_prefix = request.email.trim().to_lowercase();
        let mut users = self
            .accounts
            .list_users(
                &caller,
                &after,
                i64::from(size) + 1,
                &email_prefix,
                request.show_deleted,
            )
            .await?;
        let more = users.len() > size as usize;
        users.truncate(size as usize);
        let state = pb::UserState::try_from(request.state).unwrap_or(pb::UserState::Unspecified);
        let next_page_token = match (more, users.last()) {
            (true, Some(last)) => self.page_tokens.encode(query.as_bytes(), &last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListUsersResponse {
            users: users
                .iter()
                .map(user_to_proto)
                .filter(|u| state == pb::UserState::Unspecified || u.state == state as i32)
                .collect(),
            next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let request = request.into_inner();
        let user = request
            .user
            .ok_or_else(|| Error::invalid_field("user", "is required"))?;
        let id = user_id_from_name("user.name", &user.name, &caller)?;
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid_field("update_mask", "name the fields to update").into());
        }
        if let Some(path) = paths.iter().find(|p| p.as_str() != "display_name") {
            return Err(Error::invalid_field(
                "update_mask",
                format!("`{path}` cannot be updated; only display_name"),
            )
            .into());
        }
        let updated = self
            .accounts
            .update_display_name(&caller, &id, &user.display_name, &user.etag, &client)
            .await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(user_to_proto(&updated)),
        }))
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let (name, etag) = (&request.get_ref().name, &request.get_ref().etag);
        let user = self
            .change_standing(&request, name, etag, Standing::Disable)
            .await?;
        Ok(Response::new(pb::DisableUserResponse { user }))
    }

    async fn enable_user(
        &self,
        request: Request<pb::EnableUserRequest>,
    ) -> Result<Response<pb::EnableUserResponse>, Status> {
        let (name, etag) = (&request.get_ref().name, &request.get_ref().etag);
        let user = self
            .change_standing(&request, name, etag, Standing::Enable)
            .await?;
        Ok(Response::new(pb::EnableUserResponse { user }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let (name, etag) = (&request.get_ref().name, &request.get_ref().etag);
        let user = self
            .change_standing(&request, name, etag, Standing::Delete)
            .await?;
        Ok(Response::new(pb::DeleteUserResponse { user }))
    }

    async fn undelete_user(
        &self,
        request: Request<pb::UndeleteUserRequest>,
    ) -> Result<Response<pb::UndeleteUserResponse>, Status> {
        let (name, etag) = (&request.get_ref().name, &request.get_ref().etag);
        let user = self
            .change_standing(&request, name, etag, Standing::Undelete)
            .await?;
        Ok(Response::new(pb::UndeleteUserResponse { user }))
    }

    async fn change_email(
        &self,
        request: Request<pb::ChangeEmailRequest>,
    ) -> Result<Response<pb::ChangeEmailResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let request = request.into_inner();
        let user = self
            .accounts
            .change_email(
                &caller,
                &request.current_password,
                &request.new_email,
                &client,
            )
            .await?;
        Ok(Response::new(pb::ChangeEmailResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn switch_organization(
        &self,
        request: Request<pb::SwitchOrganizationRequest>,
    ) -> Result<Response<pb::SwitchOrganizationResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let organization =
            OrganizationName::parse("organization", &request.get_ref().organization)?;
        let tokens = self
            .accounts
            .switch_organization(&caller, &organization.id, &client)
            .await?;
        Ok(Response::new(pb::SwitchOrganizationResponse {
            tokens: Some(tokens_to_proto(tokens)),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let id = user_id_from_name("parent", &request.parent, &caller)?;
        if id != caller.id {
            return Err(Error::not_found("user").into());
        }
        let size = page_size(request.page_size, 50, 100)? as usize;
        let query = format!("sessions:{id}");
        let offset: usize = self
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?
            .unwrap_or(0);
        let sessions = self.accounts.sessions(&caller).await?;
        let page: Vec<_> = sessions.iter().skip(offset).take(size).collect();
        let next = offset + page.len();
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: page
                .iter()
                .map(|s| session_to_proto(s, caller.session_id.as_deref()))
                .collect(),
            next_page_token: if next < sessions.len() {
                self.page_tokens.encode(query.as_bytes(), &next)
            } else {
                String::new()
            },
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let name = request.into_inner().name;
        let name = name.replacen("users/me/", &format!("{}/", UserName::new(&caller.id)), 1);
        let session = SessionName::parse("name", &name)?;
        if session.user != caller.id {
            return Err(Error::not_found("session").into());
        }
        self.accounts
            .revoke_session(&caller, &session.id, &client)
            .await?;
        Ok(Response::new(pb::RevokeSessionResponse::default()))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            keys: self
                .keys
                .published()
                .into_iter()
                .map(pb::Jwk::from)
                .collect(),
        }))
    }

    async fn get_open_id_configuration(
        &self,
        _request: Request<pb::GetOpenIdConfigurationRequest>,
    ) -> Result<Response<pb::GetOpenIdConfigurationResponse>, Status> {
        let base = self.public_base_url.trim_end_matches('/');
        Ok(Response::new(pb::GetOpenIdConfigurationResponse {
            issuer: self.issuer.clone(),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            token_endpoint: format!("{base}/v1/auth/refresh"),
            userinfo_endpoint: format!("{base}/v1/me"),
            id_token_signing_alg_values_supported: vec!["EdDSA".into()],
            subject_types_supported: vec!["public".into()],
            claims_supported: ["iss", "sub", "aud", "exp", "iat", "sid", "org", "amr"]
                .into_iter()
                .map(String::from)
                .collect(),
        }))
    }
}
