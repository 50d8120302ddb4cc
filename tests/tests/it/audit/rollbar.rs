//! Rollbar's organization admin page, step by step.

use super::*;

/// Rollbar's organization, Ada's; Bob, Carol and Dave (of a partner)
/// signed up but not in it yet.
struct Rollbar {
    w: World,
    ada: User,
    bob: User,
    carol: User,
    dave: User,
    acme: String,
    name: String,
}

impl Rollbar {
    async fn start(storage: Storage) -> Rollbar {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@rollbar.example").await;
        let bob = w.user("bob@rollbar.example").await;
        let carol = w.user("carol@rollbar.example").await;
        let dave = w.user("dave@partner.example").await;
        let acme = w.organization(&ada, "Rollbar").await;
        let name = format!("organizations/{acme}");
        Rollbar {
            w,
            ada,
            bob,
            carol,
            dave,
            acme,
            name,
        }
    }
}

/// Rollbar's Organization Admin page, as its admin walks through it on
/// the free plan: organization information and 2FA for everyone, every
/// project with who has access and at what level (members and external
/// users told apart), roles DEFAULT (member) and ADMIN, accounts with
/// several roles, removing an account, invitations made and revoked, a
/// project deleted once nobody is assigned to it — and all of it in the
/// organization's audit log.
#[tokio::test]
async fn rollbar_runs_its_organization_admin_page() {
    for storage in storages() {
        let r = Rollbar::start(storage).await;
        organization_information_and_2fa_for_everyone(&r).await;
        let (web, api) = people_join_and_are_granted_projects(&r).await;
        project_access_tells_external_users_from_members(&r, &web, &api).await;
        the_roles_are_default_and_admin(&r).await;
        an_account_holds_several_roles_and_another_is_removed(&r).await;
        an_invitation_with_a_role_is_made_and_revoked(&r).await;
        a_project_goes_once_nobody_is_assigned_to_it(&r, &web, &api).await;
        the_log_shows_each_step_and_who_did_it(&r).await;
        r.w.sandbox.shutdown().await.unwrap();
    }
}

