//! Workspaces: a fixed billing mode, and the roots they hold.

use super::*;

/// Ada and Eve, signed up; no workspace yet.
struct People {
    w: World,
    ada: String,
    token: String,
    eve_token: String,
}

impl People {
    async fn start(storage: Storage) -> People {
        let w = World::start(storage).await;
        let (ada, token) = w.user("ada@example.com").await;
        let (_, eve_token) = w.user("eve@example.com").await;
        People {
            w,
            ada,
            token,
            eve_token,
        }
    }
}

#[tokio::test]
async fn workspaces_fix_their_billing_mode_and_hold_roots() {
    for storage in storages() {
        let mut p = People::start(storage).await;
        let workspace = a_workspace_needs_a_billing_mode_and_holds_a_root(&mut p).await;
        the_billing_mode_is_fixed_and_the_name_changes(&mut p, &workspace).await;
        each_lists_only_their_own_workspaces(&mut p, &workspace).await;
        p.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_workspace_needs_a_billing_mode_and_holds_a_root(p: &mut People) -> pb::Workspace {
    let People { w, ada, token, .. } = p;
    let unspecified = w
        .workspaces
        .create_workspace(authed(
            pb::CreateWorkspaceRequest {
                workspace: Some(pb::Workspace {
                    display_name: "No Mode".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);
    let workspace = w
        .workspaces
        .create_workspace(authed(
            pb::CreateWorkspaceRequest {
                workspace: Some(pb::Workspace {
                    display_name: "Holding".into(),
                    billing_mode: pb::BillingMode::Pooled as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    let root = w
        .orgs
        .create_organization(authed(
            pb::CreateOrganizationRequest {
                organization: Some(pb::Organization {
                    display_name: "Subsidiary A".into(),
                    workspace: workspace.name.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(root.workspace, workspace.name);
    w.grant(ada, id(&root.name), ORG_PERMISSIONS);
    w.member(ada, id(&root.name));

    workspace
}

async fn the_billing_mode_is_fixed_and_the_name_changes(p: &mut People, workspace: &pb::Workspace) {
    let People { w, token, .. } = p;
    let immutable = w
        .workspaces
        .update_workspace(authed(
            pb::UpdateWorkspaceRequest {
                workspace: Some(pb::Workspace {
                    name: workspace.name.clone(),
                    display_name: "Holding".into(),
                    billing_mode: pb::BillingMode::Single as i32,
                    ..Default::default()
                }),
                update_mask: mask(&["billing_mode"]),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(immutable.code(), Code::InvalidArgument);
    assert_eq!(reason(&immutable), "BILLING_MODE_IMMUTABLE");
    let renamed = w
        .workspaces
        .update_workspace(authed(
            pb::UpdateWorkspaceRequest {
                workspace: Some(pb::Workspace {
                    name: workspace.name.clone(),
                    display_name: "Holding Group".into(),
                    etag: workspace.etag.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name"]),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    assert_eq!(renamed.billing_mode, pb::BillingMode::Pooled as i32);
    assert_eq!(renamed.display_name, "Holding Group");
}

async fn each_lists_only_their_own_workspaces(p: &mut People, workspace: &pb::Workspace) {
    let People {
        w,
        token,
        eve_token,
        ..
    } = p;

    let hidden = w
        .workspaces
        .get_workspace(authed(
            pb::GetWorkspaceRequest {
                name: workspace.name.clone(),
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let stranger = w
        .orgs
        .create_organization(authed(
            pb::CreateOrganizationRequest {
                organization: Some(pb::Organization {
                    display_name: "Squatter".into(),
                    workspace: workspace.name.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
    let mine = w
        .workspaces
        .list_workspaces(authed(pb::ListWorkspacesRequest::default(), token))
        .await
        .unwrap()
        .into_inner()
        .workspaces;
    assert!(mine.iter().any(|ws| ws.name == workspace.name));
    let theirs = w
        .workspaces
        .list_workspaces(authed(pb::ListWorkspacesRequest::default(), eve_token))
        .await
        .unwrap()
        .into_inner()
        .workspaces;
    assert!(theirs.iter().all(|ws| ws.name != workspace.name));
}
