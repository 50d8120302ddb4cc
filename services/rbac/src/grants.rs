//! `ProjectGrantService`: access to one project for a user (a member, or an
//! external user who is not), a team of the project's organization, or
//! everyone holding a role there; at viewer, contributor or admin level.

use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::names::{ProjectGrantName, ProjectName, TeamName, UserName};
use tenantry_kit::page_token::page_size;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1::ZedToken;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::{event_subject, level_from, level_to};
use crate::engine::{AccessLevel, Change, GrantSubject, PROJECT};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::memberships::check_etag;
use crate::store::{GrantRow, Tx};
use crate::{After, Caller, Core, NAME};

/// The `ProjectGrantService` handler.
#[derive(Debug, Clone)]
pub struct ProjectGrantApi(pub Core);

/// A project grant's name as its project's name and its own id.
fn project_and_grant(name: ProjectGrantName) -> (ProjectName, String) {
    let ProjectGrantName {
        organization,
        project,
        id,
    } = name;
    (ProjectName::new(organization, project), id)
}

impl Core {
    /// The project, if it is a live project of the organization the caller
    /// may act on with `permission`.
    async fn project_access(
        &self,
        caller: &Caller,
        project: &ProjectName,
        permission: Permission,
    ) -> Result<()> {
        let (organization_id, project_id) = (project.organization.as_str(), project.id.as_str());
        let (known, live) = {
            let index = self.index.read();
            (
                index.node(PROJECT, project_id).is_some()
                    && index.under("project", project_id, organization_id),
                index.within("project", project_id, organization_id),
            )
        };
        if !known {
            return Err(Error::not_found("project").with_domain(NAME));
        }
        if live {
            self.authorize(
                caller,
                ("project", project_id),
                permission,
                Permission::PROJECT_READ,
                "project",
            )
            .await
        } else {
            // A soft-deleted project is out of the index's reach; its grants
            // answer to those who may create projects in its organization.
            self.authorize(
                caller,
                ("organization", organization_id),
                Permission::PROJECT_CREATE,
                Permission::ORGANIZATION_READ,
                "project",
            )
            .await
        }
    }

    /// A grant of a project the caller may act on with `permission`.
    async fn accessible_grant(
        &self,
        caller: &Caller,
        project: &ProjectName,
        id: &str,
        permission: Permission,
    ) -> Result<GrantRow> {
        self.project_access(caller, project, permission).await?;
        self.store
            .grant(&project.id, id)
            .await?
            .ok_or_else(|| Error::not_found("project grant").with_domain(NAME))
    }

    async fn grant_subject(
        &self,
        organization_id: &str,
        input: &pb::ProjectGrant,
    ) -> Result<GrantSubject> {
        use pb::project_grant::Subject;
        match &input.subject {
            Some(Subject::User(name)) => {
                let user = UserName::parse("project_grant.user", name)?.id;
                // Someone outside the tree becomes an external user only by
                // accepting an invitation to the project.
                self.require_joined(organization_id, &user).await?;
                Ok(GrantSubject::User(user))
            }
            Some(Subject::Team(name)) => {
                let TeamName {
                    organization,
                    id: team,
                } = TeamName::parse("project_grant.team", name)?;
                if organization != organization_id
                    || !self.index.read().within("team", &team, organization_id)
                {
                    return Err(Error::invalid_field(
                        "project_grant.team",
                        "must be a team of the project's organization",
                    ));
                }
                Ok(GrantSubject::Team(team))
            }
            Some(Subject::Role(name)) => {
                self.valid_roles(
                    organization_id,
                    std::slice::from_ref(name),
                    "project_grant.role",
                )
                .await?;
                Ok(GrantSubject::Role(name.clone()))
            }
            None => Err(Error::invalid_field(
                "project_grant",
                "needs a user, a team or a role",
            )),
        }
    }
}

impl Core {
    /// The grant `id` on `project` that the caller, who manages the
    /// project's grants, is about to change, as of `etag`.
    async fn grant_to_change(
        &self,
        caller: &Caller,
        project: &ProjectName,
        id: &str,
        etag: &str,
    ) -> Result<GrantRow> {
        let current = self
            .accessible_grant(caller, project, id, Permission::PROJECT_GRANTS_MANAGE)
            .await?;
        check_etag(etag, current.version)?;
        Ok(current)
    }

