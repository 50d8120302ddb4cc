//! Altostrat's tree: limits that bind down it, usage that rolls up, and
//! billing modes.

use super::*;
use tenantry_testkit::clients::Workspaces;

/// Altostrat's tree, Ada's: Root, Child and Grandchild; Bob's own root
/// beside it; the event tap open.
struct Altostrat {
    w: World,
    tap: EventTap,
    ada: User,
    bob: User,
    root: String,
    child: String,
    grandchild: String,
    bobs: String,
}

impl Altostrat {
    async fn start(storage: Storage) -> Altostrat {
        let w = World::start(storage).await;
        let tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let root = w.organization(&ada, "Root", None, None).await;
        let child = w.organization(&ada, "Child", Some(&root), None).await;
        let grandchild = w.organization(&ada, "Grandchild", Some(&child), None).await;
        let bobs = w.organization(&bob, "Bob's", None, None).await;
        w.assert_usage(&ada, &root, pb::Metric::SubOrganizations, 2)
            .await;
        assert_eq!(
            w.usage(&ada, &child, pb::Metric::SubOrganizations).await,
            (1, 1)
        );

        Altostrat {
            w,
            tap,
            ada,
            bob,
            root,
            child,
            grandchild,
            bobs,
        }
    }
}

/// Altostrat's tree (organizations, teams and workspaces): a limit set on
/// an organization binds its whole subtree, the most restrictive wins, and
/// usage rolls up to the root.
#[tokio::test]
async fn altostrat_limits_bind_down_its_tree_and_usage_rolls_up() {
    for storage in storages() {
        let mut a = Altostrat::start(storage).await;
        a_limit_on_child_binds_its_whole_subtree(&mut a).await;
        the_most_restrictive_limit_wins(&mut a).await;
        a_limit_refuses_teams_below_it_until_cleared(&mut a).await;
        bad_limits_write_nothing(&mut a).await;
        soft_deleting_a_subtree_takes_it_out_of_its_ancestors(&mut a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_limit_on_child_binds_its_whole_subtree(a: &mut Altostrat) {
    let Altostrat {
        w,
        tap,
        ada,
        root,
        child,
        grandchild,
        ..
    } = a;
    // A limit on Child binds its whole subtree.
    let set = w
        .entitlements()
        .set_limit(authed(
            pb::SetLimitRequest {
                organization: format!("organizations/{child}"),
                metric: pb::Metric::Teams as i32,
                value: 1,
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.effective_limit.unwrap().value, Some(1));
    tap.expect_about("billing.limit.set", child, EVENT_WAIT)
        .await
        .unwrap();
    w.create_team(ada, grandchild, "Core").await;
    w.assert_usage(ada, root, pb::Metric::Teams, 1).await;
    assert_eq!(w.usage(ada, grandchild, pb::Metric::Teams).await, (1, 1));
    assert_eq!(w.usage(ada, child, pb::Metric::Teams).await, (0, 1));
    let denied = w
        .check(ada, grandchild, pb::Metric::Teams, 1)
        .await
        .unwrap();
    assert!(!denied.allowed);
    assert_eq!(
        denied.reason,
        pb::check_quota_response::Reason::LimitExceeded as i32
    );
    assert_eq!(denied.source, pb::LimitSource::Ancestor as i32);
    assert_eq!(denied.source_organization, format!("organizations/{child}"));
}

async fn the_most_restrictive_limit_wins(a: &mut Altostrat) {
    let Altostrat {
        w, ada, grandchild, ..
    } = a;
    // A looser limit lower down changes nothing: the most restrictive wins.
    w.entitlements()
        .set_limit(authed(
            pb::SetLimitRequest {
                organization: format!("organizations/{grandchild}"),
                metric: pb::Metric::Teams as i32,
                value: 5,
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let effective = w
        .effective(ada, grandchild, pb::Metric::Teams)
        .await
        .unwrap();
    assert_eq!(
        (effective.value, effective.source),
        (Some(1), pb::LimitSource::Ancestor as i32)
    );
    let sources: Vec<i32> = effective.candidates.iter().map(|c| c.source).collect();
    assert_eq!(
        sources,
        [
            pb::LimitSource::Organization as i32,
            pb::LimitSource::Ancestor as i32,
            pb::LimitSource::Plan as i32
        ]
    );
}

async fn a_limit_refuses_teams_below_it_until_cleared(a: &mut Altostrat) {
    let Altostrat {
        w,
        tap,
        ada,
        child,
        grandchild,
        ..
    } = a;
    let refused = org::team_service_client::TeamServiceClient::new(w.channel.clone())
        .create_team(authed(
            org::CreateTeamRequest {
                parent: format!("organizations/{grandchild}"),
                team: Some(org::Team {
                    display_name: "Two".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await;
    let refused = assert_status(refused, Code::ResourceExhausted, "QUOTA_EXCEEDED");
    assert_eq!(
        metadata(&refused, "limit_organization"),
        format!("organizations/{child}")
    );
    w.entitlements()
        .clear_limit(authed(
            pb::ClearLimitRequest {
                organization: format!("organizations/{child}"),
                metric: pb::Metric::Teams as i32,
            },
            &ada.token,
        ))
        .await
        .unwrap();
    tap.expect_about("billing.limit.cleared", child, EVENT_WAIT)
        .await
        .unwrap();
    assert!(
        w.check(ada, grandchild, pb::Metric::Teams, 1)
            .await
            .unwrap()
            .allowed
    );
}

async fn bad_limits_write_nothing(a: &mut Altostrat) {
    let Altostrat {
        w,
        ada,
        bob,
        child,
        bobs,
        ..
    } = a;
    // Bad input writes nothing.
    let negative = w
        .entitlements()
        .set_limit(authed(
            pb::SetLimitRequest {
                organization: format!("organizations/{child}"),
                metric: pb::Metric::Teams as i32,
                value: -1,
            },
            &ada.token,
        ))
        .await;
    assert_status(negative, Code::InvalidArgument, "");
    let unknown = w
        .entitlements()
        .set_limit(authed(
            pb::SetLimitRequest {
                organization: format!("organizations/{child}"),
                metric: 99,
                value: 1,
            },
            &ada.token,
        ))
        .await;
    assert_status(unknown, Code::InvalidArgument, "UNKNOWN_METRIC");
    let foreign = w
        .entitlements()
        .set_limit(authed(
            pb::SetLimitRequest {
                organization: format!("organizations/{bobs}"),
                metric: pb::Metric::Teams as i32,
                value: 0,
            },
            &ada.token,
        ))
        .await;
    assert_status(foreign, Code::NotFound, "");
    let bobs_limits = w.effective(bob, bobs, pb::Metric::Teams).await.unwrap();
    assert_eq!(
        bobs_limits.candidates.len(),
        1,
        "only the plan: ada's limit was not written"
    );
    assert_status(
        w.check(ada, bobs, pb::Metric::Teams, 1).await,
        Code::NotFound,
        "",
    );
    assert_status(
        w.check(ada, child, pb::Metric::Teams, -1).await,
        Code::InvalidArgument,
        "",
    );
}

async fn soft_deleting_a_subtree_takes_it_out_of_its_ancestors(a: &mut Altostrat) {
    let Altostrat {
        w,
        ada,
        root,
        grandchild,
        ..
    } = a;
    // Soft-deleting Grandchild takes its subtree out of its ancestors.
    org::organization_service_client::OrganizationServiceClient::new(w.channel.clone())
        .delete_organization(authed(
            org::DeleteOrganizationRequest {
                name: format!("organizations/{grandchild}"),
                force: true,
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    w.assert_usage(ada, root, pb::Metric::Teams, 0).await;
    w.assert_usage(ada, root, pb::Metric::SubOrganizations, 1)
        .await;
}

/// Altostrat's billing modes: SINGLE, ASSIGNED and POOLED workspaces decide
/// who pays for which organization, and pooled plans add up.
#[tokio::test]
async fn altostrat_billing_modes_decide_accounts_and_pools_add_up() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        assigned_workspaces_have_an_account_per_top_level_organization(&w, &ada).await;
        let pooled = pooled_subscriptions_add_up_to_one_pool(&w, &ada).await;
        the_billing_mode_never_changes(&w, &ada, &pooled).await;
        w.sandbox.shutdown().await.unwrap();
    }
}

/// ASSIGNED: one account per top-level organization, named by it.
async fn assigned_workspaces_have_an_account_per_top_level_organization(w: &World, ada: &User) {
    let assigned = w.workspace(ada, org::BillingMode::Assigned).await;
    let a1 = w.organization(ada, "A1", None, Some(&assigned)).await;
    let a2 = w.organization(ada, "A2", None, Some(&assigned)).await;
    // Billing knows the workspace from its creation on: ASSIGNED wants
    // the organization an account pays for.
    assert_status(
        w.create_account(ada, &assigned, None).await,
        Code::InvalidArgument,
        "",
    );
    let x1 = w.account(ada, &assigned, Some(&a1)).await;
    assert_eq!(x1.billing_mode, pb::BillingMode::Assigned as i32);
    assert_status(
        w.create_account(ada, &assigned, Some(&a1)).await,
        Code::FailedPrecondition,
        "ORGANIZATION_HAS_ACCOUNT",
    );
    w.account(ada, &assigned, Some(&a2)).await;
    let listed = w
        .accounts()
        .list_billing_accounts(authed(
            pb::ListBillingAccountsRequest {
                parent: assigned.clone(),
                page_size: 1,
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.billing_accounts.len(), 1);
    assert!(!listed.next_page_token.is_empty());
}

/// POOLED: every contributor's subscriptions add up to one pool. Answers
/// the pooled workspace.
async fn pooled_subscriptions_add_up_to_one_pool(w: &World, ada: &User) -> String {
    let pooled = w.workspace(ada, org::BillingMode::Pooled).await;
    let p1 = w.organization(ada, "P1", None, Some(&pooled)).await;
    let p2 = w.organization(ada, "P2", None, Some(&pooled)).await;
    let y1 = w.account(ada, &pooled, None).await;
    let y2 = w.account(ada, &pooled, None).await;
    w.subscribed(ada, &p1).await;
    w.subscribed(ada, &p2).await;
    w.pay_with(ada, &p1, &y1).await;
    w.change_plan(ada, &p1, "starter", None).await.unwrap();
    w.pay_with(ada, &p2, &y2).await;
    w.change_plan(ada, &p2, "professional", None).await.unwrap();
    let pool = w
        .accounts()
        .list_pool_contributions(authed(
            pb::ListPoolContributionsRequest {
                parent: pooled.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pool.pool_limits.unwrap().projects, Some(110));
    let shares: Vec<(i64, i32)> = pool
        .pool_contributions
        .iter()
        .map(|c| (c.contributed_seats, c.seat_share_basis_points))
        .collect();
    assert_eq!(shares, [(5, 3333), (10, 6666)]);
    assert_eq!(
        pool.pool_contributions[0].subscriptions,
        [format!("organizations/{p1}/subscription")]
    );
    let check = w.check(ada, &p1, pb::Metric::Projects, 1).await.unwrap();
    assert_eq!(
        (check.limit, check.source),
        (Some(110), pb::LimitSource::Plan as i32)
    );
    let single_only = w.create_account(ada, &pooled, Some(&p1)).await;
    assert_status(single_only, Code::InvalidArgument, "");
    pooled
}

async fn the_billing_mode_never_changes(w: &World, ada: &User, pooled: &str) {
    let immutable = Workspaces::new(w.channel.clone())
        .update_workspace(authed(
            org::UpdateWorkspaceRequest {
                workspace: Some(org::Workspace {
                    name: pooled.to_string(),
                    billing_mode: org::BillingMode::Single as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["billing_mode".into()],
                }),
            },
            &ada.token,
        ))
        .await;
    assert_status(immutable, Code::InvalidArgument, "BILLING_MODE_IMMUTABLE");
    assert_eq!(
        w.create_account(ada, pooled, None)
            .await
            .unwrap()
            .billing_mode,
        pb::BillingMode::Pooled as i32
    );
}
