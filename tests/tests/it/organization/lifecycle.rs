//! Deletion, undeletion and purging.

use super::*;

/// Root, Ada's, with the Division organization, its Unit department and
/// the Unit's team; the event tap open.
struct Root {
    w: World,
    tap: EventTap,
    ada: String,
    token: String,
    division: pb::Organization,
    unit: pb::Organization,
    team: pb::Team,
}

impl Root {
    async fn start(storage: Storage) -> Root {
        let mut w = World::start(storage).await;
        let tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Root").await;
        let division = w
            .child(
                &ada,
                &token,
                &root,
                "Division",
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap();
        let unit = w
            .child(
                &ada,
                &token,
                &division,
                "Unit",
                pb::OrganizationKind::Department,
            )
            .await
            .unwrap();
        let team = w.team(&token, &unit.name, "Unit Team").await;
        Root {
            w,
            tap,
            ada,
            token,
            division,
            unit,
            team,
        }
    }
}

#[tokio::test]
async fn deleting_a_non_empty_organization_needs_force_and_undelete_restores_it_all() {
    for storage in storages() {
        let mut r = Root::start(storage).await;
        let deleted = a_non_empty_organization_is_deleted_only_with_force(&mut r).await;
        what_went_with_an_ancestor_stays_with_it(&mut r).await;
        undelete_restores_it_all(&mut r, &deleted).await;
        r.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_non_empty_organization_is_deleted_only_with_force(r: &mut Root) -> pb::Organization {
    let Root {
        w, token, division, ..
    } = r;

    let refused = w
        .orgs
        .delete_organization(authed(
            pb::DeleteOrganizationRequest {
                name: division.name.clone(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ORGANIZATION_NOT_EMPTY");
    let deleted = w
        .orgs
        .delete_organization(authed(
            pb::DeleteOrganizationRequest {
                name: division.name.clone(),
                etag: division.etag.clone(),
                force: true,
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert!(deleted.delete_time.is_some() && deleted.purge_time.is_some());
    deleted
}

async fn what_went_with_an_ancestor_stays_with_it(r: &mut Root) {
    let Root {
        w,
        tap,
        ada,
        token,
        division,
        unit,
        team,
    } = r;
    let event = tap
        .expect("organization.deleted", EVENT_WAIT)
        .await
        .unwrap();
    let body: events::OrganizationDeleted = payload(&event);
    assert_eq!(
        body.cascaded_organization_ids,
        vec![id(&unit.name).to_string()]
    );
    let unit_now = w.get(token, &unit.name).await.unwrap();
    assert!(unit_now.delete_time.is_some(), "the subtree went with it");
    let team_now = w
        .teams
        .get_team(authed(
            pb::GetTeamRequest {
                name: team.name.clone(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert!(team_now.delete_time.is_some());
    // What went along with an ancestor comes back with it, not alone.
    let alone = w
        .orgs
        .undelete_organization(authed(
            pb::UndeleteOrganizationRequest {
                name: unit.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&alone), "DELETED_WITH_ANCESTOR");
    // A new child under a deleted parent is refused.
    let under_deleted = w
        .child(
            ada,
            token,
            division,
            "Late",
            pb::OrganizationKind::Organization,
        )
        .await
        .unwrap_err();
    assert_eq!(under_deleted.code(), Code::FailedPrecondition);
}

async fn undelete_restores_it_all(r: &mut Root, deleted: &pb::Organization) {
    let Root {
        w,
        tap,
        token,
        division,
        unit,
        team,
        ..
    } = r;
    let restored = w
        .orgs
        .undelete_organization(authed(
            pb::UndeleteOrganizationRequest {
                name: division.name.clone(),
                etag: deleted.etag.clone(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert!(restored.delete_time.is_none());
    let body: events::OrganizationUndeleted = payload(
        &tap.expect("organization.undeleted", EVENT_WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(
        body.cascaded_organization_ids,
        vec![id(&unit.name).to_string()]
    );
    assert!(
        w.get(token, &unit.name)
            .await
            .unwrap()
            .delete_time
            .is_none()
    );
    let team_now = w
        .teams
        .get_team(authed(
            pb::GetTeamRequest {
                name: team.name.clone(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert!(team_now.delete_time.is_none());
    let again = w
        .orgs
        .undelete_organization(authed(
            pb::UndeleteOrganizationRequest {
                name: division.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&again), "ORGANIZATION_NOT_DELETED");
}

#[tokio::test]
async fn objects_past_their_purge_time_are_purged_for_good() {
    for storage in storages() {
        let purging = |config: &mut tenantry::config::Config| {
            config.organization.purge_interval_secs = 1;
        };
        let mut w = World::with(storage, purging).await;
        let mut tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Root").await;
        let doomed = w
            .child(
                &ada,
                &token,
                &root,
                "Doomed",
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap();
        let team = w.team(&token, &doomed.name, "Crew").await;
        w.orgs
            .delete_organization(authed(
                pb::DeleteOrganizationRequest {
                    name: doomed.name.clone(),
                    etag: String::new(),
                    force: true,
                },
                &token,
            ))
            .await
            .unwrap();
        thirty_days_pass(&w).await;
        let purged_team = tap.expect("team.purged", EVENT_WAIT).await.unwrap();
        assert_eq!(purged_team.aggregate_id, id(&team.name));
        let purged = tap.expect("organization.purged", EVENT_WAIT).await.unwrap();
        assert_eq!(purged.aggregate_id, id(&doomed.name));
        let gone = w.get(&token, &doomed.name).await.unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);
        // The root, never deleted, stays.
        assert!(w.get(&token, &root.name).await.is_ok());
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Thirty days pass: the purge times of what is deleted move into the past.
async fn thirty_days_pass(w: &World) {
    let db = w.sandbox.database.connect_as_operator().await.unwrap();
    for table in ["org_organizations", "org_teams"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET purge_at_us = 1 WHERE deleted_at_us IS NOT NULL"
        )))
        .execute(db.writer())
        .await
        .unwrap();
    }
    db.close().await;
}
