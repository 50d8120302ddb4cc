//! Invitations as clients see them.

use tenantry_kit::names::{InvitationName, ProjectName, TeamName, UserName};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::rbac::v1 as pb;

use crate::invitations::InvitationRow;
use crate::memberships::etag;
use crate::timestamp;

impl InvitationRow {
    /// The invitation's state as clients see it at `now_us`: a pending
    /// invitation past its expiry is expired.
    pub(crate) fn effective_state(&self, now_us: i64) -> pb::invitation::State {
        match self.state.as_str() {
            "pending" if self.expires_at_us <= now_us => pb::invitation::State::Expired,
            "pending" => pb::invitation::State::Pending,
            "accepted" => pb::invitation::State::Accepted,
            "revoked" => pb::invitation::State::Revoked,
            _ => pb::invitation::State::Expired,
        }
    }

    /// The invitation as clients see it at `now_us`.
    pub(crate) fn to_proto(&self, now_us: i64) -> pb::Invitation {
        pb::Invitation {
            name: InvitationName::new(&self.organization_id, &self.id).to_string(),
            email: self.email.clone(),
            roles: self.roles.clone(),
            teams: self
                .teams
                .iter()
                .map(|(team, lead)| pb::InvitationTeam {
                    team: TeamName::new(&self.organization_id, team).to_string(),
                    role: if *lead {
                        authz_pb::TeamRole::Lead
                    } else {
                        authz_pb::TeamRole::Member
                    } as i32,
                })
                .collect(),
            projects: self
                .projects
                .iter()
                .map(|(project, level)| pb::InvitationProject {
                    project: ProjectName::new(&self.organization_id, project).to_string(),
                    access_level: super::level_to(*level) as i32,
                })
                .collect(),
            external: self.external,
            state: self.effective_state(now_us) as i32,
            inviter: UserName::new(&self.inviter_id).to_string(),
            inviter_display_name: self.inviter_name.clone(),
            expire_time: Some(timestamp(self.expires_at_us)),
            send_count: self.send_count as i32,
            last_send_time: Some(timestamp(self.last_sent_at_us)),
            accepted_by: self
                .accepted_by
                .as_ref()
                .map(|u| UserName::new(u).to_string())
                .unwrap_or_default(),
            close_time: self.closed_at_us.map(timestamp),
            create_time: Some(timestamp(self.created_at_us)),
            update_time: Some(timestamp(self.updated_at_us)),
            etag: etag(self.version),
        }
    }
}
