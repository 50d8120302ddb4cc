//! `MembershipRecordsService`: rbac's part of a bulk import and export
//! (memberships, team members, project grants), for the bulk service only.
//!
//! An import batch is one write: its rows go in a few multi-row
//! statements, its events (the ones the one-by-one RPCs emit, with the
//! importing administrator as actor) into the outbox together, its changes
//! into the index as one revision. A record that exists already is left as
//! it is, so that an import can run again or resume anywhere.

use std::collections::{HashMap, HashSet};
use tenantry_kit::names::BuiltInRole;

use futures::StreamExt as _;
use tenantry_kit::auth::Principal;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{MembershipName, ProjectGrantName, TeamMemberName, TeamName, UserName};
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::bulk::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;
use tonic::{Request, Response, Status};

use crate::convert::{event_role, event_subject, level_from, level_to, role_of};
use crate::engine::schema::{ORGANIZATION, PROJECT, TEAM};
use crate::engine::{Change, GrantSubject};
use crate::memberships::{membership_change, membership_created};
use crate::store::{GrantRow, MembershipRow, TeamMemberRow};
use crate::{Core, NAME};

use pb::record::Kind;

/// Records per message of an export.
const EXPORT_PAGE: i64 = 500;

/// The `MembershipRecordsService` handler.
#[derive(Debug, Clone)]
pub struct RecordsApi(pub Core);

/// Refuses anyone but Tenantry's own services.
fn internal_only<T>(request: &Request<T>) -> Result<()> {
    let principal = Principal::from_request(request)?;
    if principal.internal_service().is_none() {
        return Err(Error::permission_denied("bulk.import").with_domain(NAME));
    }
    Ok(())
}

/// One record of a batch, parsed.
enum Item {
    Membership(MembershipRow),
    TeamMember(TeamMemberRow),
    Grant(GrantRow),
}

/// The field of record `index` (as the importer counts), and of one of its
/// fields.
fn field(index: i64, name: &str) -> String {
    if name.is_empty() {
        format!("records[{index}]")
    } else {
        format!("records[{index}].{name}")
    }
}

