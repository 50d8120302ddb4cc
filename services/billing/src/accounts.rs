//! Billing accounts: who pays, per workspace, under the workspace's billing
//! mode (fixed when the organization service created the workspace):
//! SINGLE holds one account, ASSIGNED one per root organization, POOLED
//! any number, each contributing its subscriptions to the shared pool.
//!
//! Accounts belong to a workspace, and rbac knows organizations: a caller
//! may see an account when they hold `billing.read` on its organization
//! (ASSIGNED) or on any root organization of the workspace.

use serde::{Deserialize, Serialize};
use tenantry_kit::access::Caller;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{BillingAccountName, OrganizationName, SubscriptionName, WorkspaceName};
use tenantry_kit::request::{check_etag, update_mask};
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::catalog::Limits;
use crate::convert::account_view;
use crate::error::Error as Refusal;
use crate::store::{self, AccountRow};
use crate::subscriptions::{State, state_at};
use crate::{Core, not_found, respond, serve};

/// The account id of an optional account name (empty means none).
pub(crate) fn optional_account_id(field: &str, name: &str) -> Result<Option<String>> {
    if name.is_empty() {
        return Ok(None);
    }
    Ok(Some(BillingAccountName::parse(field, name)?.id))
}

/// Checks the fields people type.
fn validate(account: &pb::BillingAccount, paths: Option<&[&str]>) -> Result<()> {
    let wants = |field: &str| paths.is_none_or(|p| p.contains(&field));
    let name_len = account.display_name.chars().count();
    if wants("display_name") && (account.display_name.trim().is_empty() || name_len > 100) {
        return Err(Error::invalid_field(
            "billing_account.display_name",
            "must be 1 to 100 characters",
        ));
    }
    let email = account.billing_email.trim();
    let plausible = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if wants("billing_email") && !plausible {
        return Err(Error::invalid_field(
            "billing_account.billing_email",
            "must be an email address",
        ));
    }
    if wants("billing_address") && account.billing_address.chars().count() > 1000 {
        return Err(Error::invalid_field(
            "billing_account.billing_address",
            "must be at most 1000 characters",
        ));
    }
    if wants("tax_id") && account.tax_id.chars().count() > 64 {
        return Err(Error::invalid_field(
            "billing_account.tax_id",
            "must be at most 64 characters",
        ));
    }
    Ok(())
}

/// A page cursor of accounts: (created, id).
#[derive(Debug, Serialize, Deserialize)]
struct After(i64, String);

impl Core {
    /// The workspace's billing mode, or NOT_FOUND when billing has not
    /// heard of the workspace.
    async fn mode(&self, workspace_id: &str) -> Result<String> {
        store::workspace_mode(self.store.pool(), workspace_id)
            .await?
            .ok_or_else(|| not_found("workspace"))
    }

    /// Authorizes `need` on a workspace's billing: on `organization` when
    /// given (an ASSIGNED account's), on any of its roots otherwise.
    pub(crate) async fn authorize_workspace(
        &self,
        caller: &Caller,
        workspace_id: &str,
        organization: Option<&str>,
        need: Need,
        kind: &str,
    ) -> Result<()> {
        // The workspace named is the billing tenant (see
        // `tenantry_kit::tenancy`); its roots decide who may act on it.
        tenancy::enter(workspace_id);
        let roots = match organization {
            Some(organization) => vec![organization.to_string()],
            None => store::workspace_roots(self.store.pool(), workspace_id).await?,
        };
        if roots.is_empty() && !caller.is_internal() {
            return Err(not_found(kind));
        }
        let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
        self.authorize(caller, &roots, need, kind).await
    }

    /// An account the caller may `need`.
    pub(crate) async fn account_for(
        &self,
        caller: &Caller,
        name: &str,
        field: &str,
        need: Need,
    ) -> Result<AccountRow> {
        let BillingAccountName {
            workspace: workspace_id,
            id,
        } = BillingAccountName::parse(field, name)?;
        tenancy::enter(&workspace_id);
        let account = store::account(self.store.pool(), &workspace_id, &id).await?;
        // Authorize before answering, so "no such account" and "not yours"
        // look the same.
        let organization = account.as_ref().and_then(|a| a.organization_id.clone());
        self.authorize_workspace(
            caller,
            &workspace_id,
            organization.as_deref(),
            need,
            "billing account",
        )
        .await?;
        account.ok_or_else(|| not_found("billing account"))
    }
}

