//! Ownership transfers: the owner names a member, who receives a
//! single-use, expiring token by email and accepts with it. On acceptance
//! the target becomes the owner and the former owner an admin (the rbac
//! service applies the role change from `ownership.transferred`).
//!
//! The token is 32 random bytes, shown only in the email and stored as its
//! SHA-256; a wrong, used or expired token is INVALID_ARGUMENT, compared in
//! constant time.

use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::names::{OrganizationName, OwnershipTransferName, UserName};
use tenantry_kit::secret::{hash_token, new_token, tokens_equal};
use tenantry_mail::Mail;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::organization::v1 as pb;

use crate::access::{Caller, Object};
use crate::convert::transfer_to_proto;
use crate::error::Error as Refusal;
use crate::store::{OrganizationRow, TransferRow};
use crate::{Core, NAME, change, not_found, target, timestamp};
use tenantry_kit::permission::Permission;

const KIND: &str = "ownership transfer";
/// How long a target has to accept when the owner does not say.
const DEFAULT_TTL_SECS: i64 = 7 * 86_400;
/// The longest a transfer may wait.
const MAX_TTL_SECS: i64 = 30 * 86_400;

/// How a pending transfer ends without being accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The owner who started it withdraws it.
    Cancel,
    /// The target refuses it.
    Decline,
}

fn transfer_ids(name: &str) -> Result<(String, String)> {
    let name = OwnershipTransferName::parse("name", name)?;
    Ok((name.organization, name.id))
}

impl Core {
    pub(crate) async fn start_transfer(
        &self,
        caller: &Caller,
        request: &pb::TransferOwnershipRequest,
    ) -> Result<pb::OwnershipTransfer> {
        crate::validate::request_id(&request.request_id)?;
        let organization_id = OrganizationName::parse("name", &request.name)?.id;
        let target_id = UserName::parse("new_owner", &request.new_owner)?.id;
        let ttl_secs = match &request.ttl {
            None => DEFAULT_TTL_SECS,
            Some(ttl) if ttl.seconds >= 60 && ttl.seconds <= MAX_TTL_SECS => ttl.seconds,
            Some(_) => {
                return Err(Error::invalid_field(
                    "ttl",
                    "must be from one minute to 30 days",
                ));
            }
        };
        let org = self.readable_organization(caller, &organization_id).await?;
        if !caller.is_user() || org.owner_id != caller.id() {
            return Err(Refusal::OwnerRequired.into());
        }
        if org.is_deleted() {
            return Err(Refusal::TransferOfDeletedOrganization.into());
        }
        crate::validate::check_etag(&request.etag, org.version)?;
        if target_id == caller.id() {
            return Err(Error::invalid_field("new_owner", "is already the owner"));
        }
        let caller_name = caller.resource_name();
        if let Some(id) = self
            .replay(&caller_name, "TransferOwnership", &request.request_id)
            .await?
        {
            return self.transfer_view(&organization_id, &id).await;
        }
        let member = self
            .access
            .member(caller, &organization_id, &target_id)
            .await?
            .ok_or(Refusal::TargetNotAMember)?;

        let now = now_micros();
        let token = new_token();
        let row = TransferRow {
            id: new_id().to_string(),
            organization_id: organization_id.clone(),
            from_user_id: caller.id().to_string(),
            to_user_id: target_id.clone(),
            token_hash: hash_token(&token),
            state: "pending".into(),
            created_at_us: now,
            expires_at_us: now + ttl_secs * 1_000_000,
            ended_at_us: None,
        };
        let mut tx = self.begin().await?;
        if let Some(id) = self
            .store
            .replayed(
                &mut tx,
                &caller_name,
                "TransferOwnership",
                &request.request_id,
            )
            .await?
        {
            drop(tx);
            return self.transfer_view(&organization_id, &id).await;
        }
        self.ensure_unchanged(&mut tx, &org).await?;
        // Starting a transfer withdraws the one that was pending.
        for pending in self
            .store
            .pending_transfers(&mut tx, &organization_id)
            .await?
        {
            self.store
                .end_transfer(&mut tx, &pending.id, "cancelled", now)
                .await?;
            self.emit_canceled(&mut tx, caller, &org, &pending, false)
                .await?;
        }
        self.store.insert_transfer(&mut tx, &row).await?;
        self.store
            .remember_request(
                &mut tx,
                &caller_name,
                "TransferOwnership",
                &request.request_id,
                &row.id,
            )
            .await?;
        self.emit(
            &mut tx,
            caller,
            ("organization", &organization_id),
            (&organization_id, &org.root_id),
            &events::OwnershipTransferRequested {
                organization_id: organization_id.clone(),
                from_user_id: row.from_user_id.clone(),
                to_user_id: row.to_user_id.clone(),
                expire_time: Some(timestamp(row.expires_at_us)),
            },
            Vec::new(),
            vec![
                target("organization", &organization_id, &org.display_name),
                target("user", &target_id, ""),
            ],
        )
        .await?;
        self.commit(tx).await?;

        // After the commit: a mail for a transfer that did not happen would
        // be worse than a transfer whose mail failed (the owner can start it
        // again, which withdraws this one).
        let transfer = transfer_to_proto(&row, now);
        let mail = Mail {
            to: member.email.clone(),
            kind: "ownership_transfer",
            subject: format!("You are invited to own {}", org.display_name),
            body: format!(
                "You have been asked to become the owner of {}.\n\ntransfer: {}\ntoken: {}\n\nAccept it before {} with AcceptOwnershipTransfer.\n",
                org.display_name,
                transfer.name,
                token,
                chrono::DateTime::from_timestamp_micros(row.expires_at_us)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            ),
        };
        if let Err(error) = self.mailer.send(mail).await {
            tracing::warn!(error = %error, organization_id = %organization_id, "ownership transfer email was not sent");
        }
        Ok(transfer)
    }

