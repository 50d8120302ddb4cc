//! The plan catalog, custom plans and negotiated overrides.

use super::*;

/// Acme, Ada's, with the event tap open; root a platform administrator and
/// Bob a stranger to Acme.
struct Catalog {
    w: World,
    tap: EventTap,
    root: User,
    ada: User,
    bob: User,
    acme: String,
}

impl Catalog {
    async fn start(storage: Storage) -> Catalog {
        let w = World::start(storage).await;
        let tap = w.tap().await;
        let root = w.user("root@example.com").await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        Catalog {
            w,
            tap,
            root,
            ada,
            bob,
            acme,
        }
    }
}

#[tokio::test]
async fn plans_come_from_the_catalog_and_platform_admins_add_custom_ones() {
    for storage in storages() {
        let mut c = Catalog::start(storage).await;
        let custom = the_catalog_lists_built_in_plans_and_refuses_bad_ones(&mut c).await;
        let created = a_platform_admin_creates_a_custom_plan_once(&mut c, &custom).await;
        an_offered_plan_is_seen_by_its_organization_only(&mut c, &created).await;
        custom_plans_are_updated_by_admins_and_built_in_ones_never(&mut c, &created).await;
        stale_and_unknown_updates_are_refused(&mut c, &created).await;
        c.w.sandbox.shutdown().await.unwrap();
    }
}

