//! Subscriptions: downgrades, trials and upgrades.

use super::*;

/// Acme, Ada's, subscribed to FREE; Bob signed up; the event tap open.
struct Acme {
    w: World,
    tap: EventTap,
    ada: User,
    bob: User,
    acme: String,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(storage).await;
        let mut tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        let free = w.subscribed(&ada, &acme).await;
        assert_eq!(free.plan, "plans/free");
        assert_eq!(free.state, pb::subscription::State::Active as i32);
        tap.expect_about("billing.subscription.created", &acme, EVENT_WAIT)
            .await
            .unwrap();
        Acme {
            w,
            tap,
            ada,
            bob,
            acme,
        }
    }
}

#[tokio::test]
async fn downgrades_keep_everything_but_block_creation_and_trials_end() {
    for storage in storages() {
        let mut a = Acme::start(storage).await;
        free_allows_three_projects(&mut a).await;
        let account = a_paid_plan_needs_an_account_and_raises_the_limit_at_once(&mut a).await;
        back_on_free_nothing_is_deleted_and_creation_stops(&mut a).await;
        members_may_not_see_or_change_billing(&mut a).await;
        after_a_cancellation_a_new_subscription_starts_a_trial(&mut a, &account).await;
        a_child_organization_does_not_subscribe(&mut a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn free_allows_three_projects(a: &mut Acme) {
    let Acme { w, ada, acme, .. } = a;
    // FREE allows three projects; the fourth is refused by the
    // organization service, which asks billing first.
    for n in 1..=3 {
        w.create_project(ada, acme, &format!("p{n}")).await.unwrap();
        w.assert_usage(ada, acme, pb::Metric::Projects, n).await;
    }
    let refused = assert_status(
        w.create_project(ada, acme, "p4").await,
        Code::ResourceExhausted,
        "QUOTA_EXCEEDED",
    );
    assert_eq!(metadata(&refused, "limit"), "3");
}

async fn a_paid_plan_needs_an_account_and_raises_the_limit_at_once(
    a: &mut Acme,
) -> pb::BillingAccount {
    let Acme {
        w, tap, ada, acme, ..
    } = a;
    // A paid plan needs an account; then the limit rises at once.
    let workspace = w.organization_workspace(ada, acme).await;
    let no_account = w.change_plan(ada, acme, "starter", None).await;
    assert_status(
        no_account,
        Code::FailedPrecondition,
        "BILLING_ACCOUNT_REQUIRED",
    );
    let account = w.account(ada, &workspace, None).await;
    let second = w.create_account(ada, &workspace, None).await;
    assert_status(second, Code::FailedPrecondition, "SINGLE_ACCOUNT_EXISTS");
    let accounts = w
        .accounts()
        .list_billing_accounts(authed(
            pb::ListBillingAccountsRequest {
                parent: workspace.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accounts.billing_accounts.len(), 1);
    w.pay_with(ada, acme, &account).await;
    let starter = w.change_plan(ada, acme, "starter", None).await.unwrap();
    assert_eq!(starter.limits.unwrap().projects, Some(10));
    tap.expect_about("billing.subscription.changed", acme, EVENT_WAIT)
        .await
        .unwrap();
    for n in 4..=5 {
        w.create_project(ada, acme, &format!("p{n}")).await.unwrap();
        w.assert_usage(ada, acme, pb::Metric::Projects, n).await;
    }

    account
}

async fn back_on_free_nothing_is_deleted_and_creation_stops(a: &mut Acme) {
    let Acme {
        w, tap, ada, acme, ..
    } = a;
    // Back to FREE: nothing is deleted, creation stops, and it says so.
    let downgraded = w.change_plan(ada, acme, "free", None).await.unwrap();
    assert_eq!(
        downgraded.over_limit_metrics,
        vec![pb::Metric::Projects as i32]
    );
    let exceeded = tap
        .expect_about("billing.limit.exceeded", acme, EVENT_WAIT)
        .await
        .unwrap();
    assert_eq!(exceeded.organization_id, *acme);
    assert_status(
        w.create_project(ada, acme, "p6").await,
        Code::ResourceExhausted,
        "QUOTA_EXCEEDED",
    );
    assert_eq!(w.usage(ada, acme, pb::Metric::Projects).await, (5, 5));
    let check = w.check(ada, acme, pb::Metric::Projects, 0).await.unwrap();
    assert!(!check.allowed, "usage above the limit refuses even zero");
    assert_eq!(
        (check.limit, check.used, check.remaining),
        (Some(3), 5, Some(0))
    );
}

async fn members_may_not_see_or_change_billing(a: &mut Acme) {
    let Acme {
        w, ada, bob, acme, ..
    } = a;
    // Members may not see or change billing.
    w.add_member(ada, acme, bob, &["roles/member"]).await;
    assert_status(w.subscription(bob, acme).await, Code::PermissionDenied, "");
    assert_status(
        w.change_plan(bob, acme, "starter", None).await,
        Code::PermissionDenied,
        "",
    );
    assert_eq!(w.subscription(ada, acme).await.unwrap().plan, "plans/free");
}

async fn after_a_cancellation_a_new_subscription_starts_a_trial(
    a: &mut Acme,
    account: &pb::BillingAccount,
) {
    let Acme {
        w, tap, ada, acme, ..
    } = a;
    // Subscribe refuses a live subscription; after a cancellation a new
    // one starts with the plan's trial.
    let live = w
        .subscriptions()
        .subscribe(authed(
            pb::SubscribeRequest {
                name: format!("organizations/{acme}/subscription"),
                plan: "plans/starter".into(),
                billing_account: account.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await;
    assert_status(live, Code::AlreadyExists, "SUBSCRIPTION_EXISTS");
    let canceled = w
        .subscriptions()
        .cancel_subscription(authed(
            pb::CancelSubscriptionRequest {
                name: format!("organizations/{acme}/subscription"),
                immediately: true,
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(canceled.state, pb::subscription::State::Canceled as i32);
    tap.expect_about("billing.subscription.canceled", acme, EVENT_WAIT)
        .await
        .unwrap();
    let trial = w
        .subscriptions()
        .subscribe(authed(
            pb::SubscribeRequest {
                name: format!("organizations/{acme}/subscription"),
                plan: "plans/starter".into(),
                billing_account: account.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(trial.state, pb::subscription::State::Trialing as i32);
    let days = (trial.trial_end_time.unwrap().seconds - now_secs()) / 86_400;
    assert!((13..=14).contains(&days), "a 14-day trial, got {days}");
    w.create_project(ada, acme, "p6").await.unwrap();
}

async fn a_child_organization_does_not_subscribe(a: &mut Acme) {
    let Acme { w, ada, acme, .. } = a;
    // A child organization does not subscribe.
    let child = w.organization(ada, "Child", Some(acme), None).await;
    let child_subscribe = w
        .subscriptions()
        .subscribe(authed(
            pb::SubscribeRequest {
                name: format!("organizations/{child}/subscription"),
                plan: "plans/free".into(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await;
    assert_status(
        child_subscribe,
        Code::FailedPrecondition,
        "NOT_A_ROOT_ORGANIZATION",
    );
}

/// Acme on FREE, Ada's, its workspace without an account, the tap open.
struct Upgrade {
    w: World,
    tap: EventTap,
    ada: User,
    acme: String,
    workspace: String,
}

impl Upgrade {
    async fn start(storage: Storage) -> Upgrade {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        w.subscribed(&ada, &acme).await;
        let workspace = w.organization_workspace(&ada, &acme).await;
        let tap = w.tap().await;
        Upgrade {
            w,
            tap,
            ada,
            acme,
            workspace,
        }
    }

    /// ChangePlan to STARTER, paid by a new account, an existing one, or both.
    async fn upgrade(
        &self,
        account: Option<pb::BillingAccount>,
        existing: &str,
    ) -> Result<pb::Subscription, tonic::Status> {
        let request = pb::ChangePlanRequest {
            name: format!("organizations/{}/subscription", self.acme),
            plan: "plans/starter".into(),
            request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a52".into(),
            billing_account: existing.to_string(),
            new_billing_account: account,
            ..Default::default()
        };
        let answer = self
            .w
            .subscriptions()
            .change_plan(authed(request, &self.ada.token))
            .await?;
        Ok(answer.into_inner().subscription.unwrap())
    }

    async fn accounts(&self) -> Vec<pb::BillingAccount> {
        let request = pb::ListBillingAccountsRequest {
            parent: self.workspace.clone(),
            ..Default::default()
        };
        let answer = self
            .w
            .accounts()
            .list_billing_accounts(authed(request, &self.ada.token))
            .await;
        answer.unwrap().into_inner().billing_accounts
    }

    fn roles(&self) -> rbac::role_service_client::RoleServiceClient<Channel> {
        rbac::role_service_client::RoleServiceClient::new(self.w.channel.clone())
    }

    async fn create_role(
        &self,
    ) -> Result<tonic::Response<rbac::CreateRoleResponse>, tonic::Status> {
        let role = rbac::Role {
            display_name: "Auditor".into(),
            permissions: vec!["organization.read".into(), "audit.read".into()],
            ..Default::default()
        };
        let request = rbac::CreateRoleRequest {
            parent: format!("organizations/{}", self.acme),
            role: Some(role),
            request_id: String::new(),
        };
        self.roles()
            .create_role(authed(request, &self.ada.token))
            .await
    }

    async fn feature(
        &self,
        token: &str,
        name: &str,
    ) -> Result<pb::CheckFeatureResponse, tonic::Status> {
        let request = pb::CheckFeatureRequest {
            organization: format!("organizations/{}", self.acme),
            feature: name.into(),
        };
        let answer = self
            .w
            .entitlements()
            .check_feature(authed(request, token))
            .await?;
        Ok(answer.into_inner())
    }
}

fn new_account() -> pb::BillingAccount {
    pb::BillingAccount {
        display_name: "Acme billing".into(),
        currency_code: "USD".into(),
        billing_email: "billing@acme.example".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_free_organization_upgrades_in_one_call() {
    for storage in storages() {
        let mut u = Upgrade::start(storage).await;
        custom_roles_wait_for_a_paid_plan(&u).await;
        check_feature_answers_readers_only(&u).await;
        naming_the_payer_twice_is_refused_and_makes_nothing(&u).await;
        one_call_makes_the_account_and_upgrades(&u).await;
        the_account_and_the_change_are_in_the_log(&mut u).await;
        u.w.sandbox.shutdown().await.unwrap();
    }
}

async fn custom_roles_wait_for_a_paid_plan(u: &Upgrade) {
    // Custom roles are a paid feature: on FREE, CreateRole says so in
    // words and makes nothing.
    let free = assert_status(
        u.create_role().await,
        Code::FailedPrecondition,
        "FEATURE_NOT_INCLUDED",
    );
    assert!(
        free.message()
            .contains("Free plan does not include custom roles"),
        "{free:?}"
    );
    let request = rbac::ListRolesRequest {
        parent: format!("organizations/{}", u.acme),
        ..Default::default()
    };
    let roles = u.roles().list_roles(authed(request, &u.ada.token)).await;
    let roles = roles.unwrap().into_inner().roles;
    assert!(roles.iter().all(|r| r.display_name != "Auditor"));
}

async fn check_feature_answers_readers_only(u: &Upgrade) {
    // CheckFeature tells anyone who may read the organization, a stranger
    // nothing.
    let on_free = u.feature(&u.ada.token, "custom_roles").await.unwrap();
    assert!(!on_free.included);
    assert_eq!(on_free.plan, "plans/free");
    let bad = u.feature(&u.ada.token, "Custom Roles").await;
    assert_status(bad, Code::InvalidArgument, "INVALID_ARGUMENT");
    let stranger = u.w.user("mallory@example.com").await;
    let hidden = u.feature(&stranger.token, "custom_roles").await;
    assert_status(hidden, Code::NotFound, "NOT_FOUND");
}

async fn naming_the_payer_twice_is_refused_and_makes_nothing(u: &Upgrade) {
    let existing = format!("{}/billingAccounts/x", u.workspace);
    let both = u.upgrade(Some(new_account()), &existing).await;
    assert_status(both, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(u.accounts().await.is_empty());
}

async fn one_call_makes_the_account_and_upgrades(u: &Upgrade) {
    // One call: the account is made in the workspace and pays.
    let upgraded = u.upgrade(Some(new_account()), "").await.unwrap();
    assert_eq!(upgraded.plan, "plans/starter");
    let made = u.accounts().await;
    assert_eq!(made.len(), 1);
    assert_eq!(upgraded.billing_account, made[0].name);
    // A retry of the same call makes no second account and no change.
    let again = u.upgrade(Some(new_account()), "").await.unwrap();
    assert_eq!(again.etag, upgraded.etag);
    assert_eq!(u.accounts().await.len(), 1);
    // On STARTER, custom roles are there at once.
    let on_starter = u.feature(&u.ada.token, "custom_roles").await.unwrap();
    assert!(on_starter.included);
    assert_eq!(on_starter.plan, "plans/starter");
    u.create_role().await.unwrap();
}

async fn the_account_and_the_change_are_in_the_log(u: &mut Upgrade) {
    // Both are in the organization's log, each naming what it is about.
    let wait = Duration::from_secs(15);
    let created = u.tap.expect("billing.account.created", wait).await.unwrap();
    assert_eq!(created.organization_id, u.acme);
    assert_eq!(created.targets[0].r#type, "billing_account");
    let changed = u.tap.expect("billing.subscription.changed", wait);
    let changed = changed.await.unwrap();
    assert_eq!(changed.organization_id, u.acme);
    let target = &changed.targets[0];
    assert_eq!(
        (target.r#type.as_str(), target.id.as_str()),
        ("subscription", u.acme.as_str())
    );
}
