//! Teams, projects and environments: created once, renamed, updated by
//! mask, deleted and purged within their rules and the plan's quota.

use super::*;

/// The Builders organization, Ada's, with the event tap open on it.
struct Builders {
    w: World,
    tap: EventTap,
    ada: String,
    token: String,
    org: pb::Organization,
    org_id: String,
}

impl Builders {
    async fn start(storage: Storage) -> Builders {
        let mut w = World::start(storage).await;
        let tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let org = w.root(&ada, &token, "Builders").await;
        let org_id = id(&org.name).to_string();
        Builders {
            w,
            tap,
            ada,
            token,
            org,
            org_id,
        }
    }
}

#[tokio::test]
async fn teams_projects_and_environments_live_and_die_with_quotas_and_grants() {
    for storage in storages() {
        let mut f = Builders::start(storage).await;
        let team = a_team_is_created_once_by_its_name(&mut f).await;
        let project = a_project_is_created_with_its_environments(&mut f, &team).await;
        a_replayed_create_returns_the_project_and_its_team_stays(&mut f, &team, &project).await;
        let environments = environments_are_added_and_renamed(&mut f, &project).await;
        stale_and_last_environments_are_kept(&mut f, &project, environments).await;
        updates_follow_their_masks_within_the_organization(&mut f, &project).await;
        a_project_is_purged_only_when_deleted_and_unused(&mut f, &project).await;
        a_team_that_owns_nothing_is_renamed_and_deleted(&mut f, &team).await;
        over_the_quota_nothing_is_created(&mut f).await;
        f.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_team_is_created_once_by_its_name(f: &mut Builders) -> pb::Team {
    let Builders {
        w,
        tap,
        ada,
        token,
        org,
        org_id,
    } = f;
    let team = w
        .teams
        .create_team(authed(
            pb::CreateTeamRequest {
                parent: org.name.clone(),
                team: Some(pb::Team {
                    display_name: "Platform Team".into(),
                    description: "keeps the lights on".into(),
                    ..Default::default()
                }),
                request_id: "team-1".into(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!(team.slug, "platform-team");
    let body: events::TeamCreated = payload(&tap.expect("team.created", EVENT_WAIT).await.unwrap());
    assert_eq!(body.organization_id, *org_id);
    w.grant(ada, id(&team.name), &["team.manage"]);
    let duplicate = w
        .teams
        .create_team(authed(
            pb::CreateTeamRequest {
                parent: org.name.clone(),
                team: Some(pb::Team {
                    display_name: "Another".into(),
                    slug: "platform-team".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);

    team
}

async fn a_project_is_created_with_its_environments(
    f: &mut Builders,
    team: &pb::Team,
) -> pb::Project {
    let Builders {
        w,
        tap,
        ada,
        token,
        org,
        ..
    } = f;
    let created = w
        .projects
        .create_project(authed(
            pb::CreateProjectRequest {
                parent: org.name.clone(),
                project: Some(pb::Project {
                    display_name: "Rocket".into(),
                    team: team.name.clone(),
                    ..Default::default()
                }),
                request_id: "project-1".into(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    let project = created.project.unwrap();
    let slugs: Vec<&str> = created
        .environments
        .iter()
        .map(|e| e.slug.as_str())
        .collect();
    assert_eq!(slugs, vec!["dev", "staging", "production"]);
    assert_eq!(project.team, team.name);
    let project_id = id(&project.name).to_string();
    let body: events::ProjectCreated = payload(
        &tap.expect_about("project.created", &project_id, EVENT_WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(body.environments.len(), 3);
    assert_eq!(body.owner_team_id, id(&team.name));
    w.grant(
        ada,
        &project_id,
        &["project.read", "project.manage", "project.delete"],
    );

    project
}

async fn a_replayed_create_returns_the_project_and_its_team_stays(
    f: &mut Builders,
    team: &pb::Team,
    project: &pb::Project,
) {
    let Builders { w, token, org, .. } = f;
    // Replaying the create returns the same project and environments.
    let replay = w
        .projects
        .create_project(authed(
            pb::CreateProjectRequest {
                parent: org.name.clone(),
                project: Some(pb::Project {
                    display_name: "Rocket".into(),
                    ..Default::default()
                }),
                request_id: "project-1".into(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.project.unwrap().name, project.name);
    assert_eq!(replay.environments.len(), 3);

    // A team that owns projects cannot be deleted.
    let owns = w
        .teams
        .delete_team(authed(
            pb::DeleteTeamRequest {
                name: team.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&owns), "TEAM_OWNS_PROJECTS");
}

async fn environments_are_added_and_renamed(
    f: &mut Builders,
    project: &pb::Project,
) -> (pb::Environment, pb::Environment) {
    let Builders { w, tap, token, .. } = f;
    // Environments: add, rename, remove.
    let qa = w
        .projects
        .create_environment(authed(
            pb::CreateEnvironmentRequest {
                parent: project.name.clone(),
                environment: Some(pb::Environment {
                    slug: "qa".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .environment
        .unwrap();
    assert_eq!(qa.display_name, "qa");
    tap.expect("environment.added", EVENT_WAIT).await.unwrap();
    let twin = w
        .projects
        .create_environment(authed(
            pb::CreateEnvironmentRequest {
                parent: project.name.clone(),
                environment: Some(pb::Environment {
                    slug: "qa".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(twin.code(), Code::AlreadyExists);
    let renamed = w
        .projects
        .update_environment(authed(
            pb::UpdateEnvironmentRequest {
                environment: Some(pb::Environment {
                    name: qa.name.clone(),
                    slug: "testing".into(),
                    etag: qa.etag.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["slug"]),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .environment
        .unwrap();
    assert_eq!(renamed.slug, "testing");
    let body: events::EnvironmentRenamed =
        payload(&tap.expect("environment.renamed", EVENT_WAIT).await.unwrap());
    assert_eq!(
        (body.old_name.as_str(), body.new_name.as_str()),
        ("qa", "testing")
    );
    (qa, renamed)
}

async fn stale_and_last_environments_are_kept(
    f: &mut Builders,
    project: &pb::Project,
    (qa, renamed): (pb::Environment, pb::Environment),
) {
    let Builders { w, tap, token, .. } = f;
    let stale = w
        .projects
        .delete_environment(authed(
            pb::DeleteEnvironmentRequest {
                name: qa.name.clone(),
                etag: qa.etag.clone(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    w.projects
        .delete_environment(authed(
            pb::DeleteEnvironmentRequest {
                name: qa.name.clone(),
                etag: renamed.etag.clone(),
            },
            token,
        ))
        .await
        .unwrap();
    tap.expect("environment.removed", EVENT_WAIT).await.unwrap();
    let left = w
        .projects
        .list_environments(authed(
            pb::ListEnvironmentsRequest {
                parent: project.name.clone(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .environments;
    assert_eq!(left.len(), 3);
}

async fn updates_follow_their_masks_within_the_organization(
    f: &mut Builders,
    project: &pb::Project,
) {
    let Builders { w, tap, token, .. } = f;
    // Updates with masks; a team of another organization is refused.
    let updated = w
        .projects
        .update_project(authed(
            pb::UpdateProjectRequest {
                project: Some(pb::Project {
                    name: project.name.clone(),
                    description: "to the moon".into(),
                    team: String::new(),
                    etag: project.etag.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["description", "team"]),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(updated.description, "to the moon");
    assert!(updated.team.is_empty());
    let event = tap.expect("project.updated", EVENT_WAIT).await.unwrap();
    assert!(
        event
            .changes
            .iter()
            .any(|c| c.field == "team" && c.after.is_empty())
    );
    let foreign_team = format!(
        "organizations/{}/teams/{}",
        tenantry_kit::id::new_id(),
        tenantry_kit::id::new_id()
    );
    let error = w
        .projects
        .update_project(authed(
            pb::UpdateProjectRequest {
                project: Some(pb::Project {
                    name: project.name.clone(),
                    team: foreign_team,
                    ..Default::default()
                }),
                update_mask: mask(&["team"]),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

async fn a_project_is_purged_only_when_deleted_and_unused(f: &mut Builders, project: &pb::Project) {
    let Builders { w, tap, token, .. } = f;
    let project_id = id(&project.name).to_string();
    // Soft delete, undelete, purge: purge needs a deleted project with
    // no grants and no resources.
    let delete = |w: &mut World| {
        let mut projects = w.projects.clone();
        let name = project.name.clone();
        let token = token.clone();
        async move {
            projects
                .delete_project(authed(
                    pb::DeleteProjectRequest {
                        name,
                        etag: String::new(),
                    },
                    &token,
                ))
                .await
        }
    };
    let purge = |w: &mut World| {
        let mut projects = w.projects.clone();
        let name = project.name.clone();
        let token = token.clone();
        async move {
            projects
                .purge_project(authed(
                    pb::PurgeProjectRequest {
                        name,
                        etag: String::new(),
                    },
                    &token,
                ))
                .await
        }
    };
    assert_eq!(reason(&purge(w).await.unwrap_err()), "NOT_DELETED");
    delete(w).await.unwrap();
    tap.expect("project.deleted", EVENT_WAIT).await.unwrap();
    w.rbac.state().granted_projects.insert(project_id.clone());
    assert_eq!(reason(&purge(w).await.unwrap_err()), "PROJECT_IN_USE");
    w.rbac.state().granted_projects.clear();
    w.rbac.state().used_projects.insert(project_id.clone());
    assert_eq!(reason(&purge(w).await.unwrap_err()), "PROJECT_IN_USE");
    w.rbac.state().used_projects.clear();
    w.projects
        .undelete_project(authed(
            pb::UndeleteProjectRequest {
                name: project.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap();
    tap.expect("project.undeleted", EVENT_WAIT).await.unwrap();
    delete(w).await.unwrap();
    purge(w).await.unwrap();
    tap.expect("project.purged", EVENT_WAIT).await.unwrap();
    let gone = w
        .projects
        .get_project(authed(
            pb::GetProjectRequest {
                name: project.name.clone(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

async fn a_team_that_owns_nothing_is_renamed_and_deleted(f: &mut Builders, team: &pb::Team) {
    let Builders {
        w, tap, token, org, ..
    } = f;
    // Team lifecycle now that it owns nothing.
    w.teams
        .update_team(authed(
            pb::UpdateTeamRequest {
                team: Some(pb::Team {
                    name: team.name.clone(),
                    display_name: "Platform".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name"]),
            },
            token,
        ))
        .await
        .unwrap();
    tap.expect("team.updated", EVENT_WAIT).await.unwrap();
    w.teams
        .delete_team(authed(
            pb::DeleteTeamRequest {
                name: team.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap();
    tap.expect("team.deleted", EVENT_WAIT).await.unwrap();
    w.teams
        .undelete_team(authed(
            pb::UndeleteTeamRequest {
                name: team.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap();
    tap.expect("team.undeleted", EVENT_WAIT).await.unwrap();
    let teams = w
        .teams
        .list_teams(authed(
            pb::ListTeamsRequest {
                parent: org.name.clone(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .teams;
    assert_eq!(teams.len(), 1);
}

async fn over_the_quota_nothing_is_created(f: &mut Builders) {
    let Builders {
        w,
        ada,
        token,
        org,
        org_id,
        ..
    } = f;
    // Over the plan's quota: RESOURCE_EXHAUSTED with the limit, and
    // nothing created.
    w.rbac.state().quotas.insert(
        (org_id.clone(), billing_pb::Metric::Projects as i32),
        (1, 1),
    );
    let over = w
        .projects
        .create_project(authed(
            pb::CreateProjectRequest {
                parent: org.name.clone(),
                project: Some(pb::Project {
                    display_name: "One Too Many".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted);
    let info = over.get_details_error_info().unwrap();
    assert_eq!(info.reason, "QUOTA_EXCEEDED");
    assert_eq!(info.metadata.get("limit").unwrap(), "1");
    w.rbac.state().quotas.insert(
        (org_id.clone(), billing_pb::Metric::SubOrganizations as i32),
        (0, 0),
    );
    let over = w
        .child(
            ada,
            token,
            org,
            "No Room",
            pb::OrganizationKind::Organization,
        )
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted);
    let projects = w
        .projects
        .list_projects(authed(
            pb::ListProjectsRequest {
                parent: org.name.clone(),
                show_deleted: true,
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert!(projects.is_empty(), "nothing was created");
}

#[tokio::test]
async fn external_users_see_only_the_projects_granted_to_them() {
    let mut w = World::start(Storage::Sqlite).await;
    let (ada, token) = w.user("ada@example.com").await;
    let (guest, guest_token) = w.user("guest@example.com").await;
    let org = w.root(&ada, &token, "Agency").await;
    let mut names = Vec::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        let project = w
            .projects
            .create_project(authed(
                pb::CreateProjectRequest {
                    parent: org.name.clone(),
                    project: Some(pb::Project {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        w.grant(&ada, id(&project.name), &["project.read"]);
        names.push(project.name);
    }
    w.grant(&guest, id(&names[1]), &["project.read"]);
    let visible = w
        .projects
        .list_projects(authed(
            pb::ListProjectsRequest {
                parent: org.name.clone(),
                ..Default::default()
            },
            &guest_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .projects;
    let visible: Vec<&str> = visible.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(visible, vec![names[1].as_str()]);
    assert_eq!(
        w.get(&guest_token, &org.name).await.unwrap_err().code(),
        Code::NotFound
    );
    let all = w
        .projects
        .list_projects(authed(
            pb::ListProjectsRequest {
                parent: org.name.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(all.len(), 3);
    w.sandbox.shutdown().await.unwrap();
}
