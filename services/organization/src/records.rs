//! The `OrganizationRecordsService`: the organization service's part of a
//! bulk import or export (`tenantry.bulk.v1.BulkService`, served by
//! identity, which hands each owner its records). Internal: only
//! Tenantry's own services may call it.
//!
//! An import creates each organization, team and project exactly as its
//! one-by-one create does (the same checks of its fields, the same rows,
//! the same events, through the helpers both share), with the ids its
//! record names, without permission or plan checks: a platform
//! administrator migrates, and billing counts what was created from the
//! events. A batch is one transaction; a record whose id exists already is
//! left as it is, so a batch can run again. An export streams every live
//! organization (parents first), then every live team, then every live
//! project, as the resources their Get RPCs answer.

use std::collections::{BTreeSet, HashMap};

use tenantry_kit::auth::{Claims, Principal, PrincipalKind};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::names::{OrganizationName, ProjectName, TeamName, UserName};
use tenantry_kit::tenancy;
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::bulk::v1 as pb;
use tenantry_proto::tenantry::bulk::v1::record::Kind;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::codegen::BoxStream;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::access::Caller;
use crate::children::NewChild;
use crate::convert::{organization_to_proto, project_to_proto, team_to_proto};
use crate::error::Error as Refusal;
use crate::organizations::{NewOrganization, departments_allowed_under, root_workspace};
use crate::projects::team_field;
use crate::store::{ChildRow, Children, OrganizationRow};
use crate::validate::MAX_DEPTH;
use crate::{Core, NAME};

/// The most records one batch may hold.
pub const MAX_RECORDS: usize = 1000;

/// The most records one message of an export holds.
const EXPORT_CHUNK: usize = 500;

/// The `OrganizationRecordsService` handler.
#[derive(Debug, Clone)]
pub struct OrganizationRecordsApi(pub Core);

