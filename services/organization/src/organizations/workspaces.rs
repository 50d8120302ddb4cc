//! Workspaces and the `WorkspaceService`: a workspace groups trees under
//! one billing mode; whoever created it, or holds the permission on one of
//! its roots, manages it.

use super::*;
use crate::convert::{billing_mode_to_str, workspace_to_proto};
use tenantry_kit::names::WorkspaceName;

impl Core {
    pub(super) async fn create_workspace(
        &self,
        caller: &Caller,
        input: pb::Workspace,
        request_id: &str,
    ) -> Result<WorkspaceRow> {
        validate::request_id(request_id)?;
        if !(caller.is_user() || caller.is_internal()) {
            return Err(Error::permission_denied("workspace.create").with_domain(NAME));
        }
        validate::display_name("workspace.display_name", &input.display_name)?;
        let mode = billing_mode_to_str(input.billing_mode()).ok_or_else(|| {
            Error::invalid_field(
                "workspace.billing_mode",
                "must be SINGLE, ASSIGNED or POOLED",
            )
        })?;
        let caller_name = caller.resource_name();
        let load = |id: String| async move {
            self.store
                .workspace(&id)
                .await?
                .ok_or_else(|| not_found("workspace"))
        };
        if let Some(id) = self
            .replay(&caller_name, "CreateWorkspace", request_id)
            .await?
        {
            return load(id).await;
        }
        let now = now_micros();
        let row = WorkspaceRow {
            id: new_id().to_string(),
            display_name: input.display_name.clone(),
            billing_mode: mode.into(),
            created_by: caller_name.clone(),
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.begin().await?;
        if let Some(id) = self
            .store
            .replayed(&mut tx, &caller_name, "CreateWorkspace", request_id)
            .await?
        {
            drop(tx);
            return load(id).await;
        }
        self.store.insert_workspace(&mut tx, &row).await?;
        self.store
            .remember_request(
                &mut tx,
                &caller_name,
                "CreateWorkspace",
                request_id,
                &row.id,
            )
            .await?;
        let mut event = tenantry_kit::outbox::NewEvent::new(
            "workspace",
            row.id.clone(),
            caller.actor(),
            &events::WorkspaceCreated {
                workspace_id: row.id.clone(),
                display_name: row.display_name.clone(),
                billing_mode: event_billing_mode(&row.billing_mode),
            },
        )
        .with_request(caller.request.clone());
        event.targets = vec![target("workspace", &row.id, &row.display_name)];
        tx.emit(event).await?;
        self.commit(tx).await?;
        Ok(row)
    }

    pub(super) async fn readable_workspace(
        &self,
        caller: &Caller,
        name: &str,
        permission: Permission,
    ) -> Result<WorkspaceRow> {
        let id = WorkspaceName::parse("name", name)?.id;
        let ws = self
            .store
            .workspace(&id)
            .await?
            .ok_or_else(|| not_found("workspace"))?;
        if self.workspace_allows(caller, &ws, permission).await? {
            Ok(ws)
        } else if permission != Permission::ORGANIZATION_READ
            && self
                .workspace_allows(caller, &ws, Permission::ORGANIZATION_READ)
                .await?
        {
            Err(Error::permission_denied(permission).with_domain(NAME))
        } else {
            Err(not_found("workspace"))
        }
    }
}

/// A cursor of the workspace listing.
#[derive(Serialize, Deserialize)]
struct AfterWorkspace(String);

#[tonic::async_trait]
impl pb::workspace_service_server::WorkspaceService for WorkspaceApi {
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::CreateWorkspaceResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let workspace = crate::validate::present("workspace", request.workspace)?;
        let row = self
            .0
            .create_workspace(&caller, workspace, &request.request_id)
            .await?;
        Ok(Response::new(pb::CreateWorkspaceResponse {
            workspace: Some(workspace_to_proto(&row)),
        }))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> Result<Response<pb::GetWorkspaceResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let row = self
            .0
            .readable_workspace(
                &caller,
                &request.get_ref().name,
                Permission::ORGANIZATION_READ,
            )
            .await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            workspace: Some(workspace_to_proto(&row)),
        }))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let core = &self.0;
        let r = request.get_ref();
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("workspaces|{}|{}", caller.resource_name(), r.billing_mode);
        let after = core
            .page_tokens
            .decode::<AfterWorkspace>(query.as_bytes(), &r.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let mode = billing_mode_to_str(r.billing_mode()).unwrap_or_default();
        // The workspaces of the trees the caller belongs to, and those the
        // caller created.
        let ids = if caller.is_internal() {
            None
        } else {
            let roots = core.member_roots(&caller).await?;
            let refs: Vec<&str> = roots.iter().map(String::as_str).collect();
            let rows = core.store.organizations_by_id(&refs).await?;
            let ws: BTreeSet<String> = rows.into_iter().map(|r| r.workspace_id).collect();
            Some(ws.into_iter().collect::<Vec<_>>())
        };
        let mut rows = core
            .store
            .workspaces(
                ids.as_deref(),
                &caller.resource_name(),
                mode,
                &after,
                size as i64 + 1,
            )
            .await?;
        let more = rows.len() > size;
        rows.truncate(size);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => core
                .page_tokens
                .encode(query.as_bytes(), &AfterWorkspace(last.id.clone())),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: rows.iter().map(workspace_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_workspace(
        &self,
        request: Request<pb::UpdateWorkspaceRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let core = &self.0;
        let request = request.into_inner();
        let input = crate::validate::present("workspace", request.workspace)?;
        if request
            .update_mask
            .as_ref()
            .is_some_and(|m| m.paths.iter().any(|p| p == "billing_mode"))
        {
            return Err(Refusal::BillingModeImmutable.into());
        }
        validate::update_mask(request.update_mask.as_ref(), &["display_name"])?;
        validate::display_name("workspace.display_name", &input.display_name)?;
        let current = core
            .readable_workspace(&caller, &input.name, Permission::BILLING_MANAGE)
            .await?;
        check_etag(&input.etag, current.version)?;
        let mut next = current.clone();
        next.display_name = input.display_name.clone();
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = core.begin().await?;
        match core.store.workspace_in(&mut tx, &current.id).await? {
            Some(now) if now.version == current.version => {}
            _ => return Err(Refusal::ConcurrentUpdate.into()),
        }
        core.store.update_workspace(&mut tx, &next).await?;
        let mut event = tenantry_kit::outbox::NewEvent::new(
            "workspace",
            next.id.clone(),
            caller.actor(),
            &events::WorkspaceUpdated {
                workspace_id: next.id.clone(),
                display_name: next.display_name.clone(),
                changed_fields: vec!["display_name".into()],
            },
        )
        .with_request(caller.request.clone())
        .with_changes(vec![change(
            "display_name",
            &current.display_name,
            &next.display_name,
        )]);
        event.targets = vec![target("workspace", &next.id, &next.display_name)];
        tx.emit(event).await?;
        core.commit(tx).await?;
        Ok(Response::new(pb::UpdateWorkspaceResponse {
            workspace: Some(workspace_to_proto(&next)),
        }))
    }
}