    /// What a create or update of a grant answers: the grant as written,
    /// and the token of the write.
    async fn grant_written(
        &self,
        caller: &Caller,
        g: &GrantRow,
        revision: i64,
    ) -> Result<(Option<pb::ProjectGrant>, Option<ZedToken>)> {
        Ok((
            Some(self.grant_to_proto(caller, g).await?),
            Some(token(revision)),
        ))
    }

    /// Writes a change to the grant `g` (`level` its access now, `None`
    /// once revoked) and its event `payload`, and commits; the revision.
    async fn write_grant<M: tenantry_proto::EventType>(
        &self,
        tx: Tx,
        caller: &Caller,
        g: &GrantRow,
        level: Option<AccessLevel>,
        payload: &M,
    ) -> Result<i64> {
        let event = self
            .event(
                caller,
                ("project", &g.project_id),
                &g.organization_id,
                payload,
            )
            .await;
        let change = Change::ProjectGrant {
            project: g.project_id.clone(),
            subject: g.subject.clone(),
            level,
        };
        self.write(tx, &[change], vec![event]).await
    }
}

#[tonic::async_trait]
impl pb::project_grant_service_server::ProjectGrantService for ProjectGrantApi {
    async fn create_project_grant(
        &self,
        request: Request<pb::CreateProjectGrantRequest>,
    ) -> Result<Response<pb::CreateProjectGrantResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let project = ProjectName::parse("parent", &r.parent)?;
        let input = r
            .project_grant
            .ok_or_else(|| Error::invalid_field("project_grant", "is required"))?;
        self.0
            .project_access(&caller, &project, Permission::PROJECT_GRANTS_MANAGE)
            .await?;
        let ProjectName {
            organization: organization_id,
            id: project_id,
        } = project;
        if let Some(id) = self
            .0
            .store
            .replayed(&caller.principal.id, "CreateProjectGrant", &r.request_id)
            .await?
            && let Some(grant) = self.0.store.grant(&project_id, &id).await?
        {
            return Ok(Response::new(pb::CreateProjectGrantResponse {
                project_grant: Some(self.0.grant_to_proto(&caller, &grant).await?),
                written_at: Some(token(self.0.index.applied())),
            }));
        }
        let level = level_from(input.access_level())?;
        let subject = self.0.grant_subject(&organization_id, &input).await?;
        let now = now_micros();
        let grant = GrantRow {
            id: new_id().to_string(),
            organization_id: organization_id.clone(),
            project_id: project_id.clone(),
            subject: subject.clone(),
            level,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let external = matches!(&subject, GrantSubject::User(u) if self.0.store.membership(&organization_id, u).await?.is_none());
        let mut tx = self.0.store.begin().await?;
        self.0
            .store
            .insert_grant(&mut tx, &grant)
            .await
            .map_err(Refusal::AlreadyGranted.on_conflict())?;
        self.0
            .store
            .remember(
                &mut tx,
                &caller.principal.id,
                "CreateProjectGrant",
                &r.request_id,
                &grant.id,
            )
            .await?;
        let event = events::ProjectAccessGranted {
            grant_id: grant.id.clone(),
            project_id: project_id.clone(),
            organization_id: organization_id.clone(),
            subject: Some(event_subject(&subject)),
            access_level: level_to(level) as i32,
            external,
        };
        let revision = self
            .0
            .write_grant(tx, &caller, &grant, Some(level), &event)
            .await?;
        let (project_grant, written_at) = self.0.grant_written(&caller, &grant, revision).await?;
        Ok(Response::new(pb::CreateProjectGrantResponse {
            project_grant,
            written_at,
        }))
    }

