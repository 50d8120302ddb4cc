//! The `InvitationService` handlers.

use super::*;

impl Core {
    /// Writes `next` over the invitation as read at `version`, with its
    /// event `payload`, and commits.
    async fn rewrite_invitation<M: tenantry_proto::EventType>(
        &self,
        caller: &Caller,
        next: &InvitationRow,
        version: i64,
        payload: &M,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        if !update(&mut tx, next, version).await? {
            return Err(Refusal::ConcurrentUpdate { kind: "invitation" }.into());
        }
        let event = self
            .event(
                caller,
                ("invitation", &next.id),
                &next.organization_id,
                payload,
            )
            .await;
        self.write(tx, &[], vec![event]).await?;
        Ok(())
    }
}

#[tonic::async_trait]
impl pb::invitation_service_server::InvitationService for InvitationApi {
    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::CreateInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let row = self
            .0
            .create_invitation(&caller, request.into_inner())
            .await?;
        Ok(Response::new(pb::CreateInvitationResponse {
            invitation: Some(row.to_proto(now_micros())),
        }))
    }

    async fn get_invitation(
        &self,
        request: Request<pb::GetInvitationRequest>,
    ) -> Result<Response<pb::GetInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let row = self
            .0
            .managed_invitation(
                &caller,
                &request.get_ref().name,
                Permission::ORGANIZATION_MEMBERS_READ,
            )
            .await?;
        Ok(Response::new(pb::GetInvitationResponse {
            invitation: Some(row.to_proto(now_micros())),
        }))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let organization_id = OrganizationName::parse("parent", &r.parent)?.id;
        self.0
            .authorize_invitation_read(&caller, &organization_id, "organization")
            .await?;
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("invitations|{organization_id}|{}", r.state);
        let mut after = self.0.page_start(&query, &r.page_token)?;
        let now = now_micros();
        let mut found = Vec::new();
        loop {
            let batch = self.0.invitations(&organization_id, &after, 500).await?;
            let exhausted = batch.len() < 500;
            for row in batch {
                after = row.id.clone();
                if r.state == 0 || row.effective_state(now) as i32 == r.state {
                    found.push(row);
                }
            }
            if exhausted || found.len() > size {
                break;
            }
        }
        let next_page_token = self.0.page_end(&mut found, size, &query, |last| &last.id);
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: found.iter().map(|i| i.to_proto(now)).collect(),
            next_page_token,
        }))
    }

    async fn resend_invitation(
        &self,
        request: Request<pb::ResendInvitationRequest>,
    ) -> Result<Response<pb::ResendInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (current, now) = self
            .0
            .pending_invitation(&caller, &r.name, &r.etag, "resent")
            .await?;
        let interval = self.0.options.resend_interval_secs as i64 * 1_000_000;
        let wait = current.last_sent_at_us + interval - now;
        if wait > 0 || current.send_count >= i64::from(self.0.options.max_sends) {
            return Err(Refusal::ResendRateLimited {
                max_sends: self.0.options.max_sends,
                retry_after: (wait > 0).then(|| std::time::Duration::from_micros(wait as u64)),
            }
            .into());
        }
        let token = new_token();
        let mut next = current.clone();
        next.token_hash = hash_token(&token);
        next.expires_at_us = now + current.lifetime_us;
        next.send_count += 1;
        next.last_sent_at_us = now;
        next.updated_at_us = now;
        next.version += 1;
        let event = events::InvitationResent {
            invitation_id: next.id.clone(),
            organization_id: next.organization_id.clone(),
            email: next.email.clone(),
            expire_time: Some(timestamp(next.expires_at_us)),
        };
        self.0
            .rewrite_invitation(&caller, &next, current.version, &event)
            .await?;
        self.0.send_invitation(&next, &token).await;
        Ok(Response::new(pb::ResendInvitationResponse {
            invitation: Some(next.to_proto(now)),
        }))
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::RevokeInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (current, now) = self
            .0
            .pending_invitation(&caller, &r.name, &r.etag, "revoked")
            .await?;
        let mut next = current.clone();
        next.state = "revoked".into();
        next.closed_at_us = Some(now);
        next.updated_at_us = now;
        next.version += 1;
        let event = events::InvitationRevoked {
            invitation_id: next.id.clone(),
            organization_id: next.organization_id.clone(),
            email: next.email.clone(),
        };
        self.0
            .rewrite_invitation(&caller, &next, current.version, &event)
            .await?;
        Ok(Response::new(pb::RevokeInvitationResponse {
            invitation: Some(next.to_proto(now)),
        }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let accepted = self
            .0
            .accept_invitation(&caller, &request.get_ref().token)
            .await?;
        let membership = match &accepted.membership {
            Some(row) => Some(self.0.membership_to_proto(row).await?),
            None => None,
        };
        Ok(Response::new(pb::AcceptInvitationResponse {
            membership,
            granted_projects: accepted.granted,
            written_at: Some(token(accepted.revision)),
        }))
    }

    async fn lookup_invitation(
        &self,
        request: Request<pb::LookupInvitationRequest>,
    ) -> Result<Response<pb::LookupInvitationResponse>, Status> {
        // Public: whoever holds the token may see what it is for (the token
        // is the secret, 256 random bits; the edge limits guesses per client
        // address), so that a sign-up page can greet the invitee.
        let now = now_micros();
        let invitation = self
            .0
            .invitation_by_token(&request.get_ref().token)
            .await?
            .filter(|i| i.effective_state(now) == pb::invitation::State::Pending)
            .ok_or(Refusal::InvitationNotFound)?;
        Ok(Response::new(pb::LookupInvitationResponse {
            preview: Some(pb::InvitationPreview {
                organization: OrganizationName::new(&invitation.organization_id).to_string(),
                organization_display_name: invitation.organization_name.clone(),
                email: invitation.email.clone(),
                inviter_display_name: invitation.inviter_name.clone(),
                expire_time: Some(timestamp(invitation.expires_at_us)),
                roles: invitation.roles.clone(),
                external: invitation.external,
                projects: invitation
                    .projects
                    .iter()
                    .map(|(project, _)| {
                        ProjectName::new(&invitation.organization_id, project).to_string()
                    })
                    .collect(),
            }),
        }))
    }
}
