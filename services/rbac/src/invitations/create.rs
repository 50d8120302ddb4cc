//! Inviting: who may invite whom to what, and the mail that carries the
//! token.

use super::*;
use tenantry_kit::names::BuiltInRole;

impl Core {
    pub(super) async fn create_invitation(
        &self,
        caller: &Caller,
        r: pb::CreateInvitationRequest,
    ) -> Result<InvitationRow> {
        let organization_id = OrganizationName::parse("parent", &r.parent)?.id;
        let input = r
            .invitation
            .ok_or_else(|| Error::invalid_field("invitation", "is required"))?;
        self.authorize(
            caller,
            ("organization", &organization_id),
            Permission::ORGANIZATION_MEMBERS_INVITE,
            Permission::ORGANIZATION_READ,
            "organization",
        )
        .await?;
        let inviter = caller.principal.id.clone();
        if let Some(id) = self
            .store
            .replayed(&inviter, "CreateInvitation", &r.request_id)
            .await?
            && let Some(existing) = self.invitation(&organization_id, &id).await?
        {
            return Ok(existing);
        }
        let email = normalize_email(&input.email)?;
        let roles = if input.external {
            // An external user holds grants, never roles or teams.
            if !input.roles.is_empty() || !input.teams.is_empty() {
                return Err(Error::invalid_field(
                    "invitation.external",
                    "an external invitation gives projects only, no roles or teams",
                ));
            }
            if input.projects.is_empty() {
                return Err(Error::invalid_field(
                    "invitation.projects",
                    "an external invitation needs at least one project",
                ));
            }
            Vec::new()
        } else if input.roles.is_empty() {
            vec![BuiltInRole::Member.name().to_string()]
        } else {
            input.roles.clone()
        };
        if !input.external {
            self.valid_roles(&organization_id, &roles, "invitation.roles")
                .await?;
        }
        let mut projects = Vec::new();
        for (i, project) in input.projects.iter().enumerate() {
            let field = format!("invitation.projects[{i}].project");
            let ProjectName {
                organization,
                id: project_id,
            } = ProjectName::parse(&field, &project.project)?;
            if organization != organization_id
                || !self
                    .index
                    .read()
                    .within("project", &project_id, &organization_id)
            {
                return Err(Error::invalid_field(
                    field,
                    "must be a project of the organization",
                ));
            }
            let level = crate::convert::level_from(project.access_level()).map_err(|_| {
                Error::invalid_field(
                    format!("invitation.projects[{i}].access_level"),
                    "must be VIEWER, CONTRIBUTOR or ADMIN",
                )
            })?;
            if projects.iter().any(|(p, _)| *p == project_id) {
                return Err(Error::invalid_field(field, "is given twice"));
            }
            projects.push((project_id, level));
        }
        let mut teams = Vec::new();
        for (i, team) in input.teams.iter().enumerate() {
            let TeamName {
                organization,
                id: team_id,
            } = TeamName::parse(&format!("invitation.teams[{i}].team"), &team.team)?;
            if organization != organization_id
                || !self.index.read().within("team", &team_id, &organization_id)
            {
                return Err(Error::invalid_field(
                    format!("invitation.teams[{i}].team"),
                    "must be a team of the organization",
                ));
            }
            teams.push((team_id, team.role() == authz_pb::TeamRole::Lead));
        }
        let lifetime_secs = match &r.expire_after {
            None => DEFAULT_LIFETIME_SECS,
            Some(d) if d.seconds >= MIN_LIFETIME_SECS && d.seconds <= MAX_LIFETIME_SECS => {
                d.seconds
            }
            Some(_) => {
                return Err(Error::invalid_field(
                    "expire_after",
                    "must be from one hour to 30 days",
                ));
            }
        };
        let organization = self
            .peers
            .organization(caller, &organization_id)
            .await?
            .ok_or_else(|| Error::not_found("organization").with_domain(NAME))?;
        email_domain_allowed(&organization.allowed_email_domains, &email)?;
        // Members change roles through their membership, not an invitation.
        if self
            .store
            .member_with_email(&organization_id, &email)
            .await?
        {
            return Err(Refusal::AlreadyAMember.into());
        }
        let id = new_id().to_string();
        // A pending member takes a seat; an external user never does.
        if !input.external
            && let Err(error) = self
                .peers
                .ensure_seat(caller, &organization_id, &format!("invitation:{id}"))
                .await
        {
            self.record_denied(
                caller,
                &organization_id,
                Permission::ORGANIZATION_MEMBERS_INVITE,
                &error,
            )
            .await;
            return Err(error);
        }
        let inviter_name = self.peers.display_name(caller).await?;
        let now = now_micros();
        let token = new_token();
        let row = InvitationRow {
            id,
            organization_id: organization_id.clone(),
            organization_name: organization.display_name,
            email: email.clone(),
            roles,
            teams: InvitedTeams(teams),
            projects: InvitedProjects(projects),
            external: input.external,
            state: "pending".into(),
            token_hash: hash_token(&token),
            inviter_id: inviter.clone(),
            inviter_name,
            expires_at_us: now + lifetime_secs * 1_000_000,
            lifetime_us: lifetime_secs * 1_000_000,
            send_count: 1,
            last_sent_at_us: now,
            accepted_by: None,
            closed_at_us: None,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.store.begin().await?;
        // A pending invitation that expired gives its place to the new one.
        sqlx::query(
            "UPDATE rbac_invitations SET state = 'expired', closed_at_us = $3, version = version + 1
             WHERE organization_id = $1 AND email = $2 AND state = 'pending' AND expires_at_us <= $3",
        )
        .bind(&organization_id)
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert(&mut tx, &row)
            .await
            .map_err(Refusal::InvitationPending.on_conflict())?;
        self.store
            .remember(
                &mut tx,
                &inviter,
                "CreateInvitation",
                &r.request_id,
                &row.id,
            )
            .await?;
        let event = self
            .event(
                caller,
                ("invitation", &row.id),
                &organization_id,
                &events::InvitationCreated {
                    invitation_id: row.id.clone(),
                    organization_id: organization_id.clone(),
                    email: email.clone(),
                    roles: row
                        .roles
                        .iter()
                        .map(|r| crate::convert::role_event(r))
                        .collect(),
                    team_ids: row.teams.iter().map(|(t, _)| t.clone()).collect(),
                    invited_by: inviter,
                    expire_time: Some(timestamp(row.expires_at_us)),
                    external: row.external,
                    project_ids: row.projects.iter().map(|(p, _)| p.clone()).collect(),
                },
            )
            .await;
        self.write(tx, &[], vec![event]).await?;
        self.send_invitation(&row, &token).await;
        Ok(row)
    }
}
