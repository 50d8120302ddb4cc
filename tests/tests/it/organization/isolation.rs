//! Another tenant's objects are not found and leak nothing.

use super::*;

/// Acme, Ada's, with the Core team and the Rocket project; Evil, Eve's.
struct TwoTenants {
    w: World,
    ada_token: String,
    eve: String,
    eve_token: String,
    acme: pb::Organization,
    evil: pb::Organization,
    team: pb::Team,
    project: pb::Project,
}

impl TwoTenants {
    async fn start(storage: Storage) -> TwoTenants {
        let mut w = World::start(storage).await;
        let (ada, ada_token) = w.user("ada@example.com").await;
        let (eve, eve_token) = w.user("eve@example.com").await;
        let acme = w.root(&ada, &ada_token, "Acme").await;
        let evil = w.root(&eve, &eve_token, "Evil").await;
        let team = w
            .teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: acme.name.clone(),
                    team: Some(pb::Team {
                        display_name: "Core".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        let project = w
            .projects
            .create_project(authed(
                pb::CreateProjectRequest {
                    parent: acme.name.clone(),
                    project: Some(pb::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        TwoTenants {
            w,
            ada_token,
            eve,
            eve_token,
            acme,
            evil,
            team,
            project,
        }
    }
}

#[tokio::test]
async fn another_tenants_objects_are_not_found_and_leak_nothing() {
    for storage in storages() {
        let mut t = TwoTenants::start(storage).await;
        another_tenants_names_answer_as_missing_ones(&mut t).await;
        smuggled_names_under_ones_own_organization_find_nothing(&mut t).await;
        listings_show_only_ones_own_tree(&mut t).await;
        a_reader_who_may_not_manage_is_denied(&mut t).await;
        every_question_went_to_rbac_about_the_caller(&mut t).await;
        t.w.sandbox.shutdown().await.unwrap();
    }
}

async fn another_tenants_names_answer_as_missing_ones(t: &mut TwoTenants) {
    let TwoTenants {
        w,
        eve_token,
        acme,
        team,
        project,
        ..
    } = t;
    // Eve asks for Acme's things directly: NOT_FOUND, with the same
    // answer as for ids that do not exist at all.
    let missing = format!("organizations/{}", tenantry_kit::id::new_id());
    for name in [&acme.name, &missing] {
        let error = w.get(eve_token, name).await.unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        assert_eq!(error.message(), "organization not found");
    }
    let error = w
        .teams
        .get_team(authed(
            pb::GetTeamRequest {
                name: team.name.clone(),
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = w
        .projects
        .get_project(authed(
            pb::GetProjectRequest {
                name: project.name.clone(),
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

async fn smuggled_names_under_ones_own_organization_find_nothing(t: &mut TwoTenants) {
    let TwoTenants {
        w,
        eve_token,
        acme,
        evil,
        team,
        ..
    } = t;
    // Acme's team under Evil's organization id: still nothing, even for
    // Eve who may read Evil.
    let smuggled = format!("{}/teams/{}", evil.name, id(&team.name));
    let error = w
        .teams
        .get_team(authed(pb::GetTeamRequest { name: smuggled }, eve_token))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = w
        .orgs
        .update_organization(authed(
            pb::UpdateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: acme.name.clone(),
                    display_name: "Pwned".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name"]),
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = w
        .teams
        .create_team(authed(
            pb::CreateTeamRequest {
                parent: acme.name.clone(),
                team: Some(pb::Team {
                    display_name: "Intruders".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = w
        .orgs
        .create_organization(authed(
            pb::CreateOrganizationRequest {
                organization: Some(pb::Organization {
                    display_name: "Graft".into(),
                    parent: acme.name.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

async fn listings_show_only_ones_own_tree(t: &mut TwoTenants) {
    let TwoTenants {
        w,
        eve_token,
        acme,
        evil,
        ..
    } = t;
    // Listing shows Eve her own tree only.
    let listed = w
        .orgs
        .list_organizations(authed(pb::ListOrganizationsRequest::default(), eve_token))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    let names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec![evil.name.as_str()]);
    let error = w
        .orgs
        .list_organizations(authed(
            pb::ListOrganizationsRequest {
                parent: acme.name.clone(),
                ..Default::default()
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

async fn a_reader_who_may_not_manage_is_denied(t: &mut TwoTenants) {
    let TwoTenants {
        w,
        ada_token,
        eve,
        eve_token,
        acme,
        ..
    } = t;
    // A reader who may not manage gets PERMISSION_DENIED, not NOT_FOUND.
    w.grant(eve, id(&acme.name), &["organization.read"]);
    let error = w
        .orgs
        .update_organization(authed(
            pb::UpdateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: acme.name.clone(),
                    display_name: "Pwned".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name"]),
            },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    assert_eq!(
        w.get(ada_token, &acme.name).await.unwrap().display_name,
        "Acme"
    );
}

async fn every_question_went_to_rbac_about_the_caller(t: &mut TwoTenants) {
    let TwoTenants { w, .. } = t;
    // Every question went to rbac as the caller, about the caller.
    assert!(
        w.rbac
            .state()
            .checks
            .iter()
            .all(|(kind, _, _, _)| kind == "user")
    );
}
