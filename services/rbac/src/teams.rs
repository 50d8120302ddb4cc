//! `TeamMemberService`: leads and members of a team. A lead manages the
//! team's members (and only them); organization admins manage every team.
//! Only members of the team's organization can join it.

use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{TeamMemberName, TeamName, UserName};
use tenantry_kit::page_token::page_size;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::event_role;
use crate::engine::{Change, TEAM};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::memberships::check_etag;
use crate::store::{TeamMemberRow, Tx};
use crate::{Caller, Core, NAME};

/// The `TeamMemberService` handler.
#[derive(Debug, Clone)]
pub struct TeamMemberApi(pub Core);

impl Core {
    /// The team, if it is a live team of the organization the caller may
    /// act on with `permission`.
    async fn team_access(
        &self,
        caller: &Caller,
        team: &TeamName,
        permission: Permission,
    ) -> Result<()> {
        let known = {
            let index = self.index.read();
            index.node(TEAM, &team.id).is_some()
                && index.within("team", &team.id, &team.organization)
        };
        if !known {
            return Err(Error::not_found("team").with_domain(NAME));
        }
        self.authorize(
            caller,
            ("team", &team.id),
            permission,
            Permission::TEAM_READ,
            "team",
        )
        .await
    }

    /// The membership of `user_id` in `team` that the caller is about to
    /// change, as of `etag`: the caller manages the team's members, or it
    /// is their own (`own`).
    async fn team_member_to_change(
        &self,
        caller: &Caller,
        team: &TeamName,
        user_id: &str,
        etag: &str,
        own: bool,
    ) -> Result<TeamMemberRow> {
        if !own {
            self.team_access(caller, team, Permission::TEAM_MEMBERS_MANAGE)
                .await?;
        }
        let current = self
            .store
            .team_member(&team.id, user_id)
            .await?
            .ok_or_else(|| Error::not_found("team member").with_domain(NAME))?;
        check_etag(etag, current.version)?;
        Ok(current)
    }

    /// What an add or update of a team member answers: the member as
    /// written, and the token of the write.
    async fn team_member_written(
        &self,
        m: &TeamMemberRow,
        revision: i64,
    ) -> Result<(Option<pb::TeamMember>, Option<authz_pb::ZedToken>)> {
        Ok((Some(self.member_to_proto(m).await?), Some(token(revision))))
    }

    /// Writes a change to `m`'s place in its team (`lead` its standing now,
    /// `None` once it left) and its event, and commits; the revision.
    async fn write_team_member<M: tenantry_proto::EventType>(
        &self,
        tx: Tx,
        caller: &Caller,
        m: &TeamMemberRow,
        lead: Option<bool>,
        payload: &M,
    ) -> Result<i64> {
        let event = self
            .event(caller, ("team", &m.team_id), &m.organization_id, payload)
            .await;
        let change = Change::TeamMember {
            team: m.team_id.clone(),
            user: m.user_id.clone(),
            lead,
        };
        self.write(tx, &[change], vec![event]).await
    }
}

/// A team member's name as its team's name and its user's id.
fn team_and_user(name: TeamMemberName) -> (TeamName, String) {
    let TeamMemberName {
        organization,
        team,
        user,
    } = name;
    (TeamName::new(organization, team), user)
}

#[tonic::async_trait]
impl pb::team_member_service_server::TeamMemberService for TeamMemberApi {
    async fn add_team_member(
        &self,
        request: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let team = TeamName::parse("parent", &r.parent)?;
        let input = r
            .team_member
            .ok_or_else(|| Error::invalid_field("team_member", "is required"))?;
        let user_id = UserName::parse("team_member.user", &input.user)?.id;
        self.0
            .team_access(&caller, &team, Permission::TEAM_MEMBERS_MANAGE)
            .await?;
        let TeamName {
            organization: organization_id,
            id: team_id,
        } = team;
        let lead = match input.role() {
            authz_pb::TeamRole::Lead => true,
            authz_pb::TeamRole::Member | authz_pb::TeamRole::Unspecified => false,
        };
        if self
            .0
            .store
            .membership(&organization_id, &user_id)
            .await?
            .is_none()
        {
            return Err(Refusal::NotAMember.into());
        }
        if let Some(existing) = self.0.store.team_member(&team_id, &user_id).await? {
            if self
                .0
                .store
                .replayed(&caller.principal.id, "AddTeamMember", &r.request_id)
                .await?
                .as_deref()
                == Some(user_id.as_str())
            {
                return Ok(Response::new(pb::AddTeamMemberResponse {
                    team_member: Some(self.0.member_to_proto(&existing).await?),
                    written_at: Some(token(self.0.index.applied())),
                }));
            }
            return Err(Refusal::AlreadyInTeam.into());
        }
        let now = now_micros();
        let row = TeamMemberRow {
            team_id: team_id.clone(),
            organization_id: organization_id.clone(),
            user_id: user_id.clone(),
            lead,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.0.store.begin().await?;
        self.0.store.upsert_team_member(&mut tx, &row).await?;
        self.0
            .store
            .remember(
                &mut tx,
                &caller.principal.id,
                "AddTeamMember",
                &r.request_id,
                &user_id,
            )
            .await?;
        let revision = self
            .0
            .write_team_member(
                tx,
                &caller,
                &row,
                Some(lead),
                &events::TeamMemberAdded {
                    team_id,
                    organization_id,
                    user_id,
                    role: event_role(lead),
                },
            )
            .await?;
        let (team_member, written_at) = self.0.team_member_written(&row, revision).await?;
        Ok(Response::new(pb::AddTeamMemberResponse {
            team_member,
            written_at,
        }))
    }

    async fn get_team_member(
        &self,
        request: Request<pb::GetTeamMemberRequest>,
    ) -> Result<Response<pb::GetTeamMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let (team, user_id) =
            team_and_user(TeamMemberName::parse("name", &request.get_ref().name)?);
        if caller.user() != Some(user_id.as_str()) {
            self.0
                .team_access(&caller, &team, Permission::TEAM_READ)
                .await?;
        }
        let row = self
            .0
            .store
            .team_member(&team.id, &user_id)
            .await?
            .filter(|m| m.organization_id == team.organization)
            .ok_or_else(|| Error::not_found("team member").with_domain(NAME))?;
        Ok(Response::new(pb::GetTeamMemberResponse {
            team_member: Some(self.0.member_to_proto(&row).await?),
        }))
    }

