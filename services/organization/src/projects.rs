//! The `ProjectService`: projects of an organization and their
//! environments. Access grants on projects are the rbac service's; a
//! project that still has grants, or resources other services registered
//! in it, cannot be purged.

use serde::{Deserialize, Serialize};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::names::{EnvironmentName, OrganizationName, ProjectName, TeamName};
use tenantry_kit::page_token::page_size;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::organization::v1 as pb;
use tonic::{Request, Response, Status};

use crate::access::Caller;
use crate::children::{Created, ListQuery, NewChild, NewChildUpdate, child_ids};
use crate::convert::{environment_to_proto, project_to_proto};
use crate::error::Error as Refusal;
use crate::store::{ChildRow, Children, EnvironmentRow, OrganizationRow};
use crate::validate::{self, check_etag};
use crate::{Core, change, changed, not_found, target, timestamp};
use tenantry_kit::permission::Permission;
use tenantry_kit::write::Write;

/// The environments a project starts with.
const DEFAULT_ENVIRONMENTS: &[&str] = &["dev", "staging", "production"];

impl Core {
    /// Finishes a project [`create_child`](Core::create_child) inserted: its
    /// default environments (when asked for), its event and the commit. A
    /// replay answers the project and the environments it has now.
    pub(crate) async fn finish_project(
        &self,
        caller: &Caller,
        created: Created,
        org: &OrganizationRow,
        default_environments: bool,
    ) -> Result<(ChildRow, Vec<EnvironmentRow>)> {
        let (mut tx, row) = match created {
            Created::New { write, row } => (write, row),
            Created::Replayed { row } => {
                let environments = self.store.environments(&row.id, "", 1000).await?;
                return Ok((row, environments));
            }
        };
        let environments = self
            .project_created(&mut tx, caller, &row, org, default_environments)
            .await?;
        self.commit(tx).await?;
        Ok((row, environments))
    }

    /// Completes a project just inserted in `org`: its default environments
    /// (when asked for) and `project.created`, which lists them.
    pub(crate) async fn project_created(
        &self,
        tx: &mut Write,
        caller: &Caller,
        row: &ChildRow,
        org: &OrganizationRow,
        default_environments: bool,
    ) -> Result<Vec<EnvironmentRow>> {
        let mut environments = Vec::new();
        if default_environments {
            for slug in DEFAULT_ENVIRONMENTS {
                let env = EnvironmentRow {
                    id: new_id().to_string(),
                    project_id: row.id.clone(),
                    slug: slug.to_string(),
                    display_name: slug.to_string(),
                    created_at_us: row.created_at_us,
                    updated_at_us: row.created_at_us,
                    version: 1,
                };
                self.store.insert_environment(tx, &env).await?;
                environments.push(env);
            }
        }
        self.emit(
            tx,
            caller,
            ("project", &row.id),
            (&org.id, &org.root_id),
            &events::ProjectCreated {
                project_id: row.id.clone(),
                organization_id: org.id.clone(),
                owner_team_id: row.team_id.clone().unwrap_or_default(),
                slug: row.slug.clone(),
                display_name: row.display_name.clone(),
                environments: environments.iter().map(event_environment).collect(),
            },
            Vec::new(),
            vec![target("project", &row.id, &row.display_name)],
        )
        .await?;
        Ok(environments)
    }

    /// Creates the installation's default project
    /// (`organization.default_project`; none when it is empty) in an
    /// organization this very request created, with the default
    /// environments, as `CreateProject` would: same quota, same event. The
    /// organization's owner holds `project.create` there by their role, so
    /// no check is asked; a retry of the request finds the project it made.
    pub(crate) async fn create_default_project(
        &self,
        caller: &Caller,
        org: &OrganizationRow,
    ) -> Result<Option<(ChildRow, Vec<EnvironmentRow>)>> {
        let name = self.options.default_project.trim();
        if name.is_empty() {
            return Ok(None);
        }
        let input = NewChild {
            slug: String::new(),
            display_name: name.to_string(),
            description: String::new(),
            team_id: None,
        };
        let request_id = format!("default-project-{}", org.id);
        let (created, org) = self
            .create_child_in(caller, Children::Projects, org.clone(), input, &request_id)
            .await?;
        Ok(Some(
            self.finish_project(caller, created, &org, true).await?,
        ))
    }
}

/// The `ProjectService` handler.
#[derive(Debug, Clone)]
pub struct ProjectApi(pub Core);

/// The ALREADY_EXISTS of the environments' unique index as the refusal
/// naming `slug`; other errors as they are.
fn environment_slug_taken(slug: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e.code() {
        Code::AlreadyExists => Refusal::EnvironmentSlugTaken { slug: slug.into() }.into(),
        _ => e,
    }
}