    async fn transfer_view(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<pb::OwnershipTransfer> {
        let row = self.transfer_row(organization_id, id).await?;
        Ok(transfer_to_proto(&row, now_micros()))
    }

    /// A transfer of an organization, or NOT_FOUND.
    async fn transfer_row(&self, organization_id: &str, id: &str) -> Result<TransferRow> {
        let mut tx = self.begin().await?;
        let row = self.store.transfer(&mut tx, organization_id, id).await?;
        drop(tx);
        row.ok_or_else(|| not_found(KIND))
    }

    /// A transfer the caller may see: its two parties, and whoever manages
    /// the organization's settings.
    async fn visible_transfer(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(OrganizationRow, TransferRow)> {
        let (organization_id, id) = transfer_ids(name)?;
        let org = self.readable_organization(caller, &organization_id).await?;
        let row = self.transfer_row(&organization_id, &id).await?;
        let party =
            caller.is_user() && (caller.id() == row.from_user_id || caller.id() == row.to_user_id);
        if !party
            && !self
                .access
                .check(
                    caller,
                    Object::Organization(&organization_id),
                    Permission::ORGANIZATION_SETTINGS_MANAGE,
                )
                .await?
        {
            return Err(not_found(KIND));
        }
        Ok((org, row))
    }

    pub(crate) async fn get_transfer(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<pb::OwnershipTransfer> {
        let (_, row) = self.visible_transfer(caller, name).await?;
        Ok(transfer_to_proto(&row, now_micros()))
    }

    pub(crate) async fn accept_transfer(
        &self,
        caller: &Caller,
        name: &str,
        token: &str,
    ) -> Result<(pb::OwnershipTransfer, OrganizationRow)> {
        let (organization_id, id) = transfer_ids(name)?;
        if token.is_empty() {
            return Err(Error::invalid_field("token", "is required"));
        }
        // The target may not be able to read the organization through
        // rbac yet in every setup, but is always a member: the transfer
        // itself is what authorizes them, after the membership check.
        let org = self.organization(&organization_id).await?;
        let row = self.transfer_row(&organization_id, &id).await?;
        if !caller.is_user() || caller.id() != row.to_user_id {
            return Err(not_found(KIND));
        }
        let now = now_micros();
        if row.state != "pending"
            || row.expires_at_us <= now
            || !tokens_equal(&row.token_hash, &hash_token(token))
        {
            return Err(Refusal::InvalidTransferToken.into());
        }
        if org.is_deleted() {
            return Err(Refusal::TransferOfDeletedOrganization.into());
        }
        if self
            .access
            .member(caller, &organization_id, caller.id())
            .await?
            .is_none()
        {
            return Err(Refusal::NoLongerAMember.into());
        }
        let mut tx = self.begin().await?;
        if !self
            .store
            .end_transfer(&mut tx, &id, "accepted", now)
            .await?
        {
            return Err(Refusal::InvalidTransferToken.into());
        }
        let current = self
            .store
            .organization_in(&mut tx, &organization_id)
            .await?
            .ok_or_else(|| not_found("organization"))?;
        if current.owner_id != row.from_user_id {
            // Ownership moved some other way since the transfer started.
            return Err(Refusal::OwnerChanged.into());
        }
        let mut next = current.clone();
        next.owner_id = row.to_user_id.clone();
        next.updated_at_us = now;
        next.version += 1;
        self.store.update_organization(&mut tx, &next).await?;
        self.emit(
            &mut tx,
            caller,
            ("organization", &organization_id),
            (&organization_id, &next.root_id),
            &events::OwnershipTransferred {
                organization_id: organization_id.clone(),
                old_owner_user_id: row.from_user_id.clone(),
                new_owner_user_id: row.to_user_id.clone(),
            },
            vec![change(
                "owner",
                UserName::new(&row.from_user_id).to_string(),
                UserName::new(&row.to_user_id).to_string(),
            )],
            vec![target("organization", &organization_id, &next.display_name)],
        )
        .await?;
        self.commit(tx).await?;
        let mut ended = row;
        ended.state = "accepted".into();
        ended.ended_at_us = Some(now);
        Ok((transfer_to_proto(&ended, now), next))
    }

    pub(crate) async fn end_transfer(
        &self,
        caller: &Caller,
        name: &str,
        ending: Ending,
    ) -> Result<pb::OwnershipTransfer> {
        let (organization_id, id) = transfer_ids(name)?;
        let org = self.organization(&organization_id).await?;
        let mut tx = self.begin().await?;
        let row = self
            .store
            .transfer(&mut tx, &organization_id, &id)
            .await?
            .ok_or_else(|| not_found(KIND))?;
        let party = match ending {
            Ending::Cancel => &row.from_user_id,
            Ending::Decline => &row.to_user_id,
        };
        if !caller.is_user() || caller.id() != party {
            drop(tx);
            // The other party sees it exists but may not do this; anyone
            // else learns nothing.
            self.visible_transfer(caller, name).await?;
            return Err(Error::permission_denied(match ending {
                Ending::Cancel => Permission::ORGANIZATION_OWNERSHIP_TRANSFER.as_str(),
                // Only the named recipient may decline; no role grants it.
                Ending::Decline => "organization.ownership.accept",
            })
            .with_domain(NAME));
        }
        let now = now_micros();
        let state = match ending {
            Ending::Cancel => "cancelled",
            Ending::Decline => "declined",
        };
        if row.expires_at_us <= now || !self.store.end_transfer(&mut tx, &id, state, now).await? {
            return Err(Refusal::TransferNotPending.into());
        }
        self.emit_canceled(&mut tx, caller, &org, &row, false)
            .await?;
        self.commit(tx).await?;
        let mut ended = row;
        ended.state = state.into();
        ended.ended_at_us = Some(now);
        Ok(transfer_to_proto(&ended, now))
    }

    async fn emit_canceled(
        &self,
        tx: &mut tenantry_kit::write::Write,
        caller: &Caller,
        org: &OrganizationRow,
        row: &TransferRow,
        expired: bool,
    ) -> Result<()> {
        self.emit(
            tx,
            caller,
            ("organization", &org.id),
            (&org.id, &org.root_id),
            &events::OwnershipTransferCanceled {
                organization_id: org.id.clone(),
                to_user_id: row.to_user_id.clone(),
                expired,
            },
            Vec::new(),
            vec![target("organization", &org.id, &org.display_name)],
        )
        .await
    }
}