    async fn list_team_members(
        &self,
        request: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let team = TeamName::parse("parent", &r.parent)?;
        self.0
            .team_access(&caller, &team, Permission::TEAM_READ)
            .await?;
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("team-members|{}|{}", team.id, r.role);
        let after = self.0.page_start(&query, &r.page_token)?;
        let mut rows = self.0.store.team_members(&team.id, &after, 10_000).await?;
        rows.retain(|m| match r.role() {
            authz_pb::TeamRole::Lead => m.lead,
            authz_pb::TeamRole::Member => !m.lead,
            authz_pb::TeamRole::Unspecified => true,
        });
        let next_page_token = self
            .0
            .page_end(&mut rows, size, &query, |last| &last.user_id);
        let mut team_members = Vec::with_capacity(rows.len());
        for m in &rows {
            team_members.push(self.0.member_to_proto(m).await?);
        }
        Ok(Response::new(pb::ListTeamMembersResponse {
            team_members,
            next_page_token,
        }))
    }

    async fn update_team_member(
        &self,
        request: Request<pb::UpdateTeamMemberRequest>,
    ) -> Result<Response<pb::UpdateTeamMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let input = r
            .team_member
            .ok_or_else(|| Error::invalid_field("team_member", "is required"))?;
        let (team, user_id) =
            team_and_user(TeamMemberName::parse("team_member.name", &input.name)?);
        let paths: Vec<&str> = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if paths != ["role"] {
            return Err(Error::invalid_field("update_mask", "must be exactly `role`").into());
        }
        let current = self
            .0
            .team_member_to_change(&caller, &team, &user_id, &input.etag, false)
            .await?;
        let TeamName {
            organization: organization_id,
            id: team_id,
        } = team;
        let lead = match input.role() {
            authz_pb::TeamRole::Lead => true,
            authz_pb::TeamRole::Member => false,
            authz_pb::TeamRole::Unspecified => {
                return Err(
                    Error::invalid_field("team_member.role", "must be LEAD or MEMBER").into(),
                );
            }
        };
        let mut next = current.clone();
        next.lead = lead;
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.0.store.begin().await?;
        self.0.store.upsert_team_member(&mut tx, &next).await?;
        let revision = self
            .0
            .write_team_member(
                tx,
                &caller,
                &next,
                Some(lead),
                &events::TeamMemberUpdated {
                    team_id,
                    organization_id,
                    user_id,
                    old_role: event_role(current.lead),
                    new_role: event_role(lead),
                },
            )
            .await?;
        let (team_member, written_at) = self.0.team_member_written(&next, revision).await?;
        Ok(Response::new(pb::UpdateTeamMemberResponse {
            team_member,
            written_at,
        }))
    }

    async fn remove_team_member(
        &self,
        request: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (team, user_id) = team_and_user(TeamMemberName::parse("name", &r.name)?);
        let own = caller.user() == Some(user_id.as_str());
        let current = self
            .0
            .team_member_to_change(&caller, &team, &user_id, &r.etag, own)
            .await?;
        let TeamName {
            organization: organization_id,
            id: team_id,
        } = team;
        let mut tx = self.0.store.begin().await?;
        self.0
            .store
            .delete_team_member(&mut tx, &team_id, &user_id)
            .await?;
        let revision = self
            .0
            .write_team_member(
                tx,
                &caller,
                &current,
                None,
                &events::TeamMemberRemoved {
                    team_id,
                    organization_id,
                    user_id,
                },
            )
            .await?;
        Ok(Response::new(pb::RemoveTeamMemberResponse {
            written_at: Some(token(revision)),
        }))
    }
}
