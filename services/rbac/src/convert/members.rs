//! Memberships and team members as clients and events see them.

use tenantry_kit::error::Result;
use tenantry_kit::names::{InvitationName, MembershipName, TeamMemberName, UserName};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;

use crate::memberships::etag;
use crate::store::{MembershipRow, TeamMemberRow};
use crate::{Core, timestamp};

/// A role as events name it: its id (the last segment of its name) and
/// its name.
pub(crate) fn role_event(name: &str) -> events::Role {
    events::Role {
        role_id: name.rsplit('/').next().unwrap_or(name).to_string(),
        name: name.to_string(),
    }
}

/// A team role as the API spells it: lead or member.
pub(crate) fn role_of(lead: bool) -> authz_pb::TeamRole {
    if lead {
        authz_pb::TeamRole::Lead
    } else {
        authz_pb::TeamRole::Member
    }
}

/// A team role as events spell it: lead or member.
pub(crate) fn event_role(lead: bool) -> i32 {
    if lead {
        events::TeamRole::Lead as i32
    } else {
        events::TeamRole::Member as i32
    }
}

impl Core {
    /// A membership as clients see it, with its user's display name and email.
    pub(crate) async fn membership_to_proto(&self, m: &MembershipRow) -> Result<pb::Membership> {
        let user = self.store.user(&m.user_id).await?.unwrap_or_default();
        Ok(pb::Membership {
            name: MembershipName::new(&m.organization_id, &m.user_id).to_string(),
            user: UserName::new(&m.user_id).to_string(),
            roles: m.roles.clone(),
            external: false,
            user_display_name: user.display_name,
            user_email: user.email,
            invitation: m
                .invitation_id
                .as_ref()
                .map(|i| InvitationName::new(&m.organization_id, i).to_string())
                .unwrap_or_default(),
            create_time: Some(timestamp(m.created_at_us)),
            update_time: Some(timestamp(m.updated_at_us)),
            etag: etag(m.version),
        })
    }

    /// A team member as clients see it, with its user's display name and email.
    pub(crate) async fn member_to_proto(&self, m: &TeamMemberRow) -> Result<pb::TeamMember> {
        let user = self.store.user(&m.user_id).await?.unwrap_or_default();
        Ok(pb::TeamMember {
            name: TeamMemberName::new(&m.organization_id, &m.team_id, &m.user_id).to_string(),
            user: UserName::new(&m.user_id).to_string(),
            role: role_of(m.lead) as i32,
            user_display_name: user.display_name,
            user_email: user.email,
            create_time: Some(timestamp(m.created_at_us)),
            update_time: Some(timestamp(m.updated_at_us)),
            etag: etag(m.version),
        })
    }
}
