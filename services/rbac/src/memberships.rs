//! `MembershipService`: who is in an organization, with which roles.
//!
//! The owner role is never assigned or taken here: an organization gets its
//! owner at creation and changes it only by an ownership transfer (both
//! arrive as events from the organization service). Removing a member takes
//! all their access at once: their roles, their teams in the organization
//! and the project grants made to them there.

use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::BuiltInRole;
use tenantry_kit::names::{MembershipName, OrganizationName, UserName};
use tenantry_kit::outbox::NewEvent;
use tenantry_kit::page_token::page_size;
use tenantry_kit::permission::Permission;
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::authz::v1::ZedToken;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::role_event;
use crate::engine::{Change, GrantSubject};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::store::MembershipRow;
use crate::{Caller, Core, NAME};

const OWNER: &str = BuiltInRole::Owner.name();

/// The `MembershipService` handler.
#[derive(Debug, Clone)]
pub struct MembershipApi(pub Core);

pub use tenantry_kit::request::{check_etag, etag};

/// A membership's id in events: its organization's and its user's ids.
fn membership_id(m: &MembershipRow) -> String {
    format!("{}/{}", m.organization_id, m.user_id)
}

/// The event of a new membership; `invitation_id` is empty unless an
/// invitation made it.
pub(crate) fn membership_created(
    m: &MembershipRow,
    invitation_id: &str,
) -> events::MembershipCreated {
    events::MembershipCreated {
        membership_id: membership_id(m),
        organization_id: m.organization_id.clone(),
        user_id: m.user_id.clone(),
        user_display_name: String::new(),
        roles: m.roles.iter().map(|r| role_event(r)).collect(),
        invitation_id: invitation_id.to_string(),
    }
}

/// What the authorization index learns from a membership as it now stands.
pub(crate) fn membership_change(m: &MembershipRow) -> Change {
    Change::Membership {
        organization: m.organization_id.clone(),
        user: m.user_id.clone(),
        roles: m.roles.clone(),
    }
}

impl Core {
    /// The event `payload` about the membership `m`.
    pub(crate) async fn membership_event<M: tenantry_proto::EventType>(
        &self,
        caller: &Caller,
        m: &MembershipRow,
        payload: &M,
    ) -> NewEvent {
        let id = membership_id(m);
        self.event(caller, ("membership", &id), &m.organization_id, payload)
            .await
    }

    /// Refuses to add `user_id` directly to `organization_id` unless they
    /// joined its tree already (a member of one of its organizations, or an
    /// external user of one of its projects): nobody is made a member, or
    /// shown to an organization, without accepting an invitation first.
    /// The answer is the one for a user who does not exist, so that it
    /// tells an organization nothing about people outside it.
    pub(crate) async fn require_joined(&self, organization_id: &str, user_id: &str) -> Result<()> {
        let present = self.store.user_presence(user_id).await?;
        let index = self.index.read();
        let root = index.root_of(organization_id);
        if root.is_some() && present.iter().any(|o| index.root_of(o) == root) {
            return Ok(());
        }
        Err(Refusal::UserNotFound.into())
    }

    /// Checks a list of roles for an organization: at least one, no
    /// duplicates, built-in or a custom role of that organization, never
    /// the owner role.
    pub(crate) async fn valid_roles(
        &self,
        organization_id: &str,
        roles: &[String],
        field: &str,
    ) -> Result<()> {
        if roles.is_empty() {
            return Err(Error::invalid_field(field, "must name at least one role"));
        }
        let custom = self.store.roles(organization_id).await?;
        for (i, role) in roles.iter().enumerate() {
            if roles[..i].contains(role) {
                return Err(Error::invalid_field(
                    format!("{field}[{i}]"),
                    "is named twice",
                ));
            }
            if role == OWNER {
                return Err(Refusal::OwnerRoleReserved {
                    field: format!("{field}[{i}]"),
                }
                .into());
            }
            let built_in = BuiltInRole::of(role).is_some();
            if !built_in && !custom.iter().any(|c| c.name() == *role) {
                return Err(Error::invalid_field(
                    format!("{field}[{i}]"),
                    format!("`{role}` is not a role of this organization"),
                ));
            }
        }
        Ok(())
    }

