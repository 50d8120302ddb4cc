//! The `ServiceAccountService` gRPC handler: machine identities for internal
//! services, managed by platform administrators, signing in with client
//! credentials.

use tenantry_kit::error::Error;
use tenantry_kit::names::{CredentialName, ServiceAccountName};
use tenantry_kit::page_token::{PageTokens, page_size};
use tenantry_proto::tenantry::identity::v1 as pb;
use tonic::{Request, Response, Status};

use crate::accounts::{Accounts, timestamp};
use crate::api::{client_info, optional_organization, principal};
use crate::convert::{account_to_proto, credential_to_proto, organization_name_of};

/// The handler.
#[derive(Debug, Clone)]
pub struct ServiceAccountApi {
    pub accounts: Accounts,
    pub page_tokens: PageTokens,
}

#[tonic::async_trait]
impl pb::service_account_service_server::ServiceAccountService for ServiceAccountApi {
    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::CreateServiceAccountResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let request = request.into_inner();
        let account = request
            .service_account
            .ok_or_else(|| Error::invalid_field("service_account", "is required"))?;
        let created = self
            .accounts
            .create_service_account(
                &caller,
                &account.display_name,
                &account.description,
                &request.request_id,
                &client,
            )
            .await?;
        Ok(Response::new(pb::CreateServiceAccountResponse {
            service_account: Some(account_to_proto(&created)),
        }))
    }

    async fn get_service_account(
        &self,
        request: Request<pb::GetServiceAccountRequest>,
    ) -> Result<Response<pb::GetServiceAccountResponse>, Status> {
        let caller = principal(&request)?;
        let id = ServiceAccountName::parse("name", &request.get_ref().name)?.id;
        let account = self.accounts.service_account(&caller, &id).await?;
        Ok(Response::new(pb::GetServiceAccountResponse {
            service_account: Some(account_to_proto(&account)),
        }))
    }

    async fn list_service_accounts(
        &self,
        request: Request<pb::ListServiceAccountsRequest>,
    ) -> Result<Response<pb::ListServiceAccountsResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let size = page_size(request.page_size, 50, 1000)?;
        let after: String = self
            .page_tokens
            .decode(b"service_accounts", &request.page_token)?
            .unwrap_or_default();
        let mut accounts = self
            .accounts
            .service_accounts(&caller, &after, i64::from(size) + 1)
            .await?;
        let more = accounts.len() > size as usize;
        accounts.truncate(size as usize);
        let next_page_token = match (more, accounts.last()) {
            (true, Some(last)) => self.page_tokens.encode(b"service_accounts", &last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListServiceAccountsResponse {
            service_accounts: accounts.iter().map(account_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_service_account(
        &self,
        request: Request<pb::DeleteServiceAccountRequest>,
    ) -> Result<Response<pb::DeleteServiceAccountResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let id = ServiceAccountName::parse("name", &request.get_ref().name)?.id;
        self.accounts
            .delete_service_account(&caller, &id, &request.get_ref().etag, &client)
            .await?;
        Ok(Response::new(pb::DeleteServiceAccountResponse {}))
    }

    async fn create_service_account_credential(
        &self,
        request: Request<pb::CreateServiceAccountCredentialRequest>,
    ) -> Result<Response<pb::CreateServiceAccountCredentialResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let request = request.into_inner();
        let id = ServiceAccountName::parse("parent", &request.parent)?.id;
        let credential = request.credential.unwrap_or_default();
        let expires = credential
            .expire_time
            .map(|t| t.seconds.saturating_mul(1_000_000) + i64::from(t.nanos) / 1000);
        let (credential, client_secret) = self
            .accounts
            .create_credential(
                &caller,
                &id,
                crate::admin::NewCredential {
                    display_name: &credential.display_name,
                    expires_at_us: expires,
                    request_id: &request.request_id,
                },
                &client,
            )
            .await?;
        Ok(Response::new(pb::CreateServiceAccountCredentialResponse {
            credential: Some(credential_to_proto(&credential)),
            client_secret,
        }))
    }

    async fn list_service_account_credentials(
        &self,
        request: Request<pb::ListServiceAccountCredentialsRequest>,
    ) -> Result<Response<pb::ListServiceAccountCredentialsResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let id = ServiceAccountName::parse("parent", &request.parent)?.id;
        let size = page_size(request.page_size, 50, 1000)? as usize;
        let query = format!("credentials|{id}");
        let offset: usize = self
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?
            .unwrap_or(0);
        let credentials = self.accounts.credentials(&caller, &id).await?;
        let page: Vec<_> = credentials.iter().skip(offset).take(size).collect();
        let next = offset + page.len();
        Ok(Response::new(pb::ListServiceAccountCredentialsResponse {
            credentials: page.into_iter().map(credential_to_proto).collect(),
            next_page_token: if next < credentials.len() {
                self.page_tokens.encode(query.as_bytes(), &next)
            } else {
                String::new()
            },
        }))
    }

    async fn delete_service_account_credential(
        &self,
        request: Request<pb::DeleteServiceAccountCredentialRequest>,
    ) -> Result<Response<pb::DeleteServiceAccountCredentialResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let credential = CredentialName::parse("name", &request.get_ref().name)?;
        self.accounts
            .delete_credential(
                &caller,
                &credential.service_account,
                &credential.id,
                &client,
            )
            .await?;
        Ok(Response::new(pb::DeleteServiceAccountCredentialResponse {}))
    }

    async fn issue_service_account_token(
        &self,
        request: Request<pb::IssueServiceAccountTokenRequest>,
    ) -> Result<Response<pb::IssueServiceAccountTokenResponse>, Status> {
        let request = request.into_inner();
        let organization = optional_organization("organization", &request.organization)?;
        let token = self
            .accounts
            .issue_service_token(&request.client_id, &request.client_secret, organization)
            .await?;
        let now = tenantry_kit::db::now_micros();
        let remaining = (token.expires_at_us - now).max(0);
        Ok(Response::new(pb::IssueServiceAccountTokenResponse {
            access_token: token.access_token,
            token_type: "Bearer".into(),
            expires_in: Some(prost_types::Duration {
                seconds: remaining / 1_000_000,
                nanos: 0,
            }),
            expire_time: Some(timestamp(token.expires_at_us)),
            service_account: ServiceAccountName::new(&token.service_account_id).to_string(),
            organization: organization_name_of(token.organization_id.as_deref()),
        }))
    }
}
