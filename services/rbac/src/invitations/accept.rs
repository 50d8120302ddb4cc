//! Accepting: the token, the verified email, and what joining gives
//! (membership or external grants, teams, projects).

use super::*;
use crate::memberships::{membership_change, membership_created};

impl Core {
    pub(super) async fn accept_invitation(
        &self,
        caller: &Caller,
        token_text: &str,
    ) -> Result<Accepted> {
        let Some(user_id) = caller.user().map(str::to_string) else {
            return Err(Error::permission_denied("invitation.accept").with_domain(NAME));
        };
        if token_text.is_empty() {
            return Err(Error::invalid_field("token", "is required"));
        }
        let now = now_micros();
        let invitation = self
            .invitation_by_token(token_text)
            .await?
            .filter(|i| i.effective_state(now) == pb::invitation::State::Pending)
            .ok_or(Refusal::InvitationNotFound)?;
        let email = self.peers.verified_email(caller).await?;
        if email.as_deref() != Some(invitation.email.as_str()) {
            return Err(Refusal::EmailMismatch.into());
        }
        let organization_id = invitation.organization_id.clone();
        let mut tx = self.store.begin().await?;
        let mut accepted = invitation.clone();
        accepted.state = "accepted".into();
        accepted.accepted_by = Some(user_id.clone());
        accepted.closed_at_us = Some(now);
        accepted.updated_at_us = now;
        accepted.version += 1;
        if !update(&mut tx, &accepted, invitation.version).await? {
            return Err(Refusal::InvitationNotFound.into());
        }
        let membership_id = format!("{organization_id}/{user_id}");
        let mut changes = Vec::new();
        let mut events_out = vec![
            self.event(
                caller,
                ("invitation", &invitation.id),
                &organization_id,
                &events::InvitationAccepted {
                    invitation_id: invitation.id.clone(),
                    organization_id: organization_id.clone(),
                    user_id: user_id.clone(),
                    membership_id: if invitation.external {
                        String::new()
                    } else {
                        membership_id.clone()
                    },
                    via_sign_up: false,
                },
            )
            .await,
        ];
        let membership = if invitation.external {
            None
        } else {
            Some(
                self.join(
                    &mut tx,
                    caller,
                    &invitation,
                    &user_id,
                    (&mut changes, &mut events_out),
                )
                .await?,
            )
        };
        let granted = self
            .grant_invited(
                &mut tx,
                caller,
                &invitation,
                &user_id,
                (&mut changes, &mut events_out),
            )
            .await?;
        let revision = self.write(tx, &changes, events_out).await?;
        Ok(Accepted {
            membership,
            granted,
            revision,
        })
    }

    /// Makes the invitee a member with the invited roles and teams (adding
    /// the roles when they are one already).
    async fn join(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        invitation: &InvitationRow,
        user_id: &str,
        (changes, events_out): (&mut Vec<Change>, &mut Vec<tenantry_kit::outbox::NewEvent>),
    ) -> Result<MembershipRow> {
        let organization_id = invitation.organization_id.clone();
        let now = now_micros();
        let membership = match self
            .store
            .membership_in(tx, &organization_id, user_id)
            .await?
        {
            // Already a member: the invited roles are added.
            Some(mut existing) => {
                for role in &invitation.roles {
                    if !existing.roles.contains(role) {
                        existing.roles.push(role.clone());
                    }
                }
                existing.updated_at_us = now;
                existing.version += 1;
                existing
            }
            None => MembershipRow {
                organization_id: organization_id.clone(),
                user_id: user_id.to_string(),
                roles: invitation.roles.clone(),
                invitation_id: Some(invitation.id.clone()),
                created_at_us: now,
                updated_at_us: now,
                version: 1,
            },
        };
        self.store.upsert_membership(tx, &membership).await?;
        changes.push(membership_change(&membership));
        for (team, lead) in invitation.teams.iter() {
            // A team deleted since the invitation is skipped.
            if !self.index.read().within("team", team, &organization_id) {
                continue;
            }
            self.store
                .upsert_team_member(
                    tx,
                    &TeamMemberRow {
                        team_id: team.clone(),
                        organization_id: organization_id.clone(),
                        user_id: user_id.to_string(),
                        lead: *lead,
                        created_at_us: now,
                        updated_at_us: now,
                        version: 1,
                    },
                )
                .await?;
            changes.push(Change::TeamMember {
                team: team.clone(),
                user: user_id.to_string(),
                lead: Some(*lead),
            });
        }
        if membership.version == 1 {
            let created = membership_created(&membership, &invitation.id);
            events_out.push(self.membership_event(caller, &membership, &created).await);
        }
        Ok(membership)
    }

    /// Grants the invitee the invited projects still there, as an external
    /// user when they are not a member. A grant they hold already stays as
    /// it is. Returns the projects granted.
    async fn grant_invited(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        invitation: &InvitationRow,
        user_id: &str,
        (changes, events_out): (&mut Vec<Change>, &mut Vec<tenantry_kit::outbox::NewEvent>),
    ) -> Result<Vec<String>> {
        let organization_id = &invitation.organization_id;
        let subject = GrantSubject::User(user_id.to_string());
        let held: Vec<String> = self
            .store
            .grants_to(tx, &subject)
            .await?
            .into_iter()
            .map(|g| g.project_id)
            .collect();
        // External unless a member (already, or by this very acceptance).
        let external = self
            .store
            .membership_in(tx, organization_id, user_id)
            .await?
            .is_none();
        let now = now_micros();
        let mut granted = Vec::new();
        for (project, level) in invitation.projects.iter() {
            // A project deleted since the invitation is skipped.
            if held.contains(project)
                || !self
                    .index
                    .read()
                    .within("project", project, organization_id)
            {
                continue;
            }
            let grant = GrantRow {
                id: new_id().to_string(),
                organization_id: organization_id.clone(),
                project_id: project.clone(),
                subject: subject.clone(),
                level: *level,
                created_at_us: now,
                updated_at_us: now,
                version: 1,
            };
            self.store.insert_grant(tx, &grant).await?;
            changes.push(Change::ProjectGrant {
                project: project.clone(),
                subject: subject.clone(),
                level: Some(*level),
            });
            events_out.push(
                self.event(
                    caller,
                    ("project", project),
                    organization_id,
                    &events::ProjectAccessGranted {
                        grant_id: grant.id.clone(),
                        project_id: project.clone(),
                        organization_id: organization_id.clone(),
                        subject: Some(crate::convert::event_subject(&subject)),
                        access_level: crate::convert::level_to(*level) as i32,
                        external,
                    },
                )
                .await,
            );
            granted.push(ProjectName::new(organization_id, project).to_string());
        }
        Ok(granted)
    }
}