    async fn create_membership(
        &self,
        caller: &Caller,
        r: pb::CreateMembershipRequest,
    ) -> Result<(MembershipRow, i64)> {
        let organization_id = OrganizationName::parse("parent", &r.parent)?.id;
        let input = r
            .membership
            .ok_or_else(|| Error::invalid_field("membership", "is required"))?;
        let user_id = UserName::parse("membership.user", &input.user)?.id;
        self.authorize(
            caller,
            ("organization", &organization_id),
            Permission::ORGANIZATION_MEMBERS_MANAGE,
            Permission::ORGANIZATION_READ,
            "organization",
        )
        .await?;
        if let Some(id) = self
            .store
            .replayed(&caller.principal.id, "CreateMembership", &r.request_id)
            .await?
            && let Some(existing) = self.store.membership(&organization_id, &id).await?
        {
            return Ok((existing, self.index.applied()));
        }
        if !self.organization_known(&organization_id) {
            return Err(Error::not_found("organization").with_domain(NAME));
        }
        self.valid_roles(&organization_id, &input.roles, "membership.roles")
            .await?;
        self.require_joined(&organization_id, &user_id).await?;
        // The organization's allowed domains bind every way in, not only
        // invitations.
        let organization = self
            .peers
            .organization(caller, &organization_id)
            .await?
            .ok_or_else(|| Error::not_found("organization").with_domain(NAME))?;
        if !organization.allowed_email_domains.is_empty() {
            let email = self
                .store
                .user(&user_id)
                .await?
                .map(|u| u.email)
                .unwrap_or_default();
            crate::invitations::email_domain_allowed(&organization.allowed_email_domains, &email)?;
        }
        // A new member takes a seat of the plan.
        if let Err(error) = self
            .peers
            .ensure_seat(
                caller,
                &organization_id,
                &format!("membership:{organization_id}/{user_id}"),
            )
            .await
        {
            self.record_denied(
                caller,
                &organization_id,
                Permission::ORGANIZATION_MEMBERS_MANAGE,
                &error,
            )
            .await;
            return Err(error);
        }
        let now = now_micros();
        let row = MembershipRow {
            organization_id: organization_id.clone(),
            user_id: user_id.clone(),
            roles: input.roles.clone(),
            invitation_id: None,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.store.begin().await?;
        if self
            .store
            .membership_in(&mut tx, &organization_id, &user_id)
            .await?
            .is_some()
        {
            return Err(Refusal::AlreadyMember.into());
        }
        self.store.upsert_membership(&mut tx, &row).await?;
        self.store
            .remember(
                &mut tx,
                &caller.principal.id,
                "CreateMembership",
                &r.request_id,
                &user_id,
            )
            .await?;
        let event = self
            .membership_event(caller, &row, &membership_created(&row, ""))
            .await;
        let revision = self
            .write(tx, &[membership_change(&row)], vec![event])
            .await?;
        Ok((row, revision))
    }

    /// A membership the caller may see: their own, or any for those who may
    /// read the organization's members.
    async fn visible_membership(&self, caller: &Caller, name: &str) -> Result<MembershipRow> {
        let MembershipName {
            organization: organization_id,
            user: user_id,
        } = MembershipName::parse("name", name)?;
        self.enter_tenant_of(&organization_id);
        let own = caller.user() == Some(user_id.as_str());
        if !own {
            self.authorize(
                caller,
                ("organization", &organization_id),
                Permission::ORGANIZATION_MEMBERS_READ,
                Permission::ORGANIZATION_MEMBERS_READ,
                "membership",
            )
            .await?;
        }
        self.store
            .membership(&organization_id, &user_id)
            .await?
            .ok_or_else(|| Error::not_found("membership").with_domain(NAME))
    }

    async fn update_membership(
        &self,
        caller: &Caller,
        r: pb::UpdateMembershipRequest,
    ) -> Result<(MembershipRow, i64)> {
        let input = r
            .membership
            .ok_or_else(|| Error::invalid_field("membership", "is required"))?;
        let MembershipName {
            organization: organization_id,
            user: user_id,
        } = MembershipName::parse("membership.name", &input.name)?;
        self.enter_tenant_of(&organization_id);
        let paths: Vec<&str> = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if paths != ["roles"] {
            return Err(Error::invalid_field(
                "update_mask",
                "must be exactly `roles`",
            ));
        }
        let current = self
            .membership_to_change(caller, (&organization_id, &user_id), &input.etag, false)
            .await?;
        if current.roles.iter().any(|r| r == OWNER) {
            return Err(Refusal::OwnerMembership.into());
        }
        self.valid_roles(&organization_id, &input.roles, "membership.roles")
            .await?;
        let mut next = current.clone();
        next.roles = input.roles.clone();
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.store.begin().await?;
        match self
            .store
            .membership_in(&mut tx, &organization_id, &user_id)
            .await?
        {
            Some(now) if now.version == current.version => {}
            _ => {
                return Err(Refusal::ConcurrentUpdate { kind: "membership" }.into());
            }
        }
        self.store.upsert_membership(&mut tx, &next).await?;
        let updated = events::MembershipUpdated {
            membership_id: membership_id(&next),
            organization_id,
            user_id,
            old_roles: current.roles.iter().map(|r| role_event(r)).collect(),
            new_roles: next.roles.iter().map(|r| role_event(r)).collect(),
        };
        let event = self
            .membership_event(caller, &next, &updated)
            .await
            .with_changes(vec![events::FieldChange {
                field: "roles".into(),
                before: current.roles.join(","),
                after: next.roles.join(","),
            }]);
        let revision = self
            .write(tx, &[membership_change(&next)], vec![event])
            .await?;
        Ok((next, revision))
    }

    /// What a create or update of a membership answers: the membership as
    /// written, and the token of the write.
    async fn membership_written(
        &self,
        (row, revision): (MembershipRow, i64),
    ) -> Result<(Option<pb::Membership>, Option<ZedToken>)> {
        Ok((
            Some(self.membership_to_proto(&row).await?),
            Some(token(revision)),
        ))
    }

    /// The membership of `user_id` in `organization_id` that the caller is
    /// about to change, as of `etag`: the caller manages the organization's
    /// members, or it is their own (`own`).
    async fn membership_to_change(
        &self,
        caller: &Caller,
        (organization_id, user_id): (&str, &str),
        etag: &str,
        own: bool,
    ) -> Result<MembershipRow> {
        if !own {
            self.authorize(
                caller,
                ("organization", organization_id),
                Permission::ORGANIZATION_MEMBERS_MANAGE,
                Permission::ORGANIZATION_MEMBERS_READ,
                "membership",
            )
            .await?;
        }
        let current = self
            .store
            .membership(organization_id, user_id)
            .await?
            .ok_or_else(|| Error::not_found("membership").with_domain(NAME))?;
        check_etag(etag, current.version)?;
        Ok(current)
    }

    /// Removes a member (or lets a member leave) with all their access in
    /// the organization.
    async fn delete_membership(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
    ) -> Result<i64> {
        let MembershipName {
            organization: organization_id,
            user: user_id,
        } = MembershipName::parse("name", name)?;
        self.enter_tenant_of(&organization_id);
        let leaving = caller.user() == Some(user_id.as_str());
        let current = self
            .membership_to_change(caller, (&organization_id, &user_id), given_etag, leaving)
            .await?;
        if current.roles.iter().any(|r| r == OWNER) {
            return Err(Refusal::OwnerCannotLeave.into());
        }
        let mut tx = self.store.begin().await?;
        if !self
            .store
            .delete_membership(&mut tx, &organization_id, &user_id)
            .await?
        {
            return Err(Error::not_found("membership").with_domain(NAME));
        }
        let mut changes = vec![Change::Membership {
            organization: organization_id.clone(),
            user: user_id.clone(),
            roles: Vec::new(),
        }];
        for team in self
            .store
            .user_teams(&mut tx, &organization_id, &user_id)
            .await?
        {
            self.store
                .delete_team_member(&mut tx, &team, &user_id)
                .await?;
            changes.push(Change::TeamMember {
                team,
                user: user_id.clone(),
                lead: None,
            });
        }
        for grant in self
            .store
            .grants_to(&mut tx, &GrantSubject::User(user_id.clone()))
            .await?
        {
            if grant.organization_id == organization_id {
                self.store.delete_grant(&mut tx, &grant.id).await?;
                changes.push(Change::ProjectGrant {
                    project: grant.project_id,
                    subject: grant.subject,
                    level: None,
                });
            }
        }
        let reason = if leaving {
            events::membership_deleted::Reason::Left
        } else {
            events::membership_deleted::Reason::Removed
        };
        let deleted = events::MembershipDeleted {
            membership_id: membership_id(&current),
            organization_id,
            user_id,
            roles: current.roles.iter().map(|r| role_event(r)).collect(),
            reason: reason as i32,
        };
        let event = self.membership_event(caller, &current, &deleted).await;
        self.write(tx, &changes, vec![event]).await
    }
}

#[tonic::async_trait]
impl pb::membership_service_server::MembershipService for MembershipApi {
    async fn create_membership(
        &self,
        request: Request<pb::CreateMembershipRequest>,
    ) -> Result<Response<pb::CreateMembershipResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let written = self.0.create_membership(&caller, request.into_inner());
        let (membership, written_at) = self.0.membership_written(written.await?).await?;
        Ok(Response::new(pb::CreateMembershipResponse {
            membership,
            written_at,
        }))
    }

