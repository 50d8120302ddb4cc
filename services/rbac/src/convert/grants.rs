//! Project grants, their access levels and subjects as clients and events
//! see them, and an access level a request names.

use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{ProjectGrantName, TeamName, UserName};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;

use crate::engine::{AccessLevel, GrantSubject};
use crate::memberships::etag;
use crate::store::GrantRow;
use crate::{Caller, Core, timestamp};

/// The access level a project grant asks for; unspecified is refused.
pub(crate) fn level_from(level: authz_pb::ProjectAccessLevel) -> Result<AccessLevel> {
    match level {
        authz_pb::ProjectAccessLevel::Viewer => Ok(AccessLevel::Viewer),
        authz_pb::ProjectAccessLevel::Contributor => Ok(AccessLevel::Contributor),
        authz_pb::ProjectAccessLevel::Admin => Ok(AccessLevel::Admin),
        authz_pb::ProjectAccessLevel::Unspecified => Err(Error::invalid_field(
            "project_grant.access_level",
            "must be VIEWER, CONTRIBUTOR or ADMIN",
        )),
    }
}

/// An access level as the API spells it.
pub(crate) fn level_to(level: AccessLevel) -> authz_pb::ProjectAccessLevel {
    match level {
        AccessLevel::Viewer => authz_pb::ProjectAccessLevel::Viewer,
        AccessLevel::Contributor => authz_pb::ProjectAccessLevel::Contributor,
        AccessLevel::Admin => authz_pb::ProjectAccessLevel::Admin,
    }
}

/// A grant's subject as events name it.
pub(crate) fn event_subject(subject: &GrantSubject) -> events::GrantSubject {
    use events::grant_subject::Subject;
    events::GrantSubject {
        subject: Some(match subject {
            GrantSubject::User(u) => Subject::UserId(u.clone()),
            GrantSubject::Team(t) => Subject::TeamId(t.clone()),
            GrantSubject::Role(r) => Subject::RoleId(r.clone()),
        }),
    }
}

impl Core {
    /// A project grant as clients see it, with its subject's display name
    /// (and a user's email, and whether they are external to the organization).
    pub(crate) async fn grant_to_proto(
        &self,
        caller: &Caller,
        g: &GrantRow,
    ) -> Result<pb::ProjectGrant> {
        use pb::project_grant::Subject;
        let (subject, external, display, email) = match &g.subject {
            GrantSubject::User(u) => {
                let user = self.store.user(u).await?.unwrap_or_default();
                let external = self
                    .store
                    .membership(&g.organization_id, u)
                    .await?
                    .is_none();
                (
                    Subject::User(UserName::new(u).to_string()),
                    external,
                    user.display_name,
                    user.email,
                )
            }
            GrantSubject::Team(t) => (
                Subject::Team(TeamName::new(&g.organization_id, t).to_string()),
                false,
                self.peers
                    .team_display_name(caller, &g.organization_id, t)
                    .await,
                String::new(),
            ),
            GrantSubject::Role(r) => (
                Subject::Role(r.clone()),
                false,
                self.role_display_name(&g.organization_id, r).await?,
                String::new(),
            ),
        };
        Ok(pb::ProjectGrant {
            name: ProjectGrantName::new(&g.organization_id, &g.project_id, &g.id).to_string(),
            subject: Some(subject),
            access_level: level_to(g.level) as i32,
            external,
            subject_display_name: display,
            user_email: email,
            create_time: Some(timestamp(g.created_at_us)),
            update_time: Some(timestamp(g.updated_at_us)),
            etag: etag(g.version),
        })
    }
}