/// What the one-by-one RPC refuses about a record's content (everything
/// but what it refers to), with the record's field.
fn parse(index: i64, record: pb::Record, now: i64) -> Result<Item> {
    let row = |organization_id: String| (organization_id, now);
    match record.kind {
        Some(Kind::Membership(m)) => {
            let name = MembershipName::parse(&field(index, "membership.name"), &m.name)?;
            if !m.user.is_empty()
                && UserName::parse(&field(index, "membership.user"), &m.user)?.id != name.user
            {
                return Err(Error::invalid_field(
                    field(index, "membership.user"),
                    "must be the user of the membership's name",
                ));
            }
            let roles_field = field(index, "membership.roles");
            if m.roles.is_empty() {
                return Err(Error::invalid_field(
                    roles_field,
                    "must name at least one role",
                ));
            }
            for (i, role) in m.roles.iter().enumerate() {
                let at = format!("{roles_field}[{i}]");
                if m.roles[..i].contains(role) {
                    return Err(Error::invalid_field(at, "is named twice"));
                }
                if BuiltInRole::Owner.is(role) {
                    return Err(Error::invalid_field(
                        at,
                        "an organization's owner comes with its organization record",
                    ));
                }
                if BuiltInRole::of(role).is_none() {
                    return Err(Error::invalid_field(
                        at,
                        format!("`{role}` is not a built-in role"),
                    ));
                }
            }
            let (organization_id, now) = row(name.organization);
            Ok(Item::Membership(MembershipRow {
                organization_id,
                user_id: name.user,
                roles: m.roles,
                invitation_id: None,
                created_at_us: now,
                updated_at_us: now,
                version: 1,
            }))
        }
        Some(Kind::TeamMember(m)) => {
            let name = TeamMemberName::parse(&field(index, "team_member.name"), &m.name)?;
            if !m.user.is_empty()
                && UserName::parse(&field(index, "team_member.user"), &m.user)?.id != name.user
            {
                return Err(Error::invalid_field(
                    field(index, "team_member.user"),
                    "must be the user of the team member's name",
                ));
            }
            let lead = m.role() == authz_pb::TeamRole::Lead;
            let (organization_id, now) = row(name.organization);
            Ok(Item::TeamMember(TeamMemberRow {
                team_id: name.team,
                organization_id,
                user_id: name.user,
                lead,
                created_at_us: now,
                updated_at_us: now,
                version: 1,
            }))
        }
        Some(Kind::ProjectGrant(g)) => {
            use rbac_pb::project_grant::Subject;
            let name = ProjectGrantName::parse(&field(index, "project_grant.name"), &g.name)?;
            let level = level_from(g.access_level()).map_err(|_| invalid_level(index))?;
            let subject = match &g.subject {
                Some(Subject::User(user)) => GrantSubject::User(
                    UserName::parse(&field(index, "project_grant.user"), user)?.id,
                ),
                Some(Subject::Team(team)) => {
                    let team = TeamName::parse(&field(index, "project_grant.team"), team)?;
                    if team.organization != name.organization {
                        return Err(Error::invalid_field(
                            field(index, "project_grant.team"),
                            "must be a team of the project's organization",
                        ));
                    }
                    GrantSubject::Team(team.id)
                }
                Some(Subject::Role(role)) => {
                    if BuiltInRole::of(role).is_none_or(|r| r == BuiltInRole::Owner) {
                        return Err(Error::invalid_field(
                            field(index, "project_grant.role"),
                            format!("`{role}` is not a built-in role other than the owner's"),
                        ));
                    }
                    GrantSubject::Role(role.clone())
                }
                None => {
                    return Err(Error::invalid_field(
                        field(index, "project_grant"),
                        "needs a user, a team or a role",
                    ));
                }
            };
            let (organization_id, now) = row(name.organization);
            Ok(Item::Grant(GrantRow {
                id: name.id,
                organization_id,
                project_id: name.project,
                subject,
                level,
                created_at_us: now,
                updated_at_us: now,
                version: 1,
            }))
        }
        _ => Err(Error::invalid_field(
            field(index, ""),
            "is not a membership, team member or project grant record",
        )),
    }
}

fn invalid_level(index: i64) -> Error {
    Error::invalid_field(
        field(index, "project_grant.access_level"),
        "must be VIEWER, CONTRIBUTOR or ADMIN",
    )
}

/// A record naming something this deployment does not hold.
fn unknown(index: i64, what: &str) -> Error {
    Error::new(
        tenantry_kit::error::Code::FailedPrecondition,
        "IMPORT_ORDER",
        format!(
            "{}: {what} is not known here; import it before the records that name it",
            field(index, "")
        ),
    )
    .with_domain(NAME)
}