fn event_environment(row: &EnvironmentRow) -> events::Environment {
    events::Environment {
        environment_id: row.id.clone(),
        name: row.slug.clone(),
    }
}

/// The team id in a project's `team` field, if set, naming the field
/// under `prefix` (`project`, or `records[3]` for an import).
pub(crate) fn team_field(
    prefix: &str,
    project: &pb::Project,
    organization_id: Option<&str>,
) -> Result<Option<String>> {
    if project.team.is_empty() {
        return Ok(None);
    }
    let field = format!("{prefix}.team");
    let team = TeamName::parse(&field, &project.team)?;
    if organization_id.is_some_and(|o| o != team.organization) {
        return Err(Error::invalid_field(
            field,
            "must be a team of the project's organization",
        ));
    }
    Ok(Some(team.id))
}

fn environment_ids(field: &str, name: &str) -> Result<(String, String, String)> {
    let name = EnvironmentName::parse(field, name)?;
    Ok((name.organization, name.project, name.id))
}

/// A cursor of the environment listing.
#[derive(Serialize, Deserialize)]
struct After(String);

impl Core {
    /// A live project whose environments the caller may change (or read).
    async fn project_for_environments(
        &self,
        caller: &Caller,
        organization_id: &str,
        project_id: &str,
        manage: bool,
    ) -> Result<ChildRow> {
        let name = ProjectName::new(organization_id, project_id).to_string();
        let project = self
            .child(
                caller,
                Children::Projects,
                &name,
                "parent",
                manage.then_some(Permission::PROJECT_MANAGE),
            )
            .await?;
        if manage && project.deleted_at_us.is_some() {
            return Err(Refusal::Deleted { noun: "project" }.into());
        }
        Ok(project)
    }

    async fn environment(
        &self,
        caller: &Caller,
        name: &str,
        manage: bool,
    ) -> Result<(ChildRow, EnvironmentRow)> {
        let (organization_id, project_id, id) = environment_ids("name", name)?;
        let project = self
            .project_for_environments(caller, &organization_id, &project_id, manage)
            .await?;
        let env = self
            .store
            .environment(&project.id, &id)
            .await?
            .ok_or_else(|| not_found("environment"))?;
        Ok((project, env))
    }
}

