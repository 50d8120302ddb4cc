//! The index: the tree reaches it over NATS, watches stream its changes,
//! a replica behind the compacted log reloads, and purges reach it.

use super::*;

#[tokio::test]
async fn the_tree_reaches_the_index_over_nats() {
    let Some(url) = tenantry_testkit::nats_url() else {
        return;
    };
    for storage in storages() {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
            ])
            .storage(storage)
            .bus(tenantry_testkit::Bus::Nats(url.clone()))
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let w = World { sandbox, channel };
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let rocket = w.project(&ada, &id(&acme.name), "Rocket").await;
        assert!(
            w.check(&ada, "project", &rocket, "project.read", None)
                .await
                .unwrap()
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Acme, Ada's; Bob signed up, not in it.
struct Acme {
    w: World,
    ada: User,
    bob: User,
    acme: org::Organization,
    acme_id: String,
}

#[tokio::test]
async fn watch_streams_membership_and_grant_changes_of_an_organization() {
    let w = World::start(Storage::Sqlite).await;
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    let a = Acme {
        w,
        ada,
        bob,
        acme,
        acme_id,
    };
    let watch = a_membership_change_reaches_the_organizations_watch(&a).await;
    let eve = another_organization_is_not_theirs_to_watch(&a).await;
    let own = naming_none_a_caller_watches_its_tokens_organization(&a, &eve).await;
    drop(watch);
    drop(own);
    a.w.sandbox.shutdown().await.unwrap();
}

async fn a_membership_change_reaches_the_organizations_watch(
    a: &Acme,
) -> tonic::Streaming<authz::WatchResponse> {
    let Acme {
        w,
        ada,
        bob,
        acme,
        acme_id,
    } = a;
    let start = w
        .authz()
        .check_permission(authed(
            authz::CheckPermissionRequest {
                resource: object("organization", acme_id),
                permission: "organization.read".into(),
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
                optional_object_types: Vec::new(),
                optional_start_cursor: start,
                organization: acme.name.clone(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    w.add_member(ada, acme_id, bob, &["roles/member"]).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let relationship = seen.updates[0].relationship.clone().unwrap();
    assert_eq!(relationship.resource, object("organization", acme_id));
    assert_eq!(relationship.relation, "member");
    assert_eq!(
        relationship.subject.unwrap().object,
        object("user", &bob.id)
    );
    assert!(seen.changes_through.is_some());
    watch
}

async fn another_organization_is_not_theirs_to_watch(a: &Acme) -> User {
    let Acme { w, acme, .. } = a;
    // Someone else's organization is not theirs to watch.
    let eve = w.user("eve@example.com").await;
    let refused = w
        .authz()
        .watch(authed(
            authz::WatchRequest {
                organization: acme.name.clone(),
                ..Default::default()
            },
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    eve
}

async fn naming_none_a_caller_watches_its_tokens_organization(
    a: &Acme,
    eve: &User,
) -> tonic::Streaming<authz::WatchResponse> {
    let Acme { w, bob, .. } = a;
    // Naming none, a caller watches the organization its token is for.
    let eves = id(&Orgs::new(w.channel.clone())
        .list_my_organizations(authed(
            org::ListMyOrganizationsRequest::default(),
            &eve.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organizations[0]
        .organization
        .clone()
        .unwrap()
        .name);
    let mut own = w
        .authz()
        .watch(authed(authz::WatchRequest::default(), &eve.token))
        .await
        .unwrap()
        .into_inner();
    w.add_member(eve, &eves, bob, &["roles/member"]).await;
    let mine = tokio::time::timeout(Duration::from_secs(10), own.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        mine.updates[0].relationship.clone().unwrap().resource,
        object("organization", &eves)
    );
    own
}

#[tokio::test]
async fn a_replica_behind_the_compacted_log_reloads_and_old_watch_cursors_are_refused() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        // A second replica's index, loaded now, then left behind.
        let db = w.sandbox.database.connect().await.unwrap();
        let store = tenantry_rbac::store::Store::new(db);
        let lagging = tenantry_rbac::live::LiveIndex::load(store.clone())
            .await
            .unwrap();
        let old = lagging.applied();
        let token = w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
        let head = tenantry_rbac::live::parse_token(&token.as_ref().unwrap().token).unwrap();
        assert!(head > old);
        // The log before `head` is compacted away.
        store.compact(head).await.unwrap();
        assert_eq!(store.floor().await.unwrap(), head);
        assert!(store.changes_after(old, 100).await.unwrap().is_empty());
        // The lagging replica notices and reloads: it sees bob.
        lagging.catch_up().await.unwrap();
        assert!(lagging.applied() >= head);
        assert!(
            lagging
                .read()
                .check_by_id(&bob.id, "organization", &acme_id, "organization.read")
                .unwrap()
        );
        // A watch from before the floor cannot be served without a gap.
        let stale = w
            .authz()
            .watch(authed(
                authz::WatchRequest {
                    optional_start_cursor: Some(authz::ZedToken {
                        token: format!("r{old}"),
                    }),
                    organization: acme.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::FailedPrecondition);
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_purged_organization_takes_its_memberships_with_it() {
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
        ])
        .configure(|config| config.organization.purge_interval_secs = 1)
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let w = World { sandbox, channel };
    let ada = w.user("ada@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.organization(&ada, "Acme", None).await;
    let acme_id = id(&acme.name);
    w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
    Orgs::new(w.channel.clone())
        .delete_organization(authed(
            org::DeleteOrganizationRequest {
                name: acme.name.clone(),
                etag: String::new(),
                force: true,
            },
            &ada.token,
        ))
        .await
        .unwrap();
    {
        let db = w.sandbox.database.connect_as_operator().await.unwrap();
        sqlx::query("UPDATE org_organizations SET purge_at_us = 1 WHERE deleted_at_us IS NOT NULL")
            .execute(db.writer())
            .await
            .unwrap();
        db.close().await;
    }
    eventually("bob's membership leaving with the organization", || async {
        let memberships = Members::new(w.channel.clone())
            .list_user_memberships(authed(
                pb::ListUserMembershipsRequest {
                    parent: "users/me".into(),
                    ..Default::default()
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships;
        (!memberships.iter().any(|m| m.name.contains(&acme_id))).then_some(())
    })
    .await;
    w.sandbox.shutdown().await.unwrap();
}
