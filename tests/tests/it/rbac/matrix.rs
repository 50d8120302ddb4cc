//! The role matrix: what each built-in role may do on an organization, a
//! team and a project, down the tree, and when roles change hands.

use super::*;

/// Acme, Ada's, with the Rocket project; Bob, not yet a member.
struct Acme {
    w: World,
    ada: User,
    bob: User,
    acme: org::Organization,
    acme_id: String,
    rocket: String,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let rocket = w.project(&ada, &acme_id, "Rocket").await;
        Acme {
            w,
            ada,
            bob,
            acme,
            acme_id,
            rocket,
        }
    }
}

#[tokio::test]
async fn roles_follow_the_matrix_and_removal_ends_access_at_once() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        the_owner_holds_the_owner_column(&a).await;
        a_member_reads_projects_and_manages_nothing(&a).await;
        finance_manages_billing_and_reads_no_project(&a).await;
        removal_ends_access_at_once(&a).await;
        the_owner_is_neither_removed_nor_made_again(&a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn the_owner_holds_the_owner_column(a: &Acme) {
    let Acme {
        w, ada, acme_id, ..
    } = a;
    // The owner holds every permission of the matrix's owner column.
    for permission in [
        "organization.settings.manage",
        "organization.ownership.transfer",
        "billing.manage",
        "audit.read",
        "project.create",
    ] {
        assert!(
            w.check(ada, "organization", acme_id, permission, None)
                .await
                .unwrap(),
            "{permission}"
        );
    }
}

async fn a_member_reads_projects_and_manages_nothing(a: &Acme) {
    let Acme {
        w,
        ada,
        bob,
        acme_id,
        rocket,
        ..
    } = a;
    let token = w.add_member(ada, acme_id, bob, &["roles/member"]).await;
    let at = || fresh(&token);
    assert!(
        w.check(bob, "project", rocket, "project.read", at())
            .await
            .unwrap()
    );
    assert!(
        w.check(bob, "project", rocket, "resources.use", at())
            .await
            .unwrap()
    );
    assert!(
        !w.check(bob, "organization", acme_id, "project.create", at())
            .await
            .unwrap()
    );
    assert!(
        !w.check(
            bob,
            "organization",
            acme_id,
            "organization.settings.manage",
            at()
        )
        .await
        .unwrap()
    );
}

async fn finance_manages_billing_and_reads_no_project(a: &Acme) {
    let Acme {
        w,
        ada,
        bob,
        acme_id,
        rocket,
        ..
    } = a;

    // Finance: billing, and no development resources.
    let updated = Members::new(w.channel.clone())
        .update_membership(authed(
            pb::UpdateMembershipRequest {
                membership: Some(pb::Membership {
                    name: format!("organizations/{acme_id}/memberships/{}", bob.id),
                    roles: vec!["roles/finance".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["roles".into()],
                }),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let at = || fresh(&updated.written_at);
    assert!(
        w.check(bob, "organization", acme_id, "billing.manage", at())
            .await
            .unwrap()
    );
    assert!(
        !w.check(bob, "project", rocket, "project.read", at())
            .await
            .unwrap()
    );
}

async fn removal_ends_access_at_once(a: &Acme) {
    let Acme {
        w,
        ada,
        bob,
        acme_id,
        rocket,
        ..
    } = a;
    // Admin; then removed: nothing is left, at once.
    let mut members = Members::new(w.channel.clone());
    let name = format!("organizations/{acme_id}/memberships/{}", bob.id);
    members
        .update_membership(authed(
            pb::UpdateMembershipRequest {
                membership: Some(pb::Membership {
                    name: name.clone(),
                    roles: vec!["roles/admin".into()],
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
    let removed = members
        .delete_membership(authed(
            pb::DeleteMembershipRequest {
                name: name.clone(),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let at = || fresh(&removed.written_at);
    for (object_type, object_id, permission) in [
        ("organization", acme_id.as_str(), "organization.read"),
        ("project", rocket.as_str(), "project.read"),
    ] {
        assert!(
            !w.check(bob, object_type, object_id, permission, at())
                .await
                .unwrap()
        );
    }
}

async fn the_owner_is_neither_removed_nor_made_again(a: &Acme) {
    let Acme {
        w,
        ada,
        bob,
        acme,
        acme_id,
        ..
    } = a;
    let mut members = Members::new(w.channel.clone());
    // The owner cannot be removed or given another role here.
    let owner = members
        .delete_membership(authed(
            pb::DeleteMembershipRequest {
                name: format!("organizations/{acme_id}/memberships/{}", ada.id),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(owner.code(), Code::FailedPrecondition);
    let reserved = members
        .create_membership(authed(
            pb::CreateMembershipRequest {
                parent: acme.name.clone(),
                membership: Some(pb::Membership {
                    user: format!("users/{}", bob.id),
                    roles: vec!["roles/owner".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(reserved.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn roles_flow_down_the_tree_unless_a_child_does_not_inherit() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let root = w.organization(&ada, "Root", None).await;
        let root_id = id(&root.name);
        let child = w.organization(&ada, "Child", Some(&root_id)).await;
        let child_id = id(&child.name);
        let deep = w.project(&ada, &child_id, "Deep").await;
        let token = w.add_member(&ada, &root_id, &bob, &["roles/member"]).await;
        assert!(
            w.check(&bob, "project", &deep, "project.read", fresh(&token))
                .await
                .unwrap()
        );

        Orgs::new(w.channel.clone())
            .update_organization(authed(
                org::UpdateOrganizationRequest {
                    organization: Some(org::Organization {
                        name: child.name.clone(),
                        inherit_access: Some(false),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["inherit_access".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        // Access removed by the update is gone when it returns.
        assert!(
            !w.check(&bob, "project", &deep, "project.read", None)
                .await
                .unwrap()
        );
        // The trace says why.
        let traced = w
            .authz()
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: object("project", &deep),
                    permission: "project.read".into(),
                    subject: subject(&bob.id),
                    with_tracing: true,
                    consistency: None,
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner();
        let trace = traced.debug_trace.unwrap();
        assert!(
            trace.explanation.contains("does not inherit"),
            "{}",
            trace.explanation
        );
        // The owner of the root keeps nothing below a stop either, unless a
        // role is given there; ada created the child, so she owns it.
        assert!(
            w.check(&ada, "project", &deep, "project.read", None)
                .await
                .unwrap()
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn ownership_transfer_moves_the_owner_role() {
    let w = World::start(Storage::Sqlite).await;
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
    let mut orgs = Orgs::new(w.channel.clone());
    let transfer = orgs
        .transfer_ownership(authed(
            org::TransferOwnershipRequest {
                name: acme.name.clone(),
                new_owner: format!("users/{}", bob.id),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .ownership_transfer
        .unwrap();
    let token = w
        .sandbox
        .mail_token("bob@example.com", "ownership_transfer")
        .unwrap();
    orgs.accept_ownership_transfer(authed(
        org::AcceptOwnershipTransferRequest {
            name: transfer.name,
            token,
        },
        &bob.token,
    ))
    .await
    .unwrap();
    w.assert_allowed(
        &bob,
        "organization",
        &acme_id,
        "organization.ownership.transfer",
    )
    .await;
    assert!(
        !w.check(
            &ada,
            "organization",
            &acme_id,
            "organization.ownership.transfer",
            None
        )
        .await
        .unwrap()
    );
    assert!(
        w.check(
            &ada,
            "organization",
            &acme_id,
            "organization.settings.manage",
            None
        )
        .await
        .unwrap()
    );
    w.sandbox.shutdown().await.unwrap();
}

// (permission, type, owner, admin, finance, member with ALL_MEMBERS)
const MATRIX: &[(&str, &str, [bool; 4])] = &[
    (
        "organization.read",
        "organization",
        [true, true, true, true],
    ),
    (
        "organization.settings.manage",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.members.read",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.members.invite",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.members.manage",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.teams.create",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.departments.create",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.suborganizations.create",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.api_keys.create",
        "organization",
        [true, true, false, false],
    ),
    (
        "organization.delete",
        "organization",
        [true, false, false, false],
    ),
    (
        "organization.deactivate",
        "organization",
        [true, false, false, false],
    ),
    (
        "organization.ownership.transfer",
        "organization",
        [true, false, false, false],
    ),
    ("billing.read", "organization", [true, false, true, false]),
    ("billing.manage", "organization", [true, false, true, false]),
    ("project.create", "organization", [true, true, false, false]),
    ("audit.read", "organization", [true, true, false, false]),
    ("authz.write", "organization", [true, true, false, false]),
    ("team.read", "team", [true, true, false, true]),
    ("team.manage", "team", [true, true, false, false]),
    ("team.members.manage", "team", [true, true, false, false]),
    ("project.read", "project", [true, true, false, true]),
    ("resources.use", "project", [true, true, false, true]),
    ("project.manage", "project", [true, true, false, false]),
    (
        "project.grants.manage",
        "project",
        [true, true, false, false],
    ),
    ("project.delete", "project", [true, true, false, false]),
];

/// The Org & RBAC page's permission matrix, as any client sees it through
/// CheckBulkPermissions: Owner, Admin, Finance and Member, on the
/// organization, a team and a project, in both project visibilities (the
/// member column is the one visibility changes, and only on projects).
#[tokio::test]
async fn the_org_and_rbac_permission_matrix_holds_for_every_role() {
    for storage in storages() {
        let w = World::start(storage).await;
        let owner = w.user("owner@example.com").await;
        let people = [
            w.user("admin@example.com").await,
            w.user("finance@example.com").await,
            w.user("member@example.com").await,
        ];
        for visibility in [
            org::ProjectVisibility::AllMembers,
            org::ProjectVisibility::Granted,
        ] {
            let (acme_id, team, project) =
                an_organization_of_every_role(&w, &owner, &people, visibility).await;
            let users = [&owner, &people[0], &people[1], &people[2]];
            for (column, user) in users.iter().enumerate() {
                the_column_holds(&w, user, column, visibility, [&acme_id, &team, &project]).await;
            }
        }
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Acme with `visibility`, its Rocket project and Core team, and `people`
/// its admin, finance and member: the ids of the organization, the team
/// and the project.
async fn an_organization_of_every_role(
    w: &World,
    owner: &User,
    people: &[User; 3],
    visibility: org::ProjectVisibility,
) -> (String, String, String) {
    let acme = w.organization_with(owner, "Acme", None, visibility).await;
    let acme_id = id(&acme.name);
    let project = w.project(owner, &acme_id, "Rocket").await;
    let team = id(&Teams::new(w.channel.clone())
        .create_team(authed(
            org::CreateTeamRequest {
                parent: acme.name.clone(),
                team: Some(org::Team {
                    display_name: "Core".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &owner.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .name);
    for (person, role) in people
        .iter()
        .zip(["roles/admin", "roles/finance", "roles/member"])
    {
        w.add_member(owner, &acme_id, person, &[role]).await;
    }
    (acme_id, team, project)
}

/// Asks for the whole matrix as `user`, in `column`, on the organization,
/// team and project of `ids`.
async fn the_column_holds(
    w: &World,
    user: &User,
    column: usize,
    visibility: org::ProjectVisibility,
    [acme_id, team, project]: [&str; 3],
) {
    let items = MATRIX
        .iter()
        .map(
            |(permission, object_type, _)| authz::CheckBulkPermissionsRequestItem {
                resource: object(
                    object_type,
                    match *object_type {
                        "organization" => acme_id,
                        "team" => team,
                        _ => project,
                    },
                ),
                permission: permission.to_string(),
                subject: subject(&user.id),
            },
        )
        .collect();
    let pairs = w
        .authz()
        .check_bulk_permissions(authed(
            authz::CheckBulkPermissionsRequest {
                consistency: None,
                items,
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .pairs;
    for ((permission, object_type, expected), pair) in MATRIX.iter().zip(pairs) {
        let Some(authz::check_bulk_permissions_pair::Response::Item(item)) = pair.response else {
            panic!("{permission}: {:?}", pair.response);
        };
        // Where members see only their granted projects, the
        // member column loses its project permissions, and
        // nothing else changes.
        let hidden = column == 3
            && *object_type == "project"
            && visibility == org::ProjectVisibility::Granted;
        let want = expected[column] && !hidden;
        assert_eq!(
            item.permissionship() == authz::Permissionship::Allowed,
            want,
            "{visibility:?}: column {column} {permission} on {object_type}"
        );
    }
}