impl Core {
    /// Imports one batch: see the module's description.
    async fn import_records(&self, batch: pb::RecordBatch) -> Result<pb::ImportCounts> {
        let actor = UserName::parse("batch.actor", &batch.actor)?.id;
        let actor = events::Actor {
            kind: events::actor::Kind::User as i32,
            id: actor,
            display_name: String::new(),
        };
        let now = now_micros();
        let first = batch.first_index;
        let items = batch
            .records
            .into_iter()
            .enumerate()
            .map(|(i, record)| parse(first + i as i64, record, now))
            .collect::<Result<Vec<_>>>()?;
        self.check_places(first, &items)?;

        let mut tx = self.store.begin().await?;
        let users: Vec<&str> = unique(items.iter().filter_map(|item| match item {
            Item::Membership(m) => Some(m.user_id.as_str()),
            Item::TeamMember(m) => Some(m.user_id.as_str()),
            Item::Grant(g) => match &g.subject {
                GrantSubject::User(user) => Some(user.as_str()),
                _ => None,
            },
        }));
        let known_users = self.store.known_users(&mut tx, &users).await?;
        // The memberships and team members the batch names that exist
        // already: what makes a record "existing", a team member's
        // membership, or a grant to an outsider.
        let membership_pairs = unique(items.iter().filter_map(|item| match item {
            Item::Membership(m) => Some((m.organization_id.as_str(), m.user_id.as_str())),
            Item::TeamMember(m) => Some((m.organization_id.as_str(), m.user_id.as_str())),
            Item::Grant(g) => match &g.subject {
                GrantSubject::User(user) => Some((g.organization_id.as_str(), user.as_str())),
                _ => None,
            },
        }));
        let mut memberships = self
            .store
            .existing_memberships(&mut tx, &membership_pairs)
            .await?;
        let team_pairs = unique(items.iter().filter_map(|item| match item {
            Item::TeamMember(m) => Some((m.team_id.as_str(), m.user_id.as_str())),
            _ => None,
        }));
        let mut team_members = self
            .store
            .existing_team_members(&mut tx, &team_pairs)
            .await?;
        let projects: Vec<&str> = unique(items.iter().filter_map(|item| match item {
            Item::Grant(g) => Some(g.project_id.as_str()),
            _ => None,
        }));
        let mut grants: HashMap<String, Vec<GrantRow>> = HashMap::new();
        for grant in self.store.grants_on(&mut tx, &projects).await? {
            grants
                .entry(grant.project_id.clone())
                .or_default()
                .push(grant);
        }

        let mut new_memberships = Vec::new();
        let mut new_team_members = Vec::new();
        let mut changes = Vec::new();
        let mut emitted = Vec::new();
        let mut counts = pb::ImportCounts::default();
        for (i, item) in items.into_iter().enumerate() {
            let index = first + i as i64;
            match item {
                Item::Membership(m) => {
                    if !known_users.contains(&m.user_id) {
                        return Err(unknown(index, "the user"));
                    }
                    if !memberships.insert((m.organization_id.clone(), m.user_id.clone())) {
                        counts.existing += 1;
                        continue;
                    }
                    changes.push(membership_change(&m));
                    let id = format!("{}/{}", m.organization_id, m.user_id);
                    emitted.push(self.event_as(
                        actor.clone(),
                        ("membership", &id),
                        &m.organization_id,
                        &membership_created(&m, ""),
                    ));
                    new_memberships.push(m);
                }
                Item::TeamMember(m) => {
                    if !memberships.contains(&(m.organization_id.clone(), m.user_id.clone())) {
                        return Err(unknown(index, "the user's membership of the organization"));
                    }
                    if !team_members.insert((m.team_id.clone(), m.user_id.clone())) {
                        counts.existing += 1;
                        continue;
                    }
                    changes.push(Change::TeamMember {
                        team: m.team_id.clone(),
                        user: m.user_id.clone(),
                        lead: Some(m.lead),
                    });
                    emitted.push(self.event_as(
                        actor.clone(),
                        ("team", &m.team_id),
                        &m.organization_id,
                        &events::TeamMemberAdded {
                            team_id: m.team_id.clone(),
                            organization_id: m.organization_id.clone(),
                            user_id: m.user_id.clone(),
                            role: event_role(m.lead),
                        },
                    ));
                    new_team_members.push(m);
                }
                Item::Grant(g) => {
                    if let GrantSubject::User(user) = &g.subject
                        && !known_users.contains(user)
                    {
                        return Err(unknown(index, "the user"));
                    }
                    let on_project = grants.entry(g.project_id.clone()).or_default();
                    if on_project
                        .iter()
                        .any(|other| other.id == g.id || other.subject == g.subject)
                    {
                        counts.existing += 1;
                        continue;
                    }
                    let external = matches!(&g.subject, GrantSubject::User(user)
                        if !memberships.contains(&(g.organization_id.clone(), user.clone())));
                    self.store.insert_grant(&mut tx, &g).await?;
                    changes.push(Change::ProjectGrant {
                        project: g.project_id.clone(),
                        subject: g.subject.clone(),
                        level: Some(g.level),
                    });
                    emitted.push(self.event_as(
                        actor.clone(),
                        ("project", &g.project_id),
                        &g.organization_id,
                        &events::ProjectAccessGranted {
                            grant_id: g.id.clone(),
                            project_id: g.project_id.clone(),
                            organization_id: g.organization_id.clone(),
                            subject: Some(event_subject(&g.subject)),
                            access_level: level_to(g.level) as i32,
                            external,
                        },
                    ));
                    on_project.push(g);
                }
            }
            counts.created += 1;
        }
        self.store
            .insert_memberships(&mut tx, &new_memberships)
            .await?;
        self.store
            .insert_team_members(&mut tx, &new_team_members)
            .await?;
        self.write(tx, &changes, emitted).await?;
        Ok(counts)
    }