async fn organization_information_and_2fa_for_everyone(r: &Rollbar) {
    let Rollbar { w, ada, name, .. } = r;

    // Organization information, and 2FA required of every member.
    let current = Orgs::new(w.channel.clone())
        .get_organization(authed(
            org::GetOrganizationRequest { name: name.clone() },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    let updated = Orgs::new(w.channel.clone())
        .update_organization(authed(
            org::UpdateOrganizationRequest {
                organization: Some(org::Organization {
                    name: name.clone(),
                    display_name: "Rollbar Inc.".into(),
                    settings: Some(org::OrganizationSettings {
                        require_mfa: true,
                        ..Default::default()
                    }),
                    etag: current.etag.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into(), "settings.require_mfa".into()],
                }),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(updated.display_name, "Rollbar Inc.");
    assert!(updated.settings.unwrap().require_mfa);
}

async fn people_join_and_are_granted_projects(r: &Rollbar) -> (String, String) {
    let Rollbar {
        w,
        ada,
        bob,
        carol,
        dave,
        acme,
        name,
    } = r;
    // Projects, people with their roles, and who may use which project.
    let web = w.project(ada, acme, "web").await;
    let api = w.project(ada, acme, "api").await;
    let project = |p: &str| format!("{name}/projects/{p}");
    for (person, role) in [(&bob, "roles/member"), (&carol, "roles/admin")] {
        tenantry_tests::people::join(
            &w.sandbox,
            &w.channel,
            &ada.token,
            acme,
            &person.token,
            &[role],
        )
        .await;
    }
    let external = tenantry_tests::people::accept(
        &w.sandbox,
        &w.channel,
        &ada.token,
        acme,
        &dave.token,
        rbac_pb::Invitation {
            external: true,
            projects: vec![rbac_pb::InvitationProject {
                project: project(&web),
                access_level: authz::ProjectAccessLevel::Viewer as i32,
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(external.membership.is_none());
    Grants::new(w.channel.clone())
        .create_project_grant(authed(
            rbac_pb::CreateProjectGrantRequest {
                parent: project(&api),
                project_grant: Some(rbac_pb::ProjectGrant {
                    subject: Some(rbac_pb::project_grant::Subject::User(format!(
                        "users/{}",
                        bob.id
                    ))),
                    access_level: authz::ProjectAccessLevel::Contributor as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    (web, api)
}

async fn project_access_tells_external_users_from_members(r: &Rollbar, web: &str, api: &str) {
    let Rollbar { w, ada, name, .. } = r;
    let project = |p: &str| format!("{name}/projects/{p}");
    let access = |p: String| {
        let channel = w.channel.clone();
        let token = ada.token.clone();
        async move {
            Grants::new(channel)
                .list_project_grants(authed(
                    rbac_pb::ListProjectGrantsRequest {
                        parent: p,
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner()
                .project_grants
                .into_iter()
                .map(|g| (g.subject_display_name, g.access_level, g.external))
                .collect::<Vec<_>>()
        }
    };
    // The external user in blue, the member in grey.
    assert_eq!(
        access(project(web)).await,
        [(
            "dave@partner.example".to_string(),
            authz::ProjectAccessLevel::Viewer as i32,
            true
        )]
    );
    assert_eq!(
        access(project(api)).await,
        [(
            "bob@rollbar.example".to_string(),
            authz::ProjectAccessLevel::Contributor as i32,
            false
        )]
    );
}

async fn the_roles_are_default_and_admin(r: &Rollbar) {
    let Rollbar { w, ada, name, .. } = r;
    // The roles: DEFAULT is the member role, ADMIN the admin role.
    let roles: Vec<String> =
        rbac_pb::role_service_client::RoleServiceClient::new(w.channel.clone())
            .list_roles(authed(
                rbac_pb::ListRolesRequest {
                    parent: name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .roles
            .into_iter()
            .map(|r| r.display_name)
            .collect();
    for role in ["Owner", "Admin", "Member", "Finance"] {
        assert!(roles.iter().any(|r| r == role), "{role} in {roles:?}");
    }
}

async fn an_account_holds_several_roles_and_another_is_removed(r: &Rollbar) {
    let Rollbar {
        w,
        ada,
        bob,
        carol,
        acme,
        name,
        ..
    } = r;
    // An account with several roles; another removed, at once.
    let membership = |user: &User| format!("{name}/memberships/{}", user.id);
    Members::new(w.channel.clone())
        .update_membership(authed(
            rbac_pb::UpdateMembershipRequest {
                membership: Some(rbac_pb::Membership {
                    name: membership(bob),
                    roles: vec!["roles/member".into(), "roles/finance".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["roles".into()],
                }),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    Members::new(w.channel.clone())
        .delete_membership(authed(
            rbac_pb::DeleteMembershipRequest {
                name: membership(carol),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let listed: Vec<(String, Vec<String>)> = Members::new(w.channel.clone())
        .list_memberships(authed(
            rbac_pb::ListMembershipsRequest {
                parent: name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .memberships
        .into_iter()
        .map(|m| (m.name, m.roles))
        .collect();
    assert!(listed.contains(&(
        membership(bob),
        vec!["roles/member".into(), "roles/finance".into()]
    )));
    assert!(listed.iter().all(|(m, _)| *m != membership(carol)));
    let carol_reads =
        authz::authorization_service_client::AuthorizationServiceClient::new(w.channel.clone())
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: Some(authz::ObjectReference {
                        object_type: "organization".into(),
                        object_id: acme.clone(),
                    }),
                    permission: "organization.read".into(),
                    subject: Some(authz::SubjectReference {
                        object: Some(authz::ObjectReference {
                            object_type: "user".into(),
                            object_id: carol.id.clone(),
                        }),
                        optional_relation: String::new(),
                    }),
                    ..Default::default()
                },
                &carol.token,
            ))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(carol_reads.permissionship(), authz::Permissionship::Denied);
}

async fn an_invitation_with_a_role_is_made_and_revoked(r: &Rollbar) {
    let Rollbar { w, ada, name, .. } = r;
    // An invitation with a pre-assigned role, then revoked.
    let mut invitations = Invitations::new(w.channel.clone());
    let invited = invitations
        .create_invitation(authed(
            rbac_pb::CreateInvitationRequest {
                parent: name.clone(),
                invitation: Some(rbac_pb::Invitation {
                    email: "eve@rollbar.example".into(),
                    roles: vec!["roles/admin".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    invitations
        .revoke_invitation(authed(
            rbac_pb::RevokeInvitationRequest {
                name: invited.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let states: Vec<(String, i32)> = invitations
        .list_invitations(authed(
            rbac_pb::ListInvitationsRequest {
                parent: name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitations
        .into_iter()
        .map(|i| (i.email, i.state))
        .collect();
    assert!(states.contains(&(
        "eve@rollbar.example".into(),
        rbac_pb::invitation::State::Revoked as i32
    )));
}

async fn a_project_goes_once_nobody_is_assigned_to_it(r: &Rollbar, web: &str, api: &str) {
    let Rollbar { w, ada, name, .. } = r;
    let project = |p: &str| format!("{name}/projects/{p}");
    // A project goes for good only once nobody is assigned to it.
    let mut projects = Projects::new(w.channel.clone());
    for p in [&web, &api] {
        projects
            .delete_project(authed(
                org::DeleteProjectRequest {
                    name: project(p),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
    }
    let in_use = projects
        .purge_project(authed(
            org::PurgeProjectRequest {
                name: project(web),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(in_use.code(), Code::FailedPrecondition, "{in_use:?}");
    Grants::new(w.channel.clone())
        .delete_project_grant(authed(
            rbac_pb::DeleteProjectGrantRequest {
                name: Grants::new(w.channel.clone())
                    .list_project_grants(authed(
                        rbac_pb::ListProjectGrantsRequest {
                            parent: project(api),
                            ..Default::default()
                        },
                        &ada.token,
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .project_grants[0]
                    .name
                    .clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    projects
        .purge_project(authed(
            org::PurgeProjectRequest {
                name: project(api),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
}

async fn the_log_shows_each_step_and_who_did_it(r: &Rollbar) {
    let Rollbar { w, ada, acme, .. } = r;
    // The audit log page shows each step, with who did it. Each
    // service's events reach the log on their own, so one step's
    // arrival says nothing of another's: wait for each.
    for action in [
        "organization.updated",
        "project.created",
        "organization.member.added",
        "organization.member.updated",
        "organization.member.removed",
        "organization.member.invited",
        "organization.member.invitation_revoked",
        "project.access.granted",
        "project.access.revoked",
        "project.deleted",
        "project.purged",
    ] {
        let log = w.logged_with(ada, acme, action).await;
        let event = log
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("{action} is in the log"));
        assert!(event.actor.is_some(), "{action} says who");
    }
}
