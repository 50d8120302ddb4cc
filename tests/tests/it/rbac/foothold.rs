//! Foothold's tenants: one project per app team on the free plan, shown to
//! members by grant (to a user, a team or a role) or to every member.

use super::*;
use tenantry_proto::tenantry::authz::v1::ProjectAccessLevel::{Contributor, Viewer};
use tenantry_proto::tenantry::rbac::v1::project_grant::Subject;

/// Foothold's organization, Ada's: the default tenant "main" and "alpha"
/// and "beta"; Cassidy in the Payments team (granted alpha) and granted
/// main herself, Dan in the Search team (granted beta).
struct Foothold {
    w: World,
    ada: User,
    acme_id: String,
    acme: org::Organization,
    alpha: String,
    beta: String,
    main: String,
    cassidy: User,
    dan: User,
}

impl Foothold {
    async fn start(storage: Storage) -> Foothold {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Billing,
            ])
            .storage(storage)
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let w = World { sandbox, channel };
        // Signing up makes the organization and its default tenant "main".
        let ada = w.user("ada@foothold.example").await;
        let acme_id = id(&Orgs::new(w.channel.clone())
            .list_my_organizations(authed(
                org::ListMyOrganizationsRequest::default(),
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organizations[0]
            .organization
            .clone()
            .unwrap()
            .name);
        let acme = w.get_organization(&ada, &acme_id).await;
        let settings = acme.settings.clone().unwrap();
        assert_eq!(
            settings.project_visibility(),
            org::ProjectVisibility::Granted,
            "a new organization shows members only their granted projects"
        );
        let alpha = w.project(&ada, &acme_id, "alpha").await;
        let beta = w.project(&ada, &acme_id, "beta").await;
        let project = |p: &str| format!("organizations/{acme_id}/projects/{p}");
        let main = Projects::new(w.channel.clone())
            .list_projects(authed(
                org::ListProjectsRequest {
                    parent: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .projects
            .into_iter()
            .find(|p| p.display_name == "main")
            .map(|p| id(&p.name))
            .expect("the default tenant");

        let cassidy = w.user("cassidy@foothold.example").await;
        let dan = w.user("dan@foothold.example").await;
        for person in [&cassidy, &dan] {
            w.add_member(&ada, &acme_id, person, &["roles/member"])
                .await;
        }
        let payments = w.team_with(&ada, &acme_id, "Payments", &cassidy).await;
        let search = w.team_with(&ada, &acme_id, "Search", &dan).await;
        w.grant(&ada, &project(&alpha), Subject::Team(payments), Contributor)
            .await;
        w.grant(&ada, &project(&beta), Subject::Team(search), Contributor)
            .await;
        w.grant(
            &ada,
            &project(&main),
            Subject::User(format!("users/{}", cassidy.id)),
            Viewer,
        )
        .await;
        Foothold {
            w,
            ada,
            acme_id,
            acme,
            alpha,
            beta,
            main,
            cassidy,
            dan,
        }
    }
}

/// Foothold runs one tenant (project) per app team on the free plan: a new
/// organization shows its members only the projects granted to them — by
/// user, by team or by role (Rollbar's per-project access) — while admins
/// and owners see every project and organization-level permissions stay
/// with the roles. The organization can show every project to members
/// instead; switching back takes the access away at once.
#[tokio::test]
async fn foothold_gives_each_app_team_its_own_tenants_on_the_free_plan() {
    for storage in storages() {
        let f = Foothold::start(storage).await;
        members_see_the_tenants_granted_to_them(&f).await;
        let lookup = organization_permissions_stay_with_the_role(&f).await;
        the_trace_says_why_a_tenant_is_hidden(&f).await;
        bad_changes_of_the_setting_are_refused(&f).await;
        every_project_for_every_member_then_back(&f).await;
        a_grant_to_a_role_reaches_everyone_who_holds_it(&f, lookup).await;
        a_department_takes_its_parents_setting(&f).await;
        f.w.sandbox.shutdown().await.unwrap();
    }
}

async fn members_see_the_tenants_granted_to_them(f: &Foothold) {
    let Foothold {
        w,
        ada,
        acme_id,
        alpha,
        beta,
        main,
        cassidy,
        dan,
        ..
    } = f;
    let project = |p: &str| format!("organizations/{acme_id}/projects/{p}");
    // Cassidy sees her team's tenant and the one granted to her, not
    // Dan's; the owner sees all three.
    assert_eq!(w.project_names(cassidy, acme_id).await, ["alpha", "main"]);
    assert_eq!(w.project_names(dan, acme_id).await, ["beta"]);
    assert_eq!(
        w.project_names(ada, acme_id).await,
        ["alpha", "beta", "main"]
    );
    let hidden = Projects::new(w.channel.clone())
        .get_project(authed(
            org::GetProjectRequest {
                name: project(beta),
            },
            &cassidy.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert!(
        w.check(cassidy, "project", alpha, "resources.use", None)
            .await
            .unwrap()
    );
    assert!(
        !w.check(cassidy, "project", main, "resources.use", None)
            .await
            .unwrap()
    );
}

async fn organization_permissions_stay_with_the_role(
    f: &Foothold,
) -> authz::LookupResourcesRequest {
    let Foothold {
        w,
        acme_id,
        acme,
        alpha,
        main,
        cassidy,
        ..
    } = f;
    // Organization-level permissions stay with the role.
    assert!(
        w.check(cassidy, "organization", acme_id, "organization.read", None)
            .await
            .unwrap()
    );
    let lookup = authz::LookupResourcesRequest {
        resource_type: "project".into(),
        permission: "project.read".into(),
        subject: subject(&cassidy.id),
        organization: acme.name.clone(),
        ..Default::default()
    };
    let found = w
        .authz()
        .lookup_resources(authed(lookup.clone(), &cassidy.token))
        .await
        .unwrap()
        .into_inner();
    let mut expected = vec![alpha.clone(), main.clone()];
    expected.sort();
    assert_eq!(found.resource_ids, expected);
    lookup
}

async fn the_trace_says_why_a_tenant_is_hidden(f: &Foothold) {
    let Foothold {
        w, beta, cassidy, ..
    } = f;
    // The trace says why a member does not read an ungranted tenant.
    let explained = w
        .authz()
        .check_permission(authed(
            authz::CheckPermissionRequest {
                resource: object("project", beta),
                permission: "project.read".into(),
                subject: subject(&cassidy.id),
                with_tracing: true,
                ..Default::default()
            },
            &cassidy.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.permissionship(), authz::Permissionship::Denied);
    let trace = format!("{:?}", explained.debug_trace);
    assert!(
        trace.contains("shows members only the projects granted to them"),
        "{trace}"
    );
}

async fn bad_changes_of_the_setting_are_refused(f: &Foothold) {
    let Foothold {
        w,
        ada,
        acme_id,
        acme,
        cassidy,
        ..
    } = f;
    // Bad changes are refused and write nothing: a member may not
    // change the setting, and only the two values exist.
    let by_member = w
        .set_visibility(cassidy, acme, org::ProjectVisibility::AllMembers as i32)
        .await
        .unwrap_err();
    assert_eq!(by_member.code(), Code::PermissionDenied, "{by_member:?}");
    let refused = w.set_visibility(ada, acme, 42).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("settings.project_visibility"),
        "{refused:?}"
    );
    assert_eq!(w.get_organization(ada, acme_id).await.etag, acme.etag);
}

async fn every_project_for_every_member_then_back(f: &Foothold) {
    let Foothold {
        w,
        ada,
        acme_id,
        acme,
        beta,
        cassidy,
        ..
    } = f;
    // Every project for every member, then back: the access granted
    // only by the setting is gone with the write.
    let open = w
        .set_visibility(ada, acme, org::ProjectVisibility::AllMembers as i32)
        .await
        .unwrap();
    assert_eq!(
        w.project_names(cassidy, acme_id).await,
        ["alpha", "beta", "main"]
    );
    // Named but unset, the setting is reset to its default (GRANTED
    // for a root, as the installation says).
    let reset = w
        .set_visibility(ada, &open, org::ProjectVisibility::Unspecified as i32)
        .await
        .unwrap();
    assert_eq!(
        reset.settings.unwrap().project_visibility(),
        org::ProjectVisibility::Granted
    );
    assert!(
        !w.check(cassidy, "project", beta, "project.read", None)
            .await
            .unwrap()
    );
    assert_eq!(w.project_names(cassidy, acme_id).await, ["alpha", "main"]);
}

async fn a_grant_to_a_role_reaches_everyone_who_holds_it(
    f: &Foothold,
    mut lookup: authz::LookupResourcesRequest,
) {
    let Foothold {
        w,
        ada,
        acme_id,
        beta,
        cassidy,
        dan,
        ..
    } = f;
    let project = |p: &str| format!("organizations/{acme_id}/projects/{p}");
    // A grant to a role reaches everyone who holds it.
    w.grant(
        ada,
        &project(beta),
        Subject::Role("roles/member".into()),
        Viewer,
    )
    .await;
    assert!(
        w.check(cassidy, "project", beta, "project.read", None)
            .await
            .unwrap()
    );
    lookup.subject = subject(&dan.id);
    let dans = w
        .authz()
        .lookup_resources(authed(lookup, &dan.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dans.resource_ids, vec![beta.clone()]);
}

async fn a_department_takes_its_parents_setting(f: &Foothold) {
    let Foothold { w, ada, acme, .. } = f;
    // A department takes its parent's setting.
    let department = Orgs::new(w.channel.clone())
        .create_organization(authed(
            org::CreateOrganizationRequest {
                organization: Some(org::Organization {
                    display_name: "Platform".into(),
                    parent: acme.name.clone(),
                    kind: org::OrganizationKind::Department as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(
        department.settings.unwrap().project_visibility(),
        org::ProjectVisibility::Granted
    );
}