    async fn get_membership(
        &self,
        request: Request<pb::GetMembershipRequest>,
    ) -> Result<Response<pb::GetMembershipResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let row = self
            .0
            .visible_membership(&caller, &request.get_ref().name)
            .await?;
        Ok(Response::new(pb::GetMembershipResponse {
            membership: Some(self.0.membership_to_proto(&row).await?),
        }))
    }

    async fn list_memberships(
        &self,
        request: Request<pb::ListMembershipsRequest>,
    ) -> Result<Response<pb::ListMembershipsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let organization_id = OrganizationName::parse("parent", &r.parent)?.id;
        self.0
            .authorize(
                &caller,
                ("organization", &organization_id),
                Permission::ORGANIZATION_MEMBERS_READ,
                Permission::ORGANIZATION_MEMBERS_READ,
                "organization",
            )
            .await?;
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!(
            "members|{organization_id}|{}|{}",
            r.role, r.include_external
        );
        let mut after = self.0.page_start(&query, &r.page_token)?;
        let mut found = Vec::new();
        loop {
            let batch = self
                .0
                .store
                .memberships(&organization_id, &after, 500)
                .await?;
            let exhausted = batch.len() < 500;
            for m in batch {
                after = m.user_id.clone();
                if r.role.is_empty() || m.roles.contains(&r.role) {
                    found.push(m);
                }
                if found.len() > size {
                    break;
                }
            }
            if exhausted || found.len() > size {
                break;
            }
        }
        let next_page_token = self
            .0
            .page_end(&mut found, size, &query, |last| &last.user_id);
        let mut memberships = Vec::with_capacity(found.len());
        for m in &found {
            memberships.push(self.0.membership_to_proto(m).await?);
        }
        if r.include_external && next_page_token.is_empty() {
            // External users: project grants in the organization to users who
            // are not members, listed after the members.
            let mut tx = self.0.store.begin().await?;
            let mut seen = std::collections::BTreeSet::new();
            let grants = self
                .0
                .store
                .grants_in_organization(&mut tx, &organization_id)
                .await?;
            drop(tx);
            for grant in grants {
                if let GrantSubject::User(user) = grant.subject
                    && self
                        .0
                        .store
                        .membership(&organization_id, &user)
                        .await?
                        .is_none()
                    && seen.insert(user.clone())
                {
                    let profile = self.0.store.user(&user).await?.unwrap_or_default();
                    memberships.push(pb::Membership {
                        name: MembershipName::new(&organization_id, &user).to_string(),
                        user: UserName::new(&user).to_string(),
                        external: true,
                        user_display_name: profile.display_name,
                        user_email: profile.email,
                        ..Default::default()
                    });
                }
            }
        }
        Ok(Response::new(pb::ListMembershipsResponse {
            memberships,
            next_page_token,
        }))
    }

    async fn update_membership(
        &self,
        request: Request<pb::UpdateMembershipRequest>,
    ) -> Result<Response<pb::UpdateMembershipResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let written = self.0.update_membership(&caller, request.into_inner());
        let (membership, written_at) = self.0.membership_written(written.await?).await?;
        Ok(Response::new(pb::UpdateMembershipResponse {
            membership,
            written_at,
        }))
    }

    async fn delete_membership(
        &self,
        request: Request<pb::DeleteMembershipRequest>,
    ) -> Result<Response<pb::DeleteMembershipResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let revision = self.0.delete_membership(&caller, &r.name, &r.etag).await?;
        Ok(Response::new(pb::DeleteMembershipResponse {
            written_at: Some(token(revision)),
        }))
    }

    async fn list_user_memberships(
        &self,
        request: Request<pb::ListUserMembershipsRequest>,
    ) -> Result<Response<pb::ListUserMembershipsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let user_id = match r.parent.as_str() {
            "users/me" => caller.principal.id.clone(),
            parent => UserName::parse("parent", parent)?.id,
        };
        if !caller.is_internal() && caller.user() != Some(user_id.as_str()) {
            return Err(
                Error::permission_denied(Permission::ORGANIZATION_MEMBERS_READ)
                    .with_domain(NAME)
                    .with_metadata("reason", "a user lists only their own memberships")
                    .into(),
            );
        }
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("user-members|{user_id}");
        let after = self.0.page_start(&query, &r.page_token)?;
        // One user's memberships across every tree: the filter on the user
        // is the wall here, and the check above decided who may ask.
        let mut rows = tenancy::system(self.0.store.user_memberships(
            &user_id,
            &after,
            size as i64 + 1,
        ))
        .await?;
        let next_page_token = self
            .0
            .page_end(&mut rows, size, &query, |last| &last.organization_id);
        let mut memberships = Vec::with_capacity(rows.len());
        for m in &rows {
            memberships.push(self.0.membership_to_proto(m).await?);
        }
        Ok(Response::new(pb::ListUserMembershipsResponse {
            memberships,
            next_page_token,
        }))
    }
}
