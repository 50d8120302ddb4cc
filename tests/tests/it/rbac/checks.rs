//! Questions that must be refused, and tenants that stay apart; two rbac
//! processes on one store.

use super::*;

/// Acme, Ada's; Eve, a stranger to it with an organization of her own.
struct Acme {
    w: World,
    ada: User,
    eve: User,
    acme: org::Organization,
    acme_id: String,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let eve = w.user("eve@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        Acme {
            w,
            ada,
            eve,
            acme,
            acme_id,
        }
    }
}

/// A check of `who` on Acme as an object of `object_type`.
fn ask(
    acme_id: &str,
    object_type: &str,
    permission: &str,
    who: &str,
) -> authz::CheckPermissionRequest {
    authz::CheckPermissionRequest {
        resource: object(object_type, acme_id),
        permission: permission.into(),
        subject: subject(who),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_questions_are_refused_and_tenants_stay_apart() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        unknown_objects_and_other_subjects_are_refused(&a).await;
        bad_tokens_are_refused(&a).await;
        bulk_checks_bound_their_size_and_isolate_bad_items(&a).await;
        another_tenants_memberships_are_not_found(&a).await;
        her_own_memberships_are_her_sign_up_organization(&a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn unknown_objects_and_other_subjects_are_refused(a: &Acme) {
    let Acme {
        w,
        ada,
        eve,
        acme_id,
        ..
    } = a;
    let mut client = w.authz();
    for (object_type, permission) in [
        ("widget", "organization.read"),
        ("organization", "organization.fly"),
        ("organization", "project.read"),
    ] {
        let error = client
            .check_permission(authed(
                ask(acme_id, object_type, permission, &ada.id),
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Code::InvalidArgument,
            "{object_type} {permission}"
        );
    }
    // Nobody asks about someone else.
    let error = client
        .check_permission(authed(
            ask(acme_id, "organization", "organization.read", &ada.id),
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    // Eve about herself on Acme: denied, exactly like an unknown object.
    for object_id in [acme_id.clone(), tenantry_kit::id::new_id().to_string()] {
        let answer = client
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: object("organization", &object_id),
                    permission: "organization.read".into(),
                    subject: subject(&eve.id),
                    ..Default::default()
                },
                &eve.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.permissionship(), authz::Permissionship::Denied);
    }
}

async fn bad_tokens_are_refused(a: &Acme) {
    let Acme {
        w, ada, acme_id, ..
    } = a;
    let mut client = w.authz();
    // Tokens: garbage and the future are refused.
    for token in ["garbage", "r99999999"] {
        let error = client
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    consistency: Some(authz::Consistency {
                        requirement: Some(authz::consistency::Requirement::AtLeastAsFresh(
                            authz::ZedToken {
                                token: token.into(),
                            },
                        )),
                    }),
                    ..ask(acme_id, "organization", "organization.read", &ada.id)
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{token}");
    }
    let consistent = client
        .check_permission(authed(
            authz::CheckPermissionRequest {
                consistency: Some(authz::Consistency {
                    requirement: Some(authz::consistency::Requirement::FullyConsistent(true)),
                }),
                ..ask(acme_id, "organization", "organization.read", &ada.id)
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(consistent.permissionship(), authz::Permissionship::Allowed);
}

async fn bulk_checks_bound_their_size_and_isolate_bad_items(a: &Acme) {
    let Acme {
        w, ada, acme_id, ..
    } = a;
    let mut client = w.authz();
    // Bulk: too many items is a clear error; one bad item does not spoil
    // the others.
    let item = |permission: &str| authz::CheckBulkPermissionsRequestItem {
        resource: object("organization", acme_id),
        permission: permission.into(),
        subject: subject(&ada.id),
    };
    let error = client
        .check_bulk_permissions(authed(
            authz::CheckBulkPermissionsRequest {
                consistency: None,
                items: (0..1001).map(|_| item("organization.read")).collect(),
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let pairs = client
        .check_bulk_permissions(authed(
            authz::CheckBulkPermissionsRequest {
                consistency: None,
                items: vec![
                    item("organization.read"),
                    item("organization.fly"),
                    item("billing.manage"),
                ],
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .pairs;
    use authz::check_bulk_permissions_pair::Response as Answer;
    assert!(
        matches!(&pairs[0].response, Some(Answer::Item(i)) if i.permissionship() == authz::Permissionship::Allowed)
    );
    assert!(
        matches!(&pairs[1].response, Some(Answer::Error(e)) if e.code == Code::InvalidArgument as i32)
    );
    assert!(
        matches!(&pairs[2].response, Some(Answer::Item(i)) if i.permissionship() == authz::Permissionship::Allowed)
    );
}

async fn another_tenants_memberships_are_not_found(a: &Acme) {
    let Acme {
        w,
        ada,
        eve,
        acme,
        acme_id,
    } = a;
    let mut client = w.authz();
    // Another tenant's memberships, roles and relationships: NOT_FOUND,
    // and nothing written.
    let mut members = Members::new(w.channel.clone());
    let error = members
        .create_membership(authed(
            pb::CreateMembershipRequest {
                parent: acme.name.clone(),
                membership: Some(pb::Membership {
                    user: format!("users/{}", eve.id),
                    roles: vec!["roles/admin".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = members
        .list_memberships(authed(
            pb::ListMembershipsRequest {
                parent: acme.name.clone(),
                ..Default::default()
            },
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = members
        .list_user_memberships(authed(
            pb::ListUserMembershipsRequest {
                parent: format!("users/{}", ada.id),
                ..Default::default()
            },
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let error = client
        .read_relationships(authed(
            authz::ReadRelationshipsRequest {
                relationship_filter: Some(authz::RelationshipFilter {
                    resource_type: "project".into(),
                    optional_subject_filter: Some(authz::SubjectFilter {
                        subject_type: "organization".into(),
                        optional_subject_id: acme_id.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                organization: acme.name.clone(),
                ..Default::default()
            },
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert!(
        !w.check(eve, "organization", acme_id, "organization.read", None)
            .await
            .unwrap()
    );
}

async fn her_own_memberships_are_her_sign_up_organization(a: &Acme) {
    let Acme { w, eve, .. } = a;
    // Her own memberships: the organization made at sign-up.
    let mine = Members::new(w.channel.clone())
        .list_user_memberships(authed(
            pb::ListUserMembershipsRequest {
                parent: "users/me".into(),
                ..Default::default()
            },
            &eve.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .memberships;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].roles, vec!["roles/owner"]);
}

#[tokio::test]
async fn two_rbac_processes_on_one_postgres_agree_after_at_least_as_fresh() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let w = World::start(Storage::Postgres).await;
    // A second rbac: the real program in a process of its own, configured
    // as a Deployment would be, on the same Postgres.
    let peers = [ServiceKind::Identity, ServiceKind::Organization];
    let environment = w.sandbox.environment_beside(None, &peers);
    let binary = env!("CARGO_BIN_EXE_tenantry-process");
    let replica = tenantry_testkit::ServerProcess::start(binary, "rbac", &environment);
    let replica = replica.await.unwrap();
    let other = Authz::new(
        tonic::transport::Endpoint::from_shared(replica.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    let ask = |token: &Option<authz::ZedToken>| {
        authed(
            authz::CheckPermissionRequest {
                consistency: fresh(token),
                resource: object("organization", &acme_id),
                permission: "organization.read".into(),
                subject: subject(&bob.id),
                with_tracing: false,
            },
            &bob.token,
        )
    };
    // Written through the first process, read through the second.
    let token = w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
    let answer = other
        .clone()
        .check_permission(ask(&token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.permissionship(), authz::Permissionship::Allowed);
    // Revoked through the first: the second, asked at that revision, must
    // not answer from its older state.
    let removed = Members::new(w.channel.clone())
        .delete_membership(authed(
            pb::DeleteMembershipRequest {
                name: format!("organizations/{acme_id}/memberships/{}", bob.id),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let answer = other
        .clone()
        .check_permission(ask(&removed.written_at))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.permissionship(), authz::Permissionship::Denied);
    drop(replica);
    w.sandbox.shutdown().await.unwrap();
}
