//! The `TeamService`: teams of an organization. Who is in a team (leads
//! and members) is the rbac service's business; this service keeps the
//! team itself.

use tenantry_kit::error::Result;
use tenantry_kit::names::OrganizationName;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::organization::v1 as pb;
use tonic::{Request, Response, Status};

use crate::access::Caller;
use crate::children::{Created, ListQuery, NewChild, NewChildUpdate};
use crate::convert::team_to_proto;
use crate::store::{ChildRow, Children, OrganizationRow};
use crate::{Core, target, timestamp};
use tenantry_kit::write::Write;

impl Core {
    /// Emits `team.created` for a team just inserted in `org`.
    pub(crate) async fn team_created(
        &self,
        tx: &mut Write,
        caller: &Caller,
        row: &ChildRow,
        org: &OrganizationRow,
    ) -> Result<()> {
        self.emit(
            tx,
            caller,
            ("team", &row.id),
            (&org.id, &org.root_id),
            &events::TeamCreated {
                team_id: row.id.clone(),
                organization_id: org.id.clone(),
                slug: row.slug.clone(),
                display_name: row.display_name.clone(),
            },
            Vec::new(),
            vec![target("team", &row.id, &row.display_name)],
        )
        .await
    }
}

/// The `TeamService` handler.
#[derive(Debug, Clone)]
pub struct TeamApi(pub Core);

fn fields(team: &pb::Team) -> NewChild {
    NewChild {
        slug: team.slug.clone(),
        display_name: team.display_name.clone(),
        description: team.description.clone(),
        team_id: None,
    }
}

#[tonic::async_trait]
impl pb::team_service_server::TeamService for TeamApi {
    async fn create_team(
        &self,
        request: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let team = crate::validate::present("team", r.team)?;
        let (created, org) = self
            .0
            .create_child(
                &caller,
                Children::Teams,
                &OrganizationName::parse("parent", &r.parent)?,
                fields(&team),
                &r.request_id,
            )
            .await?;
        let row = created.row().clone();
        if let Created::New { write: mut tx, .. } = created {
            self.0.team_created(&mut tx, &caller, &row, &org).await?;
            self.0.commit(tx).await?;
        }
        Ok(Response::new(pb::CreateTeamResponse {
            team: Some(team_to_proto(&row)),
        }))
    }

    async fn get_team(
        &self,
        request: Request<pb::GetTeamRequest>,
    ) -> Result<Response<pb::GetTeamResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let row = self
            .0
            .child(
                &caller,
                Children::Teams,
                &request.get_ref().name,
                "name",
                None,
            )
            .await?;
        Ok(Response::new(pb::GetTeamResponse {
            team: Some(team_to_proto(&row)),
        }))
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let (rows, next_page_token) = self
            .0
            .list_children(
                &caller,
                Children::Teams,
                &r.parent,
                ListQuery {
                    page_size: r.page_size,
                    page_token: &r.page_token,
                    name_prefix: &r.name_prefix,
                    team: None,
                    show_deleted: r.show_deleted,
                },
            )
            .await?;
        Ok(Response::new(pb::ListTeamsResponse {
            teams: rows.iter().map(team_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_team(
        &self,
        request: Request<pb::UpdateTeamRequest>,
    ) -> Result<Response<pb::UpdateTeamResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let team = crate::validate::present("team", r.team)?;
        let values = fields(&team);
        let after = self
            .0
            .update_child(
                &caller,
                Children::Teams,
                NewChildUpdate {
                    name: &team.name,
                    etag: &team.etag,
                    mask: r.update_mask.as_ref(),
                    fields: &values,
                },
                |row, changed_fields| events::TeamUpdated {
                    team_id: row.id.clone(),
                    organization_id: row.organization_id.clone(),
                    slug: row.slug.clone(),
                    display_name: row.display_name.clone(),
                    changed_fields,
                },
            )
            .await?;
        Ok(Response::new(pb::UpdateTeamResponse {
            team: Some(team_to_proto(&after)),
        }))
    }

    async fn delete_team(
        &self,
        request: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .set_child_deleted(&caller, Children::Teams, &r.name, &r.etag, true, |row| {
                events::TeamDeleted {
                    team_id: row.id.clone(),
                    organization_id: row.organization_id.clone(),
                    display_name: row.display_name.clone(),
                    purge_time: row.purge_at_us.map(timestamp),
                }
            })
            .await?;
        Ok(Response::new(pb::DeleteTeamResponse {
            team: Some(team_to_proto(&row)),
        }))
    }

    async fn undelete_team(
        &self,
        request: Request<pb::UndeleteTeamRequest>,
    ) -> Result<Response<pb::UndeleteTeamResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .set_child_deleted(&caller, Children::Teams, &r.name, &r.etag, false, |row| {
                events::TeamUndeleted {
                    team_id: row.id.clone(),
                    organization_id: row.organization_id.clone(),
                }
            })
            .await?;
        Ok(Response::new(pb::UndeleteTeamResponse {
            team: Some(team_to_proto(&row)),
        }))
    }
}