/// PERMISSION_DENIED unless the caller is one of Tenantry's own services.
fn internal_only<T>(request: &Request<T>, action: &str) -> Result<()> {
    if Principal::from_request(request)?
        .internal_service()
        .is_none()
    {
        return Err(Error::permission_denied(action).with_domain(NAME));
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::organization_records_service_server::OrganizationRecordsService
    for OrganizationRecordsApi
{
    async fn import_organization_records(
        &self,
        request: Request<pb::ImportOrganizationRecordsRequest>,
    ) -> Result<Response<pb::ImportOrganizationRecordsResponse>, Status> {
        internal_only(&request, "bulk.import")?;
        let context = tenantry_kit::request::request_context(&request);
        let batch = crate::validate::present("batch", request.into_inner().batch)?;
        let actor = UserName::parse("batch.actor", &batch.actor)?.id;
        let caller = actor_caller(actor, context);
        let counts = self.0.import_records(&caller, &batch).await?;
        Ok(Response::new(pb::ImportOrganizationRecordsResponse {
            counts: Some(counts),
        }))
    }

    async fn export_organization_records(
        &self,
        request: Request<pb::ExportOrganizationRecordsRequest>,
    ) -> Result<Response<BoxStream<pb::ExportOrganizationRecordsResponse>>, Status> {
        internal_only(&request, "bulk.export")?;
        let core = self.0.clone();
        // A small channel: the reader waits for the client, so memory stays
        // bounded by a few chunks whatever the deployment holds.
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        // Every tenant's rows: the system scope, in the task that reads.
        tokio::spawn(tenancy::system(async move {
            if let Err(error) = core.export_records(&sender).await {
                tracing::warn!(error = %error, "organization records export failed");
                let _ = sender.send(Err(error.into())).await;
            }
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// The caller an import's events name as their actor: the platform
/// administrator `actor_id` (a user), with the bulk call's request context.
/// It carries no token: nothing is asked of rbac on its behalf.
fn actor_caller(actor_id: String, request: events::RequestContext) -> Caller {
    Caller {
        principal: Principal::from(Claims {
            iss: String::new(),
            aud: String::new(),
            sub: actor_id,
            sid: None,
            org: None,
            iat: 0,
            exp: 0,
            nbf: None,
            jti: String::new(),
            amr: Vec::new(),
            kind: PrincipalKind::User,
            perms: None,
            team: None,
            mfa_pending: false,
            name: None,
        }),
        bearer: None,
        request,
    }
}

/// One record of a batch, its fields checked (nothing read yet).
#[derive(Debug, Clone)]
enum Parsed {
    Organization {
        id: String,
        parent_id: Option<String>,
        owner_id: String,
        fields: NewOrganization,
    },
    /// A team or a project (with its team in `fields.team_id`).
    Child {
        kind: Children,
        organization_id: String,
        id: String,
        fields: NewChild,
    },
}

/// A checked record and the field that names it in errors (`records[N]`).
#[derive(Debug, Clone)]
struct Item {
    field: String,
    parsed: Parsed,
}

/// The field naming the record at `index` of a batch whose first record is
/// `first_index` in the import stream.
fn record_field(first_index: i64, index: usize) -> String {
    format!("records[{}]", first_index.saturating_add(index as i64))
}

/// Checks a record's own fields as its create RPC does, naming each bad
/// one under `field` (`records[N].display_name`).
fn parse_record(field: &str, record: &pb::Record) -> Result<Parsed> {
    match &record.kind {
        Some(Kind::Organization(org)) => {
            let id = OrganizationName::parse(&format!("{field}.name"), &org.name)?.id;
            // An import names the owner: there is no calling user to be one.
            let owner_id = UserName::parse(&format!("{field}.owner"), &org.owner)?.id;
            let fields = NewOrganization::parse(field, org)?;
            let parent_id = match org.parent.is_empty() {
                true => None,
                false => Some(OrganizationName::parse(&format!("{field}.parent"), &org.parent)?.id),
            };
            Ok(Parsed::Organization {
                id,
                parent_id,
                owner_id,
                fields,
            })
        }
        Some(Kind::Team(team)) => {
            let name = TeamName::parse(&format!("{field}.name"), &team.name)?;
            let fields = NewChild {
                slug: team.slug.clone(),
                display_name: team.display_name.clone(),
                description: team.description.clone(),
                team_id: None,
            };
            fields.check(field)?;
            Ok(Parsed::Child {
                kind: Children::Teams,
                organization_id: name.organization,
                id: name.id,
                fields,
            })
        }
        Some(Kind::Project(project)) => {
            let name = ProjectName::parse(&format!("{field}.name"), &project.name)?;
            let fields = NewChild {
                slug: project.slug.clone(),
                display_name: project.display_name.clone(),
                description: project.description.clone(),
                team_id: team_field(field, project, Some(&name.organization))?,
            };
            fields.check(field)?;
            Ok(Parsed::Child {
                kind: Children::Projects,
                organization_id: name.organization,
                id: name.id,
                fields,
            })
        }
        _ => Err(Error::invalid_field(
            field,
            "is not an organization, team or project record",
        )),
    }
}

/// NOT_FOUND for a record naming, in `field`, `what` that does not exist
/// (neither stored nor earlier in the import).
fn unknown(field: &str, what: &str) -> Error {
    let description = format!("names {what} that does not exist");
    Error::new(
        Code::NotFound,
        "NOT_FOUND",
        format!("`{field}` {description}"),
    )
    .with_violation(field, description)
    .with_domain(NAME)
}

/// What an import knows of the stored rows a batch names, and of those it
/// created so far: one read per kind, then kept up to date.
#[derive(Debug, Default)]
struct Known {
    organizations: HashMap<String, OrganizationRow>,
    teams: HashMap<String, ChildRow>,
    projects: HashMap<String, ChildRow>,
}

impl Known {
    /// Reads, in `tx`, every organization, team and project the batch
    /// names (as a record or as what a record belongs to), with the
    /// ancestors a department's parent needs to decide whether it may
    /// have departments.
    async fn load(core: &Core, tx: &mut Write, items: &[Item]) -> Result<Known> {
        let mut organization_ids = BTreeSet::new();
        let mut team_ids = BTreeSet::new();
        let mut project_ids = BTreeSet::new();
        let mut departments = false;
        for item in items {
            match &item.parsed {
                Parsed::Organization {
                    id,
                    parent_id,
                    fields,
                    ..
                } => {
                    organization_ids.insert(id.as_str());
                    organization_ids.extend(parent_id.as_deref());
                    departments |= fields.kind == "department";
                }
                Parsed::Child {
                    kind,
                    organization_id,
                    id,
                    fields,
                } => {
                    organization_ids.insert(organization_id.as_str());
                    match kind {
                        Children::Teams => team_ids.insert(id.as_str()),
                        Children::Projects => project_ids.insert(id.as_str()),
                    };
                    team_ids.extend(fields.team_id.as_deref());
                }
            }
        }
        let ids: Vec<&str> = organization_ids.into_iter().collect();
        let mut organizations: HashMap<String, OrganizationRow> = core
            .store
            .organizations_by_id_in(tx, &ids)
            .await?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        if departments {
            let ancestors: BTreeSet<String> = organizations
                .values()
                .flat_map(|row| row.ancestor_ids())
                .filter(|id| !organizations.contains_key(*id))
                .map(str::to_string)
                .collect();
            let ids: Vec<&str> = ancestors.iter().map(String::as_str).collect();
            for row in core.store.organizations_by_id_in(tx, &ids).await? {
                organizations.insert(row.id.clone(), row);
            }
        }
        let children = |rows: Vec<ChildRow>| -> HashMap<String, ChildRow> {
            rows.into_iter().map(|row| (row.id.clone(), row)).collect()
        };
        let ids: Vec<&str> = team_ids.into_iter().collect();
        let teams = children(
            core.store
                .children_by_id_in(tx, Children::Teams, &ids)
                .await?,
        );
        let ids: Vec<&str> = project_ids.into_iter().collect();
        let projects = children(
            core.store
                .children_by_id_in(tx, Children::Projects, &ids)
                .await?,
        );
        Ok(Known {
            organizations,
            teams,
            projects,
        })
    }

    fn children(&mut self, kind: Children) -> &mut HashMap<String, ChildRow> {
        match kind {
            Children::Teams => &mut self.teams,
            Children::Projects => &mut self.projects,
        }
    }

    /// The live organization a team or project record belongs to.
    fn live_organization(&self, field: &str, id: &str) -> Result<&OrganizationRow> {
        let org = self
            .organizations
            .get(id)
            .ok_or_else(|| unknown(field, "an organization"))?;
        if org.is_deleted() {
            return Err(Refusal::OrganizationDeleted.at(field));
        }
        Ok(org)
    }
}

impl Core {
    /// Imports a batch in one transaction; `caller` is the actor of its
    /// events. Nothing of the batch is written when a record fails.
    async fn import_records(
        &self,
        caller: &Caller,
        batch: &pb::RecordBatch,
    ) -> Result<pb::ImportCounts> {
        if batch.records.len() > MAX_RECORDS {
            return Err(Error::invalid_field(
                "batch.records",
                format!("must hold at most {MAX_RECORDS} records"),
            ));
        }
        if batch.first_index < 0 {
            return Err(Error::invalid_field(
                "batch.first_index",
                "must not be negative",
            ));
        }
        let items = batch
            .records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let field = record_field(batch.first_index, i);
                let parsed = parse_record(&field, record)?;
                Ok(Item { field, parsed })
            })
            .collect::<Result<Vec<Item>>>()?;
        if items.is_empty() {
            return Ok(pb::ImportCounts::default());
        }
        // A batch spans trees (and starts new ones): every tenant's rows.
        tenancy::system(self.import_items(caller, &items)).await
    }

    async fn import_items(&self, caller: &Caller, items: &[Item]) -> Result<pb::ImportCounts> {
        let mut tx = self.begin().await?;
        let mut known = Known::load(self, &mut tx, items).await?;
        let now = now_micros();
        let mut counts = pb::ImportCounts::default();
        for item in items {
            let created = match &item.parsed {
                Parsed::Organization {
                    id,
                    parent_id,
                    owner_id,
                    fields,
                } => {
                    self.import_organization(
                        &mut tx,
                        caller,
                        &mut known,
                        &item.field,
                        (id, parent_id.as_deref(), owner_id),
                        fields,
                        now,
                    )
                    .await?
                }
                Parsed::Child {
                    kind,
                    organization_id,
                    id,
                    fields,
                } => {
                    self.import_child(
                        &mut tx,
                        caller,
                        &mut known,
                        &item.field,
                        (*kind, organization_id, id),
                        fields,
                        now,
                    )
                    .await?
                }
            };
            match created {
                true => counts.created += 1,
                false => counts.existing += 1,
            }
        }
        self.commit(tx).await?;
        Ok(counts)
    }

    /// Creates an organization record's organization as `CreateOrganization`
    /// would (a root with a SINGLE workspace of its own), unless its id
    /// exists already (`false`).
    #[allow(clippy::too_many_arguments)]
    async fn import_organization(
        &self,
        tx: &mut Write,
        caller: &Caller,
        known: &mut Known,
        field: &str,
        (id, parent_id, owner_id): (&str, Option<&str>, &str),
        fields: &NewOrganization,
        now: i64,
    ) -> Result<bool> {
        if known.organizations.contains_key(id) {
            return Ok(false);
        }
        let parent = match parent_id {
            None => None,
            Some(parent_id) => {
                let parent_field = format!("{field}.parent");
                let parent = known
                    .organizations
                    .get(parent_id)
                    .ok_or_else(|| unknown(&parent_field, "an organization"))?;
                if parent.is_deleted() {
                    return Err(Refusal::OrganizationDeleted.at(&parent_field));
                }
                if parent.depth + 1 > MAX_DEPTH {
                    return Err(Refusal::TreeTooDeep { max: MAX_DEPTH }.at(field));
                }
                if fields.kind == "department"
                    && !departments_allowed_under(parent, |id| known.organizations.get(id))
                {
                    return Err(Refusal::DepartmentsDisabled {
                        holder: "organization",
                    }
                    .at(field));
                }
                Some(parent.clone())
            }
        };
        let (workspace_id, new_workspace) = match &parent {
            Some(parent) => (parent.workspace_id.clone(), None),
            None => {
                let workspace = root_workspace(&fields.display_name, owner_id, now);
                (workspace.id.clone(), Some(workspace))
            }
        };
        let explicit_slug = fields.slug.is_some();
        let mut row = self.new_organization_row(
            id.to_string(),
            fields.clone(),
            parent.as_ref(),
            workspace_id,
            owner_id.to_string(),
            caller.resource_name(),
            now,
        );
        self.insert_new_organization(
            tx,
            caller,
            &mut row,
            explicit_slug,
            new_workspace.as_ref(),
            &format!("{field}.slug"),
        )
        .await?;
        known.organizations.insert(row.id.clone(), row);
        Ok(true)
    }

    /// Creates a team or project record's object as `CreateTeam` or
    /// `CreateProject` would (a project with the default environments),
    /// unless its id exists already (`false`).
    #[allow(clippy::too_many_arguments)]
    async fn import_child(
        &self,
        tx: &mut Write,
        caller: &Caller,
        known: &mut Known,
        field: &str,
        (kind, organization_id, id): (Children, &str, &str),
        fields: &NewChild,
        now: i64,
    ) -> Result<bool> {
        let name_field = format!("{field}.name");
        if let Some(existing) = known.children(kind).get(id) {
            if existing.organization_id != organization_id {
                let description = format!("names a {} of another organization", kind.noun());
                return Err(Error::new(
                    Code::AlreadyExists,
                    "ALREADY_EXISTS",
                    format!("`{name_field}` {description}"),
                )
                .with_violation(name_field, description)
                .with_domain(NAME));
            }
            return Ok(false);
        }
        let org = known
            .live_organization(&name_field, organization_id)?
            .clone();
        if let Some(team_id) = &fields.team_id {
            let team_field = format!("{field}.team");
            match known.teams.get(team_id) {
                Some(team) if team.organization_id == org.id => {
                    if team.deleted_at_us.is_some() {
                        return Err(Refusal::Deleted { noun: "team" }.at(&team_field));
                    }
                }
                _ => return Err(unknown(&team_field, "a team")),
            }
        }
        let explicit_slug = !fields.slug.is_empty();
        let mut row =
            fields
                .clone()
                .into_row(kind, &org.id, id.to_string(), caller.resource_name(), now);
        self.insert_new_child(tx, kind, &mut row, explicit_slug, &format!("{field}.slug"))
            .await?;
        match kind {
            Children::Teams => self.team_created(tx, caller, &row, &org).await?,
            Children::Projects => {
                self.project_created(tx, caller, &row, &org, true).await?;
            }
        }
        known.children(kind).insert(row.id.clone(), row);
        Ok(true)
    }

    /// Streams every live organization (by depth, so parents come first),
    /// then every live team, then every live project, a page at a time.
    async fn export_records(
        &self,
        sender: &tokio::sync::mpsc::Sender<Result<pb::ExportOrganizationRecordsResponse, Status>>,
    ) -> Result<()> {
        let send = |records: Vec<pb::Record>| async move {
            sender
                .send(Ok(pb::ExportOrganizationRecordsResponse { records }))
                .await
                .is_ok()
        };
        let limit = EXPORT_CHUNK as i64;
        let mut after = (0, String::new());
        loop {
            let rows = self
                .store
                .live_organizations_after((after.0, &after.1), limit)
                .await?;
            let Some(last) = rows.last() else { break };
            after = (last.depth, last.id.clone());
            let full = rows.len() == EXPORT_CHUNK;
            let records = rows
                .iter()
                .map(|row| record(Kind::Organization(organization_to_proto(row))))
                .collect();
            if !send(records).await {
                return Ok(());
            }
            if !full {
                break;
            }
        }
        for kind in [Children::Teams, Children::Projects] {
            let mut after = String::new();
            loop {
                let rows = self.store.live_children_after(kind, &after, limit).await?;
                let Some(last) = rows.last() else { break };
                after = last.id.clone();
                let full = rows.len() == EXPORT_CHUNK;
                let records = rows
                    .iter()
                    .map(|row| {
                        record(match kind {
                            Children::Teams => Kind::Team(team_to_proto(row)),
                            Children::Projects => Kind::Project(project_to_proto(row)),
                        })
                    })
                    .collect();
                if !send(records).await {
                    return Ok(());
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A record of an export.
fn record(kind: Kind) -> pb::Record {
    pb::Record {
        kind: Some(kind),
        password_hash: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_named_by_their_place_in_the_stream() {
        assert_eq!(record_field(0, 0), "records[0]");
        assert_eq!(record_field(1000, 7), "records[1007]");
    }

    #[test]
    fn the_actor_of_an_import_is_the_administrator() {
        let caller = actor_caller(
            "0190f3c2-0000-7000-8000-000000000001".into(),
            Default::default(),
        );
        let actor = caller.actor();
        assert_eq!(actor.kind, events::actor::Kind::User as i32);
        assert_eq!(actor.id, "0190f3c2-0000-7000-8000-000000000001");
        assert_eq!(
            caller.resource_name(),
            "users/0190f3c2-0000-7000-8000-000000000001"
        );
        assert!(caller.is_user() && !caller.is_internal());
    }

    #[test]
    fn only_organization_team_and_project_records_are_taken() {
        let user = pb::Record {
            kind: Some(Kind::User(Default::default())),
            password_hash: String::new(),
        };
        let error = parse_record("records[4]", &user).unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert!(error.message().contains("records[4]"));
        let empty = pb::Record::default();
        assert!(parse_record("records[0]", &empty).is_err());
    }

    #[test]
    fn an_imported_organization_needs_an_owner() {
        let org = tenantry_proto::tenantry::organization::v1::Organization {
            name: "organizations/0190f3c2-0000-7000-8000-000000000002".into(),
            display_name: "Acme".into(),
            ..Default::default()
        };
        let error =
            parse_record("records[2]", &record(Kind::Organization(org.clone()))).unwrap_err();
        assert!(error.message().contains("records[2].owner"), "{error}");
        let owned = tenantry_proto::tenantry::organization::v1::Organization {
            owner: "users/0190f3c2-0000-7000-8000-000000000001".into(),
            ..org
        };
        assert!(matches!(
            parse_record("records[2]", &record(Kind::Organization(owned))),
            Ok(Parsed::Organization {
                parent_id: None,
                ..
            })
        ));
    }

    #[test]
    fn a_project_team_must_be_of_its_organization() {
        let project = tenantry_proto::tenantry::organization::v1::Project {
            name: "organizations/0190f3c2-0000-7000-8000-000000000002/projects/0190f3c2-0000-7000-8000-000000000003".into(),
            display_name: "Web".into(),
            team: "organizations/0190f3c2-0000-7000-8000-000000000009/teams/0190f3c2-0000-7000-8000-000000000004".into(),
            ..Default::default()
        };
        let error = parse_record("records[1]", &record(Kind::Project(project))).unwrap_err();
        assert!(error.message().contains("records[1].team"), "{error}");
    }
}