    /// Refuses records whose organization, team or project the index does
    /// not hold (in the record's organization).
    fn check_places(&self, first: i64, items: &[Item]) -> Result<()> {
        let index = self.index.read();
        for (i, item) in items.iter().enumerate() {
            let at = first + i as i64;
            let (organization, place) = match item {
                Item::Membership(m) => (&m.organization_id, None),
                Item::TeamMember(m) => (&m.organization_id, Some((TEAM, "team", &m.team_id))),
                Item::Grant(g) => (
                    &g.organization_id,
                    Some((PROJECT, "project", &g.project_id)),
                ),
            };
            if index.node(ORGANIZATION, organization).is_none() {
                return Err(unknown(at, "the organization"));
            }
            if let Some((type_id, kind, id)) = place
                && !(index.node(type_id, id).is_some() && index.under(kind, id, organization))
            {
                return Err(unknown(at, &format!("the {kind}")));
            }
        }
        Ok(())
    }

    /// Every membership (but the owner role, which comes with the
    /// organization), team member and project grant, a page at a time.
    async fn export_page(&self, cursor: &mut Cursor) -> Result<Option<Vec<pb::Record>>> {
        let record = |kind| pb::Record {
            kind: Some(kind),
            password_hash: String::new(),
        };
        loop {
            match cursor {
                Cursor::Memberships(after) => {
                    let rows = self
                        .store
                        .memberships_after((&after.0, &after.1), EXPORT_PAGE)
                        .await?;
                    let Some(last) = rows.last() else {
                        *cursor = Cursor::TeamMembers(Default::default());
                        continue;
                    };
                    *after = (last.organization_id.clone(), last.user_id.clone());
                    let records = rows
                        .into_iter()
                        .filter_map(|mut m| {
                            m.roles.retain(|r| !BuiltInRole::Owner.is(r));
                            (!m.roles.is_empty()).then(|| {
                                record(Kind::Membership(rbac_pb::Membership {
                                    name: MembershipName::new(&m.organization_id, &m.user_id)
                                        .to_string(),
                                    user: UserName::new(&m.user_id).to_string(),
                                    roles: m.roles,
                                    ..Default::default()
                                }))
                            })
                        })
                        .collect();
                    return Ok(Some(records));
                }
                Cursor::TeamMembers(after) => {
                    let rows = self
                        .store
                        .team_members_after((&after.0, &after.1), EXPORT_PAGE)
                        .await?;
                    let Some(last) = rows.last() else {
                        *cursor = Cursor::Grants(String::new());
                        continue;
                    };
                    *after = (last.team_id.clone(), last.user_id.clone());
                    let records = rows
                        .into_iter()
                        .map(|m| {
                            record(Kind::TeamMember(rbac_pb::TeamMember {
                                name: TeamMemberName::new(
                                    &m.organization_id,
                                    &m.team_id,
                                    &m.user_id,
                                )
                                .to_string(),
                                user: UserName::new(&m.user_id).to_string(),
                                role: role_of(m.lead) as i32,
                                ..Default::default()
                            }))
                        })
                        .collect();
                    return Ok(Some(records));
                }
                Cursor::Grants(after) => {
                    let rows = self.store.grants_after(after, EXPORT_PAGE).await?;
                    let Some(last) = rows.last() else {
                        *cursor = Cursor::Done;
                        continue;
                    };
                    *after = last.id.clone();
                    let records = rows.into_iter().map(|g| record(grant_record(g))).collect();
                    return Ok(Some(records));
                }
                Cursor::Done => return Ok(None),
            }
        }
    }
}