/// The `BillingAccountService` handler.
#[derive(Debug, Clone)]
pub struct BillingAccountApi(pub Core);

impl BillingAccountApi {
    pub(crate) async fn create(
        &self,
        caller: Caller,
        request: pb::CreateBillingAccountRequest,
    ) -> Result<pb::BillingAccount> {
        let core = &self.0;
        let workspace_id = WorkspaceName::parse("parent", &request.parent)?.id;
        let given = request
            .billing_account
            .ok_or_else(|| Error::invalid_field("billing_account", "is required"))?;
        validate(&given, None)?;
        if !(given.currency_code.len() == 3
            && given.currency_code.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Err(Error::invalid_field(
                "billing_account.currency_code",
                "must be an ISO 4217 code such as `USD`",
            ));
        }
        tenantry_kit::request::request_id(&request.request_id)?;
        let organization = match given.organization.as_str() {
            "" => None,
            name => Some(OrganizationName::parse("billing_account.organization", name)?.id),
        };
        core.authorize_workspace(
            &caller,
            &workspace_id,
            organization.as_deref(),
            Need::Manage,
            "workspace",
        )
        .await?;
        let mode = core.mode(&workspace_id).await?;
        let now = now_micros();
        let mut tx = core.begin().await?;
        if let Some(id) = store::REQUESTS
            .replayed(
                &mut **tx,
                &caller.resource_name(),
                "CreateBillingAccount",
                &request.request_id,
            )
            .await?
        {
            drop(tx);
            let account = store::account(core.store.pool(), &workspace_id, &id)
                .await?
                .ok_or_else(|| not_found("billing account"))?;
            return Ok(account_view(&account, &mode));
        }
        let existing =
            store::accounts(&mut **tx, &workspace_id, (i64::MIN, ""), false, 1000).await?;
        match (mode.as_str(), &organization) {
            ("assigned", None) => {
                return Err(Error::invalid_field(
                    "billing_account.organization",
                    "is required in an ASSIGNED workspace: the top-level organization the account pays for",
                ));
            }
            ("assigned", Some(organization)) => {
                let node = store::node(&mut **tx, organization).await?;
                if node.as_ref().is_none_or(|n| {
                    n.workspace_id != workspace_id || n.parent_id.is_some() || n.deleted
                }) {
                    return Err(Refusal::NotARootOfWorkspace.into());
                }
                if existing
                    .iter()
                    .any(|a| a.organization_id.as_deref() == Some(organization))
                {
                    return Err(Refusal::OrganizationHasAccount.into());
                }
            }
            (_, Some(_)) => {
                return Err(Error::invalid_field(
                    "billing_account.organization",
                    "is only set in ASSIGNED workspaces",
                ));
            }
            ("single", None) if !existing.is_empty() => {
                return Err(Refusal::SingleAccountExists.into());
            }
            _ => {}
        }
        let account = AccountRow {
            id: tenantry_kit::id::new_id().to_string(),
            workspace_id: workspace_id.clone(),
            display_name: given.display_name.trim().to_string(),
            currency_code: given.currency_code.clone(),
            organization_id: organization.clone(),
            billing_email: given.billing_email.trim().to_lowercase(),
            billing_address: given.billing_address.clone(),
            tax_id: given.tax_id.clone(),
            provider: String::new(),
            provider_customer_id: String::new(),
            state: "active".into(),
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        store::save_account(&mut tx, &account).await?;
        store::REQUESTS
            .remember(
                &mut tx,
                &caller.resource_name(),
                "CreateBillingAccount",
                &request.request_id,
                &account.id,
            )
            .await?;
        // The log it belongs in: the organization it pays for, or the one
        // root of its workspace; an account of a workspace of several roots
        // belongs to none of them alone.
        let logged_in = match &organization {
            Some(organization) => Some(organization.clone()),
            None => match store::workspace_roots(&mut **tx, &workspace_id)
                .await?
                .as_slice()
            {
                [root] => Some(root.clone()),
                _ => None,
            },
        };
        core.emit(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            ("billing_account", &account.id),
            logged_in.as_deref().map(|org| (org, org)),
            &events::BillingAccountCreated {
                billing_account_id: account.id.clone(),
                workspace_id: workspace_id.clone(),
                display_name: account.display_name.clone(),
                currency_code: account.currency_code.clone(),
                organization_id: organization.unwrap_or_default(),
            },
        )
        .await?;
        core.commit(tx).await?;
        Ok(account_view(&account, &mode))
    }

    async fn get(
        &self,
        caller: Caller,
        request: pb::GetBillingAccountRequest,
    ) -> Result<pb::BillingAccount> {
        let core = &self.0;
        let account = core
            .account_for(&caller, &request.name, "name", Need::Read)
            .await?;
        Ok(account_view(
            &account,
            &core.mode(&account.workspace_id).await?,
        ))
    }

    async fn list(
        &self,
        caller: Caller,
        request: pb::ListBillingAccountsRequest,
    ) -> Result<pb::ListBillingAccountsResponse> {
        let core = &self.0;
        let workspace_id = WorkspaceName::parse("parent", &request.parent)?.id;
        let size = tenantry_kit::page_token::page_size(request.page_size, 50, 100)?;
        let query = format!("ListBillingAccounts|{workspace_id}|{}", request.show_closed);
        let after: Option<After> = core
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?;
        core.authorize_workspace(&caller, &workspace_id, None, Need::Read, "workspace")
            .await?;
        let mode = core.mode(&workspace_id).await?;
        let after = after.unwrap_or(After(i64::MIN, String::new()));
        let mut rows = store::accounts(
            core.store.pool(),
            &workspace_id,
            (after.0, &after.1),
            request.show_closed,
            i64::from(size) + 1,
        )
        .await?;
        let next_page_token = if rows.len() > size as usize {
            rows.truncate(size as usize);
            let last = rows.last().expect("a full page");
            core.page_tokens.encode(
                query.as_bytes(),
                &After(last.created_at_us, last.id.clone()),
            )
        } else {
            String::new()
        };
        Ok(pb::ListBillingAccountsResponse {
            billing_accounts: rows.iter().map(|a| account_view(a, &mode)).collect(),
            next_page_token,
        })
    }

    async fn update(
        &self,
        caller: Caller,
        request: pb::UpdateBillingAccountRequest,
    ) -> Result<pb::BillingAccount> {
        let core = &self.0;
        let given = request
            .billing_account
            .ok_or_else(|| Error::invalid_field("billing_account", "is required"))?;
        let paths = update_mask(
            request.update_mask.as_ref(),
            &["display_name", "billing_email", "billing_address", "tax_id"],
        )?;
        validate(&given, Some(&paths))?;
        let before = core
            .account_for(&caller, &given.name, "billing_account.name", Need::Manage)
            .await?;
        let mut tx = core.begin().await?;
        let current = store::account(&mut **tx, &before.workspace_id, &before.id)
            .await?
            .ok_or_else(|| not_found("billing account"))?;
        if !given.etag.is_empty() {
            check_etag(&given.etag, current.version)?;
        }
        let mut after = current.clone();
        for path in &paths {
            match *path {
                "display_name" => after.display_name = given.display_name.trim().to_string(),
                "billing_email" => after.billing_email = given.billing_email.trim().to_lowercase(),
                "billing_address" => after.billing_address = given.billing_address.clone(),
                _ => after.tax_id = given.tax_id.clone(),
            }
        }
        after.version += 1;
        after.updated_at_us = now_micros();
        store::save_account(&mut tx, &after).await?;
        core.emit(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            ("billing_account", &after.id),
            None,
            &events::BillingAccountUpdated {
                billing_account_id: after.id.clone(),
                workspace_id: after.workspace_id.clone(),
                changed_fields: paths.iter().map(|p| p.to_string()).collect(),
            },
        )
        .await?;
        core.commit(tx).await?;
        Ok(account_view(&after, &core.mode(&after.workspace_id).await?))
    }

    async fn pool(
        &self,
        caller: Caller,
        request: pb::ListPoolContributionsRequest,
    ) -> Result<pb::ListPoolContributionsResponse> {
        let core = &self.0;
        let workspace_id = WorkspaceName::parse("parent", &request.parent)?.id;
        let size = tenantry_kit::page_token::page_size(request.page_size, 50, 100)? as usize;
        let query = format!("ListPoolContributions|{workspace_id}");
        let offset: usize = core
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?
            .unwrap_or(0);
        core.authorize_workspace(&caller, &workspace_id, None, Need::Read, "workspace")
            .await?;
        let pool = core.store.pool();
        let now = now_micros();
        let accounts = store::accounts(pool, &workspace_id, (i64::MIN, ""), true, 10_000).await?;
        let subscriptions =
            store::subscriptions_by(pool, store::SubscriptionKey::Workspace, &workspace_id).await?;
        let mut contributions = Vec::with_capacity(accounts.len());
        let mut pool_limits: Option<Limits> = None;
        for account in &accounts {
            let mut names = Vec::new();
            let mut limits: Option<Limits> = None;
            let mut seats = 0i64;
            for s in subscriptions.iter().filter(|s| {
                s.billing_account_id.as_deref() == Some(account.id.as_str())
                    && state_at(s, now) != State::Canceled
            }) {
                let (plan, sub_limits) = core.subscription_limits(Some(s), now).await?;
                names.push(SubscriptionName::new(&s.organization_id).to_string());
                seats = seats
                    .saturating_add(plan.body.included_seats)
                    .saturating_add(s.extra_seats);
                limits = Some(limits.map_or(sub_limits.clone(), |l| l.plus(&sub_limits)));
            }
            if let Some(limits) = &limits {
                pool_limits = Some(pool_limits.map_or(limits.clone(), |p| p.plus(limits)));
            }
            contributions.push((account, names, limits, seats));
        }
        let total_seats: i64 = contributions.iter().map(|c| c.3).sum();
        let page: Vec<pb::PoolContribution> = contributions
            .iter()
            .skip(offset)
            .take(size)
            .map(|(account, names, limits, seats)| pb::PoolContribution {
                billing_account: BillingAccountName::new(&account.workspace_id, &account.id)
                    .to_string(),
                subscriptions: names.clone(),
                contributed_limits: Some(limits.clone().unwrap_or_default().to_pb()),
                contributed_seats: *seats,
                seat_share_basis_points: if total_seats > 0 {
                    (i128::from(*seats) * 10_000 / i128::from(total_seats)) as i32
                } else {
                    0
                },
            })
            .collect();
        let next_page_token = if offset + size < contributions.len() {
            core.page_tokens.encode(query.as_bytes(), &(offset + size))
        } else {
            String::new()
        };
        Ok(pb::ListPoolContributionsResponse {
            pool_contributions: page,
            pool_limits: Some(
                pool_limits
                    .unwrap_or_else(|| core.free_plan().body.limits.clone())
                    .to_pb(),
            ),
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl pb::billing_account_service_server::BillingAccountService for BillingAccountApi {
    async fn create_billing_account(
        &self,
        request: Request<pb::CreateBillingAccountRequest>,
    ) -> std::result::Result<Response<pb::CreateBillingAccountResponse>, Status> {
        let billing_account =
            Some(serve(request, |caller, request| self.create(caller, request)).await?);
        Ok(Response::new(pb::CreateBillingAccountResponse {
            billing_account,
        }))
    }

    async fn get_billing_account(
        &self,
        request: Request<pb::GetBillingAccountRequest>,
    ) -> std::result::Result<Response<pb::GetBillingAccountResponse>, Status> {
        let billing_account =
            Some(serve(request, |caller, request| self.get(caller, request)).await?);
        Ok(Response::new(pb::GetBillingAccountResponse {
            billing_account,
        }))
    }

    async fn list_billing_accounts(
        &self,
        request: Request<pb::ListBillingAccountsRequest>,
    ) -> std::result::Result<Response<pb::ListBillingAccountsResponse>, Status> {
        respond(request, |caller, r| self.list(caller, r)).await
    }

    async fn update_billing_account(
        &self,
        request: Request<pb::UpdateBillingAccountRequest>,
    ) -> std::result::Result<Response<pb::UpdateBillingAccountResponse>, Status> {
        let billing_account =
            Some(serve(request, |caller, request| self.update(caller, request)).await?);
        Ok(Response::new(pb::UpdateBillingAccountResponse {
            billing_account,
        }))
    }

    async fn list_pool_contributions(
        &self,
        request: Request<pb::ListPoolContributionsRequest>,
    ) -> std::result::Result<Response<pb::ListPoolContributionsResponse>, Status> {
        respond(request, |caller, r| self.pool(caller, r)).await
    }
}