    async fn get_project_grant(
        &self,
        request: Request<pb::GetProjectGrantRequest>,
    ) -> Result<Response<pb::GetProjectGrantResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let (project, id) =
            project_and_grant(ProjectGrantName::parse("name", &request.get_ref().name)?);
        let grant = self
            .0
            .accessible_grant(&caller, &project, &id, Permission::PROJECT_READ)
            .await?;
        Ok(Response::new(pb::GetProjectGrantResponse {
            project_grant: Some(self.0.grant_to_proto(&caller, &grant).await?),
        }))
    }

    async fn list_project_grants(
        &self,
        request: Request<pb::ListProjectGrantsRequest>,
    ) -> Result<Response<pb::ListProjectGrantsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let project = ProjectName::parse("parent", &r.parent)?;
        self.0
            .project_access(&caller, &project, Permission::PROJECT_READ)
            .await?;
        let project_id = project.id;
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("grants|{project_id}|{}|{}", r.access_level, r.external_only);
        let after = self.0.page_start(&query, &r.page_token)?;
        let rows = self.0.store.grants(&project_id, &after, 10_000).await?;
        let mut project_grants = Vec::new();
        let mut last = None;
        for g in &rows {
            if project_grants.len() == size {
                break;
            }
            last = Some(g.id.clone());
            let grant = self.0.grant_to_proto(&caller, g).await?;
            let level_ok = r.access_level == 0 || grant.access_level == r.access_level;
            if level_ok && (!r.external_only || grant.external) {
                project_grants.push(grant);
            }
        }
        let more = last
            .as_ref()
            .is_some_and(|l| rows.last().is_some_and(|end| end.id != *l));
        let next_page_token = match (more, last) {
            (true, Some(last)) => self.0.page_tokens.encode(query.as_bytes(), &After(last)),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListProjectGrantsResponse {
            project_grants,
            next_page_token,
        }))
    }

    async fn update_project_grant(
        &self,
        request: Request<pb::UpdateProjectGrantRequest>,
    ) -> Result<Response<pb::UpdateProjectGrantResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let input = r
            .project_grant
            .ok_or_else(|| Error::invalid_field("project_grant", "is required"))?;
        let (project, id) =
            project_and_grant(ProjectGrantName::parse("project_grant.name", &input.name)?);
        let paths: Vec<&str> = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if paths != ["access_level"] {
            return Err(
                Error::invalid_field("update_mask", "must be exactly `access_level`").into(),
            );
        }
        let current = self
            .0
            .grant_to_change(&caller, &project, &id, &input.etag)
            .await?;
        let ProjectName {
            organization: organization_id,
            id: project_id,
        } = project;
        let level = level_from(input.access_level())?;
        let mut next = current.clone();
        next.level = level;
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.0.store.begin().await?;
        self.0.store.update_grant_level(&mut tx, &next).await?;
        let event = events::ProjectAccessUpdated {
            grant_id: id,
            project_id: project_id.clone(),
            organization_id: organization_id.clone(),
            subject: Some(event_subject(&next.subject)),
            old_access_level: level_to(current.level) as i32,
            new_access_level: level_to(level) as i32,
        };
        let revision = self
            .0
            .write_grant(tx, &caller, &next, Some(level), &event)
            .await?;
        let (project_grant, written_at) = self.0.grant_written(&caller, &next, revision).await?;
        Ok(Response::new(pb::UpdateProjectGrantResponse {
            project_grant,
            written_at,
        }))
    }

    async fn delete_project_grant(
        &self,
        request: Request<pb::DeleteProjectGrantRequest>,
    ) -> Result<Response<pb::DeleteProjectGrantResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (project, id) = project_and_grant(ProjectGrantName::parse("name", &r.name)?);
        let current = self
            .0
            .grant_to_change(&caller, &project, &id, &r.etag)
            .await?;
        let ProjectName {
            organization: organization_id,
            id: project_id,
        } = project;
        let mut tx = self.0.store.begin().await?;
        self.0.store.delete_grant(&mut tx, &id).await?;
        let event = events::ProjectAccessRevoked {
            grant_id: id,
            project_id: project_id.clone(),
            organization_id: organization_id.clone(),
            subject: Some(event_subject(&current.subject)),
        };
        let revision = self
            .0
            .write_grant(tx, &caller, &current, None, &event)
            .await?;
        Ok(Response::new(pb::DeleteProjectGrantResponse {
            written_at: Some(token(revision)),
        }))
    }
}
