//! Custom roles, teams and project grants: a role is deleted only with a
//! reassignment, a team's lead manages its members, a grant reaches a team's
//! members, and external users get a project by invitation.

use super::*;

/// Acme, Ada's, with the Rocket project; Lee, Cat and a guest not yet in it.
struct Acme {
    w: World,
    ada: User,
    lee: User,
    cat: User,
    guest: User,
    acme: org::Organization,
    acme_id: String,
    rocket: String,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let lee = w.user("lee@example.com").await;
        let cat = w.user("cat@example.com").await;
        let guest = w.user("guest@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let rocket = w.project(&ada, &acme_id, "Rocket").await;
        Acme {
            w,
            ada,
            lee,
            cat,
            guest,
            acme,
            acme_id,
            rocket,
        }
    }
}

#[tokio::test]
async fn custom_roles_teams_and_project_grants() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        let auditor = a_custom_role_is_made_and_held(&a).await;
        a_held_role_is_deleted_only_with_a_reassignment(&a, &auditor).await;
        let (release, rocket_name) = a_granted_role_is_deleted_only_with_a_reassignment(&a).await;
        its_grants_move_to_the_role_it_was_reassigned_to(&a, &release, &rocket_name).await;
        let team = a_team_lead_manages_the_teams_members(&a).await;
        a_grant_to_the_team_reaches_its_members(&a, &team).await;
        let external = an_external_user_is_granted_a_project_by_invitation(&a).await;
        every_grant_names_its_subject_in_words(&a, &team).await;
        an_external_user_reads_only_the_granted_project(&a, &external).await;
        the_projects_readers_are_listed(&a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_custom_role_is_made_and_held(a: &Acme) -> pb::Role {
    let Acme {
        w,
        ada,
        lee,
        acme,
        acme_id,
        ..
    } = a;
    let mut roles = Roles::new(w.channel.clone());
    // A custom role, held, then deleted only with a reassignment.
    let bad = roles
        .create_role(authed(
            pb::CreateRoleRequest {
                parent: acme.name.clone(),
                role: Some(pb::Role {
                    display_name: "Broken".into(),
                    permissions: vec!["audit.fly".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let auditor = roles
        .create_role(authed(
            pb::CreateRoleRequest {
                parent: acme.name.clone(),
                role: Some(pb::Role {
                    display_name: "Auditor".into(),
                    permissions: vec!["organization.read".into(), "audit.read".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    let token = w
        .add_member(ada, acme_id, lee, &["roles/member", &auditor.name])
        .await;
    assert!(
        w.check(lee, "organization", acme_id, "audit.read", fresh(&token))
            .await
            .unwrap()
    );
    auditor
}

async fn a_held_role_is_deleted_only_with_a_reassignment(a: &Acme, auditor: &pb::Role) {
    let Acme {
        w,
        ada,
        lee,
        acme_id,
        ..
    } = a;
    let mut roles = Roles::new(w.channel.clone());
    let in_use = roles
        .delete_role(authed(
            pb::DeleteRoleRequest {
                name: auditor.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(in_use.code(), Code::FailedPrecondition);
    assert_eq!(
        in_use.get_details_error_info().unwrap().reason,
        "ROLE_IN_USE"
    );
    let deleted = roles
        .delete_role(authed(
            pb::DeleteRoleRequest {
                name: auditor.name.clone(),
                reassign_to: "roles/member".into(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !w.check(
            lee,
            "organization",
            acme_id,
            "audit.read",
            fresh(&deleted.written_at)
        )
        .await
        .unwrap()
    );
    assert!(
        w.check(lee, "organization", acme_id, "organization.read", None)
            .await
            .unwrap()
    );
}

async fn a_granted_role_is_deleted_only_with_a_reassignment(a: &Acme) -> (pb::Role, String) {
    let Acme {
        w,
        ada,
        acme,
        acme_id,
        rocket,
        ..
    } = a;
    let mut roles = Roles::new(w.channel.clone());
    // A role projects are granted to goes only with a reassignment, and
    // its grants move to the other role: nobody loses access by it.
    let release = roles
        .create_role(authed(
            pb::CreateRoleRequest {
                parent: acme.name.clone(),
                role: Some(pb::Role {
                    display_name: "Release".into(),
                    permissions: vec!["organization.read".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    let rocket_name = format!("organizations/{acme_id}/projects/{rocket}");
    Grants::new(w.channel.clone())
        .create_project_grant(authed(
            pb::CreateProjectGrantRequest {
                parent: rocket_name.clone(),
                project_grant: Some(pb::ProjectGrant {
                    subject: Some(pb::project_grant::Subject::Role(release.name.clone())),
                    access_level: authz::ProjectAccessLevel::Contributor as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let granted_role = roles
        .delete_role(authed(
            pb::DeleteRoleRequest {
                name: release.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    let info = granted_role.get_details_error_info().unwrap();
    assert_eq!(info.reason, "ROLE_IN_USE");
    assert_eq!(info.metadata["grants"], "1");
    (release, rocket_name)
}

async fn its_grants_move_to_the_role_it_was_reassigned_to(
    a: &Acme,
    release: &pb::Role,
    rocket_name: &str,
) {
    let Acme { w, ada, .. } = a;
    let mut roles = Roles::new(w.channel.clone());
    roles
        .delete_role(authed(
            pb::DeleteRoleRequest {
                name: release.name.clone(),
                reassign_to: "roles/finance".into(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let moved: Vec<(Option<pb::project_grant::Subject>, i32)> = Grants::new(w.channel.clone())
        .list_project_grants(authed(
            pb::ListProjectGrantsRequest {
                parent: rocket_name.to_string(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .project_grants
        .into_iter()
        .map(|g| (g.subject, g.access_level))
        .collect();
    assert_eq!(
        moved,
        [(
            Some(pb::project_grant::Subject::Role("roles/finance".into())),
            authz::ProjectAccessLevel::Contributor as i32
        )]
    );
}

async fn a_team_lead_manages_the_teams_members(a: &Acme) -> org::Team {
    let Acme {
        w,
        ada,
        lee,
        cat,
        acme,
        acme_id,
        ..
    } = a;
    // Teams: a lead manages the team's members, and only them.
    let team = Teams::new(w.channel.clone())
        .create_team(authed(
            org::CreateTeamRequest {
                parent: acme.name.clone(),
                team: Some(org::Team {
                    display_name: "Core".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    let team_id = id(&team.name);
    w.assert_allowed(ada, "team", &team_id, "team.manage").await;
    let mut team_members = TeamMembers::new(w.channel.clone());
    team_members
        .add_team_member(authed(
            pb::AddTeamMemberRequest {
                parent: team.name.clone(),
                team_member: Some(pb::TeamMember {
                    user: format!("users/{}", lee.id),
                    role: authz::TeamRole::Lead as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    // Cat is not a member of Acme yet: she cannot join its teams.
    let outsider = team_members
        .add_team_member(authed(
            pb::AddTeamMemberRequest {
                parent: team.name.clone(),
                team_member: Some(pb::TeamMember {
                    user: format!("users/{}", cat.id),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &lee.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(outsider.code(), Code::FailedPrecondition);
    w.add_member(ada, acme_id, cat, &["roles/finance"]).await;
    let added = team_members
        .add_team_member(authed(
            pb::AddTeamMemberRequest {
                parent: team.name.clone(),
                team_member: Some(pb::TeamMember {
                    user: format!("users/{}", cat.id),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &lee.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !w.check(
            lee,
            "team",
            &team_id,
            "team.manage",
            fresh(&added.written_at)
        )
        .await
        .unwrap()
    );

    team
}

async fn a_grant_to_the_team_reaches_its_members(a: &Acme, team: &org::Team) {
    let Acme {
        w,
        ada,
        cat,
        acme_id,
        rocket,
        ..
    } = a;
    // A grant to the team reaches its members; finance-only Cat gets
    // the project through it.
    let mut grants = Grants::new(w.channel.clone());
    let project_name = format!("organizations/{acme_id}/projects/{rocket}");
    let granted = grants
        .create_project_grant(authed(
            pb::CreateProjectGrantRequest {
                parent: project_name.clone(),
                project_grant: Some(pb::ProjectGrant {
                    subject: Some(pb::project_grant::Subject::Team(team.name.clone())),
                    access_level: authz::ProjectAccessLevel::Contributor as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        w.check(
            cat,
            "project",
            rocket,
            "resources.use",
            fresh(&granted.written_at)
        )
        .await
        .unwrap()
    );
}

async fn an_external_user_is_granted_a_project_by_invitation(
    a: &Acme,
) -> pb::AcceptInvitationResponse {
    let Acme {
        w,
        ada,
        guest,
        acme_id,
        rocket,
        ..
    } = a;
    let mut grants = Grants::new(w.channel.clone());
    let project_name = format!("organizations/{acme_id}/projects/{rocket}");
    // An external user: someone outside the organization, granted a
    // project by accepting an invitation to it (a direct grant to them
    // is refused as if they did not exist).
    let direct = grants
        .create_project_grant(authed(
            pb::CreateProjectGrantRequest {
                parent: project_name.clone(),
                project_grant: Some(pb::ProjectGrant {
                    subject: Some(pb::project_grant::Subject::User(format!(
                        "users/{}",
                        guest.id
                    ))),
                    access_level: authz::ProjectAccessLevel::Viewer as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(direct.code(), Code::NotFound);
    let external = tenantry_tests::people::accept(
        &w.sandbox,
        &w.channel,
        &ada.token,
        acme_id,
        &guest.token,
        pb::Invitation {
            external: true,
            projects: vec![pb::InvitationProject {
                project: project_name.clone(),
                access_level: authz::ProjectAccessLevel::Viewer as i32,
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(external.membership.is_none());
    assert_eq!(external.granted_projects, vec![project_name.clone()]);
    let grant = grants
        .list_project_grants(authed(
            pb::ListProjectGrantsRequest {
                parent: project_name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .project_grants
        .into_iter()
        .find(|g| {
            g.subject
                == Some(pb::project_grant::Subject::User(format!(
                    "users/{}",
                    guest.id
                )))
        })
        .expect("the guest's grant is listed");
    assert!(grant.external);
    external
}

async fn every_grant_names_its_subject_in_words(a: &Acme, team: &org::Team) {
    let Acme {
        w,
        ada,
        acme_id,
        rocket,
        ..
    } = a;
    let mut grants = Grants::new(w.channel.clone());
    let project_name = format!("organizations/{acme_id}/projects/{rocket}");
    // Every grant says whom it is for in words: a team by its name, a
    // role by its display name.
    let role_grant = grants
        .create_project_grant(authed(
            pb::CreateProjectGrantRequest {
                parent: project_name.clone(),
                project_grant: Some(pb::ProjectGrant {
                    subject: Some(pb::project_grant::Subject::Role("roles/member".into())),
                    access_level: authz::ProjectAccessLevel::Viewer as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .project_grant
        .unwrap();
    assert_eq!(role_grant.subject_display_name, "Member");
    let listed = grants
        .list_project_grants(authed(
            pb::ListProjectGrantsRequest {
                parent: project_name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .project_grants;
    let team_grant = listed
        .iter()
        .find(|g| g.subject == Some(pb::project_grant::Subject::Team(team.name.clone())))
        .expect("the team's grant is listed");
    assert_eq!(team_grant.subject_display_name, "Core");
}

async fn an_external_user_reads_only_the_granted_project(
    a: &Acme,
    external: &pb::AcceptInvitationResponse,
) {
    let Acme {
        w,
        ada,
        guest,
        acme,
        acme_id,
        rocket,
        ..
    } = a;
    let at = fresh(&external.written_at);
    assert!(
        w.check(guest, "project", rocket, "project.read", at.clone())
            .await
            .unwrap()
    );
    assert!(
        !w.check(guest, "project", rocket, "resources.use", at.clone())
            .await
            .unwrap()
    );
    assert!(
        !w.check(guest, "organization", acme_id, "organization.read", at)
            .await
            .unwrap()
    );
    let found = w
        .authz()
        .lookup_resources(authed(
            authz::LookupResourcesRequest {
                resource_type: "project".into(),
                permission: "project.read".into(),
                subject: subject(&guest.id),
                // (Their own first organization has its default project.)
                organization: acme.name.clone(),
                ..Default::default()
            },
            &guest.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.resource_ids, vec![rocket.clone()]);
    let listed = Members::new(w.channel.clone())
        .list_memberships(authed(
            pb::ListMembershipsRequest {
                parent: acme.name.clone(),
                include_external: true,
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .memberships;
    let guest_entry = listed
        .iter()
        .find(|m| m.user == format!("users/{}", guest.id))
        .unwrap();
    assert!(guest_entry.external);
    assert_eq!(guest_entry.user_email, "guest@example.com");
    assert!(listed.iter().filter(|m| !m.external).count() >= 3);
}

async fn the_projects_readers_are_listed(a: &Acme) {
    let Acme {
        w,
        ada,
        lee,
        cat,
        guest,
        rocket,
        ..
    } = a;
    // Who may read the project?
    let subjects = w
        .authz()
        .lookup_subjects(authed(
            authz::LookupSubjectsRequest {
                resource: object("project", rocket),
                permission: "project.read".into(),
                subject_type: "user".into(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .subjects;
    let ids: Vec<&str> = subjects.iter().map(|s| s.subject_id.as_str()).collect();
    for user in [&ada, &lee, &cat, &guest] {
        assert!(ids.contains(&user.id.as_str()));
    }
    assert!(
        subjects
            .iter()
            .any(|s| s.subject_id == guest.id && s.external)
    );
}