async fn the_catalog_lists_built_in_plans_and_refuses_bad_ones(c: &mut Catalog) -> pb::Plan {
    let Catalog {
        w, root, ada, acme, ..
    } = c;
    let listed = w
        .plans()
        .list_plans(authed(pb::ListPlansRequest::default(), &ada.token))
        .await
        .unwrap()
        .into_inner()
        .plans;
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "plans/free",
            "plans/starter",
            "plans/professional",
            "plans/enterprise"
        ]
    );
    assert_eq!(listed[0].limits.as_ref().unwrap().projects, Some(3));
    assert_eq!(
        listed[3].limits.as_ref().unwrap().projects,
        None,
        "enterprise is unlimited"
    );
    assert_eq!(listed[2].features.get("sso"), Some(&true));

    let custom = pb::Plan {
        display_name: "Acme negotiated".into(),
        limits: Some(pb::PlanLimits {
            projects: Some(40),
            ..Default::default()
        }),
        currency_code: "USD".into(),
        billing_interval: pb::BillingInterval::Monthly as i32,
        base_price_minor_units: 50_000,
        offered_to: format!("organizations/{acme}"),
        ..Default::default()
    };
    let denied = w
        .plans()
        .create_plan(authed(
            pb::CreatePlanRequest {
                plan: Some(custom.clone()),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await;
    assert_status(denied, Code::PermissionDenied, "");
    let bad = pb::Plan {
        limits: Some(pb::PlanLimits {
            projects: Some(-1),
            ..Default::default()
        }),
        ..custom.clone()
    };
    let invalid = w
        .plans()
        .create_plan(authed(
            pb::CreatePlanRequest {
                plan: Some(bad),
                request_id: String::new(),
            },
            &root.token,
        ))
        .await;
    let status = assert_status(invalid, Code::InvalidArgument, "");
    assert!(status.get_details_bad_request().is_some());

    custom
}

async fn a_platform_admin_creates_a_custom_plan_once(
    c: &mut Catalog,
    custom: &pb::Plan,
) -> pb::Plan {
    let Catalog { w, tap, root, .. } = c;
    // Billing learns who the platform administrators are from identity.
    let created = eventually("billing learning the platform admin", || async {
        w.plans()
            .create_plan(authed(
                pb::CreatePlanRequest {
                    plan: Some(custom.clone()),
                    request_id: "p-1".into(),
                },
                &root.token,
            ))
            .await
            .ok()
    })
    .await
    .into_inner()
    .plan
    .unwrap();
    assert_eq!(created.tier, pb::PlanTier::Custom as i32);
    tap.expect_about("billing.plan.created", &id(&created.name), EVENT_WAIT)
        .await
        .unwrap();
    let replayed = w
        .plans()
        .create_plan(authed(
            pb::CreatePlanRequest {
                plan: Some(custom.clone()),
                request_id: "p-1".into(),
            },
            &root.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(
        replayed.name, created.name,
        "a replayed request id creates nothing"
    );

    created
}

async fn an_offered_plan_is_seen_by_its_organization_only(c: &mut Catalog, created: &pb::Plan) {
    let Catalog {
        w, root, ada, bob, ..
    } = c;
    // Offered to Acme: its owner sees it, anyone else gets NOT_FOUND.
    let get = |user: &User| {
        let request = authed(
            pb::GetPlanRequest {
                name: created.name.clone(),
            },
            &user.token,
        );
        let mut plans = w.plans();
        async move { plans.get_plan(request).await }
    };
    assert!(get(ada).await.is_ok());
    assert_status(get(bob).await, Code::NotFound, "");
    let bobs = w
        .plans()
        .list_plans(authed(pb::ListPlansRequest::default(), &bob.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bobs.plans.len(), 4);
    let all = w
        .plans()
        .list_plans(authed(pb::ListPlansRequest::default(), &root.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.plans.len(), 5, "the refused creates wrote nothing");
}

async fn custom_plans_are_updated_by_admins_and_built_in_ones_never(
    c: &mut Catalog,
    created: &pb::Plan,
) {
    let Catalog { w, tap, root, .. } = c;
    // Updates: custom plans by admins; built-in ones never.
    let builtin = w
        .plans()
        .update_plan(authed(
            pb::UpdatePlanRequest {
                plan: Some(pb::Plan {
                    name: "plans/free".into(),
                    limits: Some(pb::PlanLimits::default()),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["limits.projects".into()],
                }),
            },
            &root.token,
        ))
        .await;
    assert_status(builtin, Code::FailedPrecondition, "BUILT_IN_PLAN");
    let updated = w
        .plans()
        .update_plan(authed(
            pb::UpdatePlanRequest {
                plan: Some(pb::Plan {
                    name: created.name.clone(),
                    limits: Some(pb::PlanLimits {
                        projects: Some(60),
                        ..Default::default()
                    }),
                    etag: created.etag.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["limits.projects".into()],
                }),
            },
            &root.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(updated.limits.unwrap().projects, Some(60));
    tap.expect_about("billing.plan.updated", &id(&created.name), EVENT_WAIT)
        .await
        .unwrap();
}

async fn stale_and_unknown_updates_are_refused(c: &mut Catalog, created: &pb::Plan) {
    let Catalog { w, root, ada, .. } = c;
    let stale = w
        .plans()
        .update_plan(authed(
            pb::UpdatePlanRequest {
                plan: Some(pb::Plan {
                    name: created.name.clone(),
                    display_name: "x".into(),
                    etag: created.etag.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            },
            &root.token,
        ))
        .await;
    assert_status(stale, Code::Aborted, "");
    let unknown = w
        .plans()
        .get_plan(authed(
            pb::GetPlanRequest {
                name: "plans/../free".into(),
            },
            &ada.token,
        ))
        .await;
    assert_status(unknown, Code::InvalidArgument, "");
}

/// The catalog's Acme on FREE with a billing account, and Fin signed up for
/// its finance.
struct Enterprise {
    c: Catalog,
    fin: User,
    account: pb::BillingAccount,
}

impl Enterprise {
    async fn start(storage: Storage) -> Enterprise {
        let c = Catalog::start(storage).await;
        let fin = c.w.user("fin@example.com").await;
        c.w.subscribed(&c.ada, &c.acme).await;
        let workspace = c.w.organization_workspace(&c.ada, &c.acme).await;
        let account = c.w.account(&c.ada, &workspace, None).await;
        Enterprise { c, fin, account }
    }

    /// `user` overrides Acme's project limit with `projects` and turns SSO off.
    async fn overrides(
        &self,
        user: &User,
        projects: i64,
    ) -> Result<pb::UpdateSubscriptionResponse, tonic::Status> {
        let request = authed(
            pb::UpdateSubscriptionRequest {
                subscription: Some(pb::Subscription {
                    name: format!("organizations/{}/subscription", self.c.acme),
                    limit_overrides: Some(pb::PlanLimits {
                        projects: Some(projects),
                        ..Default::default()
                    }),
                    feature_overrides: [("sso".to_string(), false)].into_iter().collect(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![
                        "limit_overrides.projects".into(),
                        "feature_overrides".into(),
                    ],
                }),
            },
            &user.token,
        );
        let response = self.c.w.subscriptions().update_subscription(request).await;
        response.map(tonic::Response::into_inner)
    }
}

#[tokio::test]
async fn enterprise_overrides_are_negotiated_by_platform_admins_and_finance_manages_billing() {
    for storage in storages() {
        let mut e = Enterprise::start(storage).await;
        finance_manages_billing_and_an_admin_does_not_see_it(&e).await;
        only_a_platform_admin_negotiates_overrides(&mut e).await;
        overrides_belong_to_enterprise_and_custom_plans_only(&e).await;
        e.c.w.sandbox.shutdown().await.unwrap();
    }
}

async fn finance_manages_billing_and_an_admin_does_not_see_it(e: &Enterprise) {
    let Catalog {
        w, ada, bob, acme, ..
    } = &e.c;
    let fin = &e.fin;
    // Finance manages billing; an admin does not even see it.
    w.add_member(ada, acme, fin, &["roles/finance"]).await;
    w.add_member(ada, acme, bob, &["roles/admin"]).await;
    // Billing follows the memberships at once.
    w.subscription(fin, acme)
        .await
        .expect("finance reads billing");
    assert_status(w.subscription(bob, acme).await, Code::PermissionDenied, "");
    w.pay_with(fin, acme, &e.account).await;
    let enterprise = w.change_plan(fin, acme, "enterprise", None).await.unwrap();
    assert_eq!(
        enterprise.limits.unwrap().projects,
        None,
        "enterprise is unlimited"
    );
}

async fn only_a_platform_admin_negotiates_overrides(e: &mut Enterprise) {
    // The customer cannot negotiate with itself.
    assert_status(e.overrides(&e.fin, 500).await, Code::PermissionDenied, "");
    assert_status(e.overrides(&e.c.bob, 500).await, Code::PermissionDenied, "");
    let negotiated = eventually("billing learning the platform admin", || async {
        e.overrides(&e.c.root, 2).await.ok()
    })
    .await
    .subscription
    .unwrap();
    assert_eq!(negotiated.limits.unwrap().projects, Some(2));
    assert_eq!(negotiated.features.get("sso"), Some(&false));
    assert_eq!(negotiated.features.get("scim"), Some(&true));
    let Catalog {
        w, tap, ada, acme, ..
    } = &mut e.c;
    tap.expect_about("billing.subscription.changed", acme, EVENT_WAIT)
        .await
        .unwrap();
    let check = w.check(ada, acme, pb::Metric::Projects, 1).await.unwrap();
    assert_eq!(
        (check.limit, check.source),
        (Some(2), pb::LimitSource::SubscriptionOverride as i32)
    );
}

async fn overrides_belong_to_enterprise_and_custom_plans_only(e: &Enterprise) {
    let Catalog {
        w, root, ada, acme, ..
    } = &e.c;
    // Overrides belong to ENTERPRISE and custom plans only.
    w.change_plan(&e.fin, acme, "starter", None).await.unwrap();
    assert_status(
        e.overrides(root, 2).await,
        Code::FailedPrecondition,
        "OVERRIDES_NOT_ALLOWED",
    );
    let starter = w.subscription(ada, acme).await.unwrap();
    assert_eq!(
        starter.limits.unwrap().projects,
        Some(10),
        "a plan change drops the old plan's overrides"
    );
}
