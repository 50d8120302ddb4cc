//! The relationships a service writes for its objects: watched, inherited
//! from the project, refused when bad or another tenant's, keeping a
//! project from being purged, and read in pages.

use super::*;

pub(super) async fn an_attached_object_is_watched(t: &Tenants) -> Option<authz::ZedToken> {
    let Tenants {
        w,
        ada,
        acme,
        rocket,
        service,
        ..
    } = t;
    // Attach a deployment to Rocket; watch it happen.
    let before = w
        .check(ada, "project", rocket, "project.read", None)
        .await
        .unwrap();
    assert!(before);
    let start = w
        .authz()
        .check_permission(authed(
            authz::CheckPermissionRequest {
                resource: object("project", rocket),
                permission: "project.read".into(),
                subject: subject(&ada.id),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .checked_at;
    let mut watch = w
        .authz()
        .watch(authed(
            authz::WatchRequest {
                optional_object_types: vec!["deployment".into()],
                optional_start_cursor: start.clone(),
                organization: acme.name.clone(),
            },
            service,
        ))
        .await
        .unwrap()
        .into_inner();
    let written = w
        .authz()
        .write_relationships(authed(
            authz::WriteRelationshipsRequest {
                updates: vec![parent_link(
                    Operation::Create,
                    "deployment",
                    "d1",
                    "project",
                    rocket,
                )],
                optional_preconditions: Vec::new(),
            },
            service,
        ))
        .await
        .unwrap()
        .into_inner()
        .written_at;
    let seen = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let update = &seen.updates[0];
    assert_eq!(
        update.relationship.as_ref().unwrap().resource,
        object("deployment", "d1")
    );
    written
}

pub(super) async fn permissions_flow_from_the_project(
    t: &Tenants,
    written: &Option<authz::ZedToken>,
) {
    let Tenants {
        w,
        ada,
        bob,
        eve,
        evil_project,
        service,
        ..
    } = t;
    // Permissions flow from the project: members read, contributors and
    // admins deploy.
    let at = || fresh(written);
    assert!(
        w.check(bob, "deployment", "d1", "deployment.read", at())
            .await
            .unwrap()
    );
    assert!(
        !w.check(bob, "deployment", "d1", "deployment.deploy", at())
            .await
            .unwrap()
    );
    assert!(
        w.check(ada, "deployment", "d1", "deployment.deploy", at())
            .await
            .unwrap()
    );
    assert!(
        !w.check(eve, "deployment", "d1", "deployment.read", at())
            .await
            .unwrap()
    );
    // The service account asks about anyone, in its organization only.
    let about_bob = w
        .authz()
        .check_permission(authed(
            authz::CheckPermissionRequest {
                consistency: at(),
                resource: object("deployment", "d1"),
                permission: "deployment.read".into(),
                subject: subject(&bob.id),
                with_tracing: false,
            },
            service,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(about_bob.permissionship(), authz::Permissionship::Allowed);
    let elsewhere = w
        .authz()
        .check_permission(authed(
            authz::CheckPermissionRequest {
                resource: object("project", evil_project),
                permission: "project.read".into(),
                subject: subject(&eve.id),
                ..Default::default()
            },
            service,
        ))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
}

pub(super) async fn bad_writes_are_refused(t: &Tenants) {
    let Tenants {
        acme_id,
        rocket,
        evil_project,
        ..
    } = t;
    // Bad writes: another tenant's parent, unknown types and relations,
    // the wrong parent type, a duplicate create, a failed precondition.
    let cases: Vec<(authz::RelationshipUpdate, Code)> = vec![
        (
            parent_link(
                Operation::Touch,
                "deployment",
                "d2",
                "project",
                evil_project,
            ),
            Code::NotFound,
        ),
        (
            parent_link(Operation::Touch, "widget", "w1", "project", rocket),
            Code::InvalidArgument,
        ),
        (
            parent_link(
                Operation::Touch,
                "deployment",
                "d2",
                "organization",
                acme_id,
            ),
            Code::InvalidArgument,
        ),
        (
            parent_link(Operation::Touch, "deployment", "d2", "deployment", "d1"),
            Code::InvalidArgument,
        ),
        (
            parent_link(Operation::Touch, "project", rocket, "organization", acme_id),
            Code::InvalidArgument,
        ),
        (
            parent_link(Operation::Create, "deployment", "d1", "project", rocket),
            Code::AlreadyExists,
        ),
    ];
    for (update, code) in cases {
        assert_eq!(
            t.write(vec![update], Vec::new()).await.unwrap_err().code(),
            code
        );
    }
    let mut other_relation = parent_link(Operation::Touch, "deployment", "d2", "project", rocket);
    other_relation.relationship.as_mut().unwrap().relation = "owner".into();
    assert_eq!(
        t.write(vec![other_relation], Vec::new())
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
}

pub(super) async fn preconditions_and_batch_size_are_checked(t: &Tenants) {
    let Tenants { rocket, .. } = t;
    let must_not_exist = authz::Precondition {
        operation: authz::precondition::Operation::MustNotMatch as i32,
        filter: Some(authz::RelationshipFilter {
            resource_type: "deployment".into(),
            optional_resource_id: "d1".into(),
            ..Default::default()
        }),
    };
    let failed = t
        .write(
            vec![parent_link(
                Operation::Touch,
                "deployment",
                "d2",
                "project",
                rocket,
            )],
            vec![must_not_exist],
        )
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::FailedPrecondition);
    let huge = (0..1001)
        .map(|i| {
            parent_link(
                Operation::Touch,
                "deployment",
                &format!("x{i}"),
                "project",
                rocket,
            )
        })
        .collect();
    assert_eq!(
        t.write(huge, Vec::new()).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

pub(super) async fn another_tenants_relationships_are_out_of_every_filter(t: &Tenants) {
    let Tenants {
        w,
        root,
        eve,
        rocket,
        evil,
        evil_project,
        service,
        ..
    } = t;
    // Another tenant's relationships are out of every filter: they
    // neither satisfy a precondition nor match a deletion.
    let evil_service = service_token(w, root, &id(&evil.name)).await;
    w.authz()
        .write_relationships(authed(
            authz::WriteRelationshipsRequest {
                updates: vec![parent_link(
                    Operation::Touch,
                    "deployment",
                    "e1",
                    "project",
                    evil_project,
                )],
                optional_preconditions: Vec::new(),
            },
            &evil_service,
        ))
        .await
        .unwrap();
    let probe = authz::Precondition {
        operation: authz::precondition::Operation::MustMatch as i32,
        filter: Some(authz::RelationshipFilter {
            resource_type: "deployment".into(),
            optional_resource_id: "e1".into(),
            ..Default::default()
        }),
    };
    let probed = t
        .write(
            vec![parent_link(
                Operation::Touch,
                "deployment",
                "d2",
                "project",
                rocket,
            )],
            vec![probe],
        )
        .await
        .unwrap_err();
    assert_eq!(probed.code(), Code::FailedPrecondition, "{probed:?}");
    let untouched = w
        .authz()
        .delete_relationships(authed(
            authz::DeleteRelationshipsRequest {
                relationship_filter: Some(authz::RelationshipFilter {
                    resource_type: "deployment".into(),
                    optional_resource_id: "e1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            service,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(untouched.relationships_deleted_count, 0);
    assert_eq!(
        untouched.deletion_progress,
        authz::delete_relationships_response::DeletionProgress::Complete as i32
    );
    let evils = w
        .authz()
        .read_relationships(authed(
            authz::ReadRelationshipsRequest {
                relationship_filter: Some(authz::RelationshipFilter {
                    resource_type: "deployment".into(),
                    ..Default::default()
                }),
                organization: evil.name.clone(),
                ..Default::default()
            },
            &eve.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .relationships;
    assert_eq!(evils.len(), 1, "{evils:?}");
}

pub(super) async fn what_lives_in_a_project_keeps_it_from_being_purged(t: &Tenants) {
    let Tenants {
        w,
        ada,
        bob,
        acme,
        acme_id,
        rocket,
        service,
        ..
    } = t;
    // What lives in the project keeps it from being purged.
    let read = w
        .authz()
        .read_relationships(authed(
            authz::ReadRelationshipsRequest {
                relationship_filter: Some(authz::RelationshipFilter {
                    resource_type: "deployment".into(),
                    ..Default::default()
                }),
                organization: acme.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .relationships;
    assert_eq!(read.len(), 1);
    let mut projects = org::project_service_client::ProjectServiceClient::new(w.channel.clone());
    let project_name = format!("organizations/{acme_id}/projects/{rocket}");
    projects
        .delete_project(authed(
            org::DeleteProjectRequest {
                name: project_name.clone(),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let purge = |token: String| {
        let mut projects = projects.clone();
        let name = project_name.clone();
        async move {
            projects
                .purge_project(authed(
                    org::PurgeProjectRequest {
                        name,
                        etag: String::new(),
                    },
                    &token,
                ))
                .await
        }
    };
    let in_use = purge(ada.token.clone()).await.unwrap_err();
    assert_eq!(
        in_use.get_details_error_info().unwrap().reason,
        "PROJECT_IN_USE"
    );
    let deleted = w
        .authz()
        .delete_relationships(authed(
            authz::DeleteRelationshipsRequest {
                relationship_filter: Some(authz::RelationshipFilter {
                    resource_type: "deployment".into(),
                    optional_resource_id: "d1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            service,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.relationships_deleted_count, 1);
    assert!(
        !w.check(
            bob,
            "deployment",
            "d1",
            "deployment.read",
            fresh(&deleted.deleted_at)
        )
        .await
        .unwrap()
    );
    purge(ada.token.clone()).await.unwrap();
}

pub(super) async fn relationships_are_read_in_pages(t: &Tenants) {
    let Tenants {
        w,
        ada,
        acme_id,
        service,
        ..
    } = t;
    // Reading pages through every relationship, in a stable order; a
    // service reads its own organization's when it names none.
    let shelf = w.project(ada, acme_id, "Shelf").await;
    let ids: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
    w.authz()
        .write_relationships(authed(
            authz::WriteRelationshipsRequest {
                updates: ids
                    .iter()
                    .map(|d| parent_link(Operation::Touch, "deployment", d, "project", &shelf))
                    .collect(),
                optional_preconditions: Vec::new(),
            },
            service,
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = w
            .authz()
            .read_relationships(authed(
                authz::ReadRelationshipsRequest {
                    relationship_filter: Some(authz::RelationshipFilter {
                        resource_type: "deployment".into(),
                        ..Default::default()
                    }),
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                service,
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.relationships.len() <= 2);
        seen.extend(
            page.relationships
                .into_iter()
                .map(|r| r.resource.unwrap().object_id),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ids, "every relationship once, in order");
    assert_eq!(pages, 3);
}

/// An import writes a parent and its child in one write, in that order;
/// an object deleted and attached again in one write stays attached, in
/// the index and in the store alike.
pub(super) async fn a_parent_and_its_child_come_in_one_write(t: &Tenants) {
    use authz::permission_grant::Grantor;
    let release = authz::ResourceType {
        name: "resourceTypes/release".into(),
        parent_type: "deployment".into(),
        permissions: vec![authz::PermissionDefinition {
            name: "release.read".into(),
            description: "see a release".into(),
            granted_by: vec![authz::PermissionGrant {
                grantor: Some(Grantor::ParentPermission("deployment.read".into())),
            }],
        }],
        ..Default::default()
    };
    let request = authz::RegisterResourceTypeRequest {
        resource_type: Some(release),
        validate_only: false,
    };
    let mut schema = Schema::new(t.w.channel.clone());
    schema
        .register_resource_type(authed(request, &t.service))
        .await
        .unwrap();
    // Rocket is gone by now (purged above): a project of its own.
    let launchpad = t.w.project(&t.ada, &t.acme_id, "Launchpad").await;
    let link = |operation, kind: &str, id: &str, parent_kind: &str, parent: &str| {
        parent_link(operation, kind, id, parent_kind, parent)
    };
    let written = t
        .write(
            vec![
                link(Operation::Create, "deployment", "d9", "project", &launchpad),
                link(Operation::Create, "release", "r9", "deployment", "d9"),
                link(Operation::Delete, "release", "r9", "deployment", "d9"),
                link(Operation::Touch, "release", "r9", "deployment", "d9"),
            ],
            Vec::new(),
        )
        .await
        .unwrap()
        .into_inner()
        .written_at;
    let at = fresh(&written);
    let read =
        t.w.check(&t.bob, "release", "r9", "release.read", at.clone());
    assert!(read.await.unwrap(), "the release is attached under d9");
    let request = authz::ReadRelationshipsRequest {
        consistency: at,
        relationship_filter: Some(authz::RelationshipFilter {
            resource_type: "release".into(),
            ..Default::default()
        }),
        organization: t.acme.name.clone(),
        ..Default::default()
    };
    let mut authz = t.w.authz();
    let stored = authz
        .read_relationships(authed(request, &t.ada.token))
        .await;
    let stored = stored.unwrap().into_inner().relationships;
    assert_eq!(stored.len(), 1, "{stored:?}");
    // A parent and its child go in one write too, the parent first.
    let written = t.write(
        vec![
            link(Operation::Delete, "deployment", "d9", "project", &launchpad),
            link(Operation::Delete, "release", "r9", "deployment", "d9"),
        ],
        Vec::new(),
    );
    let written = written.await.unwrap().into_inner().written_at;
    let gone =
        t.w.check(&t.bob, "release", "r9", "release.read", fresh(&written));
    assert!(!gone.await.unwrap(), "the release is gone with d9");
}