#[tonic::async_trait]
impl pb::project_service_server::ProjectService for ProjectApi {
    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let project = crate::validate::present("project", r.project)?;
        let parent = OrganizationName::parse("parent", &r.parent)?;
        let input = NewChild {
            slug: project.slug.clone(),
            display_name: project.display_name.clone(),
            description: project.description.clone(),
            team_id: team_field("project", &project, Some(&parent.id))?,
        };
        let (created, org) = self
            .0
            .create_child(&caller, Children::Projects, &parent, input, &r.request_id)
            .await?;
        let (row, environments) = self
            .0
            .finish_project(&caller, created, &org, !r.skip_default_environments)
            .await?;
        Ok(Response::new(pb::CreateProjectResponse {
            project: Some(project_to_proto(&row)),
            environments: environments
                .iter()
                .map(|e| environment_to_proto(&org.id, e))
                .collect(),
        }))
    }

    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::GetProjectResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let row = self
            .0
            .child(
                &caller,
                Children::Projects,
                &request.get_ref().name,
                "name",
                None,
            )
            .await?;
        Ok(Response::new(pb::GetProjectResponse {
            project: Some(project_to_proto(&row)),
        }))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let team = if r.team.is_empty() {
            None
        } else {
            Some(TeamName::parse("team", &r.team)?.id)
        };
        let (rows, next_page_token) = self
            .0
            .list_children(
                &caller,
                Children::Projects,
                &r.parent,
                ListQuery {
                    page_size: r.page_size,
                    page_token: &r.page_token,
                    name_prefix: &r.name_prefix,
                    team: team.as_deref(),
                    show_deleted: r.show_deleted,
                },
            )
            .await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: rows.iter().map(project_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::UpdateProjectResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let project = crate::validate::present("project", r.project)?;
        let (organization_id, _) = child_ids(Children::Projects, "project.name", &project.name)?;
        let values = NewChild {
            slug: project.slug.clone(),
            display_name: project.display_name.clone(),
            description: project.description.clone(),
            team_id: team_field("project", &project, Some(&organization_id))?,
        };
        let after = self
            .0
            .update_child(
                &caller,
                Children::Projects,
                NewChildUpdate {
                    name: &project.name,
                    etag: &project.etag,
                    mask: r.update_mask.as_ref(),
                    fields: &values,
                },
                |row, changed_fields| events::ProjectUpdated {
                    project_id: row.id.clone(),
                    organization_id: row.organization_id.clone(),
                    owner_team_id: row.team_id.clone().unwrap_or_default(),
                    slug: row.slug.clone(),
                    display_name: row.display_name.clone(),
                    changed_fields,
                },
            )
            .await?;
        Ok(Response::new(pb::UpdateProjectResponse {
            project: Some(project_to_proto(&after)),
        }))
    }

    async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Result<Response<pb::DeleteProjectResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .set_child_deleted(&caller, Children::Projects, &r.name, &r.etag, true, |row| {
                events::ProjectDeleted {
                    project_id: row.id.clone(),
                    organization_id: row.organization_id.clone(),
                    display_name: row.display_name.clone(),
                    purge_time: row.purge_at_us.map(timestamp),
                }
            })
            .await?;
        Ok(Response::new(pb::DeleteProjectResponse {
            project: Some(project_to_proto(&row)),
        }))
    }

    async fn undelete_project(
        &self,
        request: Request<pb::UndeleteProjectRequest>,
    ) -> Result<Response<pb::UndeleteProjectResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .set_child_deleted(
                &caller,
                Children::Projects,
                &r.name,
                &r.etag,
                false,
                |row| events::ProjectUndeleted {
                    project_id: row.id.clone(),
                    organization_id: row.organization_id.clone(),
                },
            )
            .await?;
        Ok(Response::new(pb::UndeleteProjectResponse {
            project: Some(project_to_proto(&row)),
        }))
    }

    async fn purge_project(
        &self,
        request: Request<pb::PurgeProjectRequest>,
    ) -> Result<Response<pb::PurgeProjectResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .child(
                &caller,
                Children::Projects,
                &r.name,
                "name",
                Some(Children::Projects.delete_permission()),
            )
            .await?;
        check_etag(&r.etag, row.version)?;
        if row.deleted_at_us.is_none() {
            return Err(Refusal::PurgeOfLiveProject.into());
        }
        if self
            .0
            .access
            .project_in_use(&caller, &row.organization_id, &row.id)
            .await?
        {
            return Err(Refusal::ProjectInUse.into());
        }
        let mut tx = self.0.begin().await?;
        match self
            .0
            .store
            .child(Children::Projects, &row.organization_id, &row.id)
            .await?
        {
            Some(now) if now.version == row.version => {}
            _ => {
                return Err(Refusal::Changed { noun: "project" }.into());
            }
        }
        self.0.store.purge_project(&mut tx, &row.id).await?;
        self.0
            .child_event(
                &mut tx,
                &caller,
                Children::Projects,
                &row,
                &events::ProjectPurged {
                    project_id: row.id.clone(),
                    organization_id: row.organization_id.clone(),
                },
                Vec::new(),
            )
            .await?;
        self.0.commit(tx).await?;
        Ok(Response::new(pb::PurgeProjectResponse {}))
    }

    async fn create_environment(
        &self,
        request: Request<pb::CreateEnvironmentRequest>,
    ) -> Result<Response<pb::CreateEnvironmentResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let input = crate::validate::present("environment", r.environment)?;
        validate::request_id(&r.request_id)?;
        let (organization_id, project_id) = child_ids(Children::Projects, "parent", &r.parent)?;
        validate::short_slug("environment.slug", &input.slug)?;
        let display_name = if input.display_name.is_empty() {
            input.slug.clone()
        } else {
            input.display_name.clone()
        };
        validate::display_name("environment.display_name", &display_name)?;
        let project = self
            .0
            .project_for_environments(&caller, &organization_id, &project_id, true)
            .await?;
        let caller_name = caller.resource_name();
        if let Some(id) = self
            .0
            .replay(&caller_name, "CreateEnvironment", &r.request_id)
            .await?
        {
            let env = self
                .0
                .store
                .environment(&project.id, &id)
                .await?
                .ok_or_else(|| not_found("environment"))?;
            return Ok(Response::new(pb::CreateEnvironmentResponse {
                environment: Some(environment_to_proto(&organization_id, &env)),
            }));
        }
        let now = now_micros();
        let env = EnvironmentRow {
            id: new_id().to_string(),
            project_id: project.id.clone(),
            slug: input.slug.clone(),
            display_name,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.0.begin().await?;
        self.0
            .store
            .insert_environment(&mut tx, &env)
            .await
            .map_err(environment_slug_taken(&env.slug))?;
        self.0
            .store
            .remember_request(
                &mut tx,
                &caller_name,
                "CreateEnvironment",
                &r.request_id,
                &env.id,
            )
            .await?;
        self.0
            .child_event(
                &mut tx,
                &caller,
                Children::Projects,
                &project,
                &events::EnvironmentAdded {
                    project_id: project.id.clone(),
                    organization_id: organization_id.clone(),
                    environment: Some(event_environment(&env)),
                },
                Vec::new(),
            )
            .await?;
        self.0.commit(tx).await?;
        Ok(Response::new(pb::CreateEnvironmentResponse {
            environment: Some(environment_to_proto(&organization_id, &env)),
        }))
    }

    async fn get_environment(
        &self,
        request: Request<pb::GetEnvironmentRequest>,
    ) -> Result<Response<pb::GetEnvironmentResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let (project, env) = self
            .0
            .environment(&caller, &request.get_ref().name, false)
            .await?;
        Ok(Response::new(pb::GetEnvironmentResponse {
            environment: Some(environment_to_proto(&project.organization_id, &env)),
        }))
    }

    async fn list_environments(
        &self,
        request: Request<pb::ListEnvironmentsRequest>,
    ) -> Result<Response<pb::ListEnvironmentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let (organization_id, project_id) = child_ids(Children::Projects, "parent", &r.parent)?;
        let project = self
            .0
            .project_for_environments(&caller, &organization_id, &project_id, false)
            .await?;
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("environments|{}", project.id);
        let after = self
            .0
            .page_tokens
            .decode::<After>(query.as_bytes(), &r.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let mut rows = self
            .0
            .store
            .environments(&project.id, &after, size as i64 + 1)
            .await?;
        let more = rows.len() > size;
        rows.truncate(size);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => self
                .0
                .page_tokens
                .encode(query.as_bytes(), &After(last.id.clone())),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListEnvironmentsResponse {
            environments: rows
                .iter()
                .map(|e| environment_to_proto(&organization_id, e))
                .collect(),
            next_page_token,
        }))
    }

    async fn update_environment(
        &self,
        request: Request<pb::UpdateEnvironmentRequest>,
    ) -> Result<Response<pb::UpdateEnvironmentResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let input = crate::validate::present("environment", r.environment)?;
        let paths = validate::update_mask(r.update_mask.as_ref(), &["slug", "display_name"])?;
        let (project, current) = self.0.environment(&caller, &input.name, true).await?;
        check_etag(&input.etag, current.version)?;
        let mut next = current.clone();
        for path in paths {
            if path == "slug" {
                validate::short_slug("environment.slug", &input.slug)?;
                next.slug = input.slug.clone();
            } else {
                validate::display_name("environment.display_name", &input.display_name)?;
                next.display_name = input.display_name.clone();
            }
        }
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.0.begin().await?;
        let updated = self
            .0
            .store
            .update_environment(&mut tx, &next, current.version)
            .await
            .map_err(environment_slug_taken(&next.slug))?;
        if !updated {
            return Err(Refusal::Changed {
                noun: "environment",
            }
            .into());
        }
        self.0
            .child_event(
                &mut tx,
                &caller,
                Children::Projects,
                &project,
                &events::EnvironmentRenamed {
                    project_id: project.id.clone(),
                    organization_id: project.organization_id.clone(),
                    environment_id: next.id.clone(),
                    old_name: current.slug.clone(),
                    new_name: next.slug.clone(),
                },
                changed([
                    change("slug", &current.slug, &next.slug),
                    change("display_name", &current.display_name, &next.display_name),
                ]),
            )
            .await?;
        self.0.commit(tx).await?;
        Ok(Response::new(pb::UpdateEnvironmentResponse {
            environment: Some(environment_to_proto(&project.organization_id, &next)),
        }))
    }

    async fn delete_environment(
        &self,
        request: Request<pb::DeleteEnvironmentRequest>,
    ) -> Result<Response<pb::DeleteEnvironmentResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let (project, env) = self.0.environment(&caller, &r.name, true).await?;
        check_etag(&r.etag, env.version)?;
        let mut tx = self.0.begin().await?;
        if !self
            .0
            .store
            .delete_environment(
                &mut tx,
                &env.id,
                (!r.etag.is_empty()).then_some(env.version),
            )
            .await?
        {
            return Err(not_found("environment").into());
        }
        self.0
            .child_event(
                &mut tx,
                &caller,
                Children::Projects,
                &project,
                &events::EnvironmentRemoved {
                    project_id: project.id.clone(),
                    organization_id: project.organization_id.clone(),
                    environment: Some(event_environment(&env)),
                },
                Vec::new(),
            )
            .await?;
        self.0.commit(tx).await?;
        Ok(Response::new(pb::DeleteEnvironmentResponse {}))
    }
}