/// A grant as an export writes it.
fn grant_record(g: GrantRow) -> Kind {
    use rbac_pb::project_grant::Subject;
    let subject = match g.subject {
        GrantSubject::User(user) => Subject::User(UserName::new(user).to_string()),
        GrantSubject::Team(team) => {
            Subject::Team(TeamName::new(&g.organization_id, team).to_string())
        }
        GrantSubject::Role(role) => Subject::Role(role),
    };
    Kind::ProjectGrant(rbac_pb::ProjectGrant {
        name: ProjectGrantName::new(&g.organization_id, &g.project_id, &g.id).to_string(),
        subject: Some(subject),
        access_level: level_to(g.level) as i32,
        ..Default::default()
    })
}

/// Where an export is.
enum Cursor {
    Memberships((String, String)),
    TeamMembers((String, String)),
    Grants(String),
    Done,
}

/// The distinct values of `values`.
fn unique<T: Eq + std::hash::Hash>(values: impl Iterator<Item = T>) -> Vec<T> {
    values.collect::<HashSet<_>>().into_iter().collect()
}

#[tonic::async_trait]
impl pb::membership_records_service_server::MembershipRecordsService for RecordsApi {
    async fn import_membership_records(
        &self,
        request: Request<pb::ImportMembershipRecordsRequest>,
    ) -> Result<Response<pb::ImportMembershipRecordsResponse>, Status> {
        internal_only(&request)?;
        let batch = request
            .into_inner()
            .batch
            .ok_or_else(|| Error::invalid_field("batch", "is required"))?;
        // A batch spans tenants; the bulk service checked who imports.
        let counts = tenancy::system(self.0.import_records(batch)).await?;
        Ok(Response::new(pb::ImportMembershipRecordsResponse {
            counts: Some(counts),
        }))
    }

    async fn export_membership_records(
        &self,
        request: Request<pb::ExportMembershipRecordsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::ExportMembershipRecordsResponse>>, Status>
    {
        internal_only(&request)?;
        let core = self.0.clone();
        let pages = futures::stream::try_unfold(
            (core, Cursor::Memberships(Default::default())),
            |(core, mut cursor)| async move {
                let page = tenancy::system(core.export_page(&mut cursor)).await?;
                Ok(page.map(|records| {
                    (
                        pb::ExportMembershipRecordsResponse { records },
                        (core, cursor),
                    )
                }))
            },
        )
        .map(|page: Result<_>| page.map_err(Status::from));
        Ok(Response::new(pages.boxed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(roles: &[&str]) -> pb::Record {
        pb::Record {
            kind: Some(Kind::Membership(rbac_pb::Membership {
                name: "organizations/0190a3c4-0000-7000-8000-000000000001/memberships/0190a3c4-0000-7000-8000-000000000002".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ..Default::default()
            })),
            password_hash: String::new(),
        }
    }

    fn refusal(record: pb::Record) -> String {
        match parse(7, record, 0) {
            Ok(_) => panic!("accepted"),
            Err(error) => format!("{error:?}"),
        }
    }

    #[test]
    fn a_record_is_refused_with_its_place_in_the_stream() {
        assert!(refusal(membership(&[])).contains("records[7].membership.roles"));
        assert!(refusal(membership(&["roles/owner"])).contains("records[7].membership.roles[0]"));
        assert!(
            refusal(membership(&["roles/admin", "roles/admin"]))
                .contains("records[7].membership.roles[1]")
        );
        assert!(refusal(membership(&["roles/pilot"])).contains("not a built-in role"));
        assert!(refusal(pb::Record::default()).contains("records[7]"));
        assert!(matches!(
            parse(0, membership(&["roles/admin"]), 0),
            Ok(Item::Membership(_))
        ));
    }
}
