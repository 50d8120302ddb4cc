//! The billing service end to end, with the real identity, organization and
//! rbac services: plans, subscriptions and downgrades, billing modes and
//! pools, limits down the tree and usage rolling up, metering, quotas in
//! front of real creates, provider webhooks and invoice previews. Every
//! call is gRPC; every test runs on SQLite and Postgres.

use std::time::Duration;

use tenantry::services::ServiceKind;
use tenantry_billing::provider::Stripe;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{
    EventTap, Sandbox, Storage, authed, eventually, last_id as id, now_secs, storages,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const SECRET: &str = "whsec_test_secret_for_billing";
const EVENT_WAIT: Duration = Duration::from_secs(10);

type Plans = pb::plan_service_client::PlanServiceClient<Channel>;
type Accounts = pb::billing_account_service_client::BillingAccountServiceClient<Channel>;
type Subscriptions = pb::subscription_service_client::SubscriptionServiceClient<Channel>;
type Entitlements = pb::entitlement_service_client::EntitlementServiceClient<Channel>;
type Usage = pb::usage_service_client::UsageServiceClient<Channel>;
type Invoices = pb::invoice_service_client::InvoiceServiceClient<Channel>;
type Webhooks = pb::provider_webhook_service_client::ProviderWebhookServiceClient<Channel>;

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

fn metadata(status: &tonic::Status, key: &str) -> String {
    status
        .get_details_error_info()
        .and_then(|info| info.metadata.get(key).cloned())
        .unwrap_or_default()
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    why: &str,
) -> tonic::Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    if !why.is_empty() {
        assert_eq!(reason(&status), why, "{status:?}");
    }
    status
}

struct User {
    token: String,
}

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

impl World {
    async fn start(storage: Storage) -> World {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Billing,
            ])
            .storage(storage)
            .configure(|config| {
                config.identity.platform_admins = vec!["root@example.com".into()];
                config.billing.sweep_interval_secs = 1;
                config.billing.providers.insert(
                    "stripe".into(),
                    serde_json::from_value(serde_json::json!({
                        "kind": "stripe",
                        "webhook_secret": SECRET,
                    }))
                    .unwrap(),
                );
            })
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        World { sandbox, channel }
    }

    async fn user(&self, email: &str) -> User {
        let response =
            identity_pb::identity_service_client::IdentityServiceClient::new(self.channel.clone())
                .sign_up(identity_pb::SignUpRequest {
                    email: email.into(),
                    password: "correct horse battery staple".into(),
                    display_name: email.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        User {
            token: response.tokens.unwrap().access_token,
        }
    }

    fn plans(&self) -> Plans {
        Plans::new(self.channel.clone())
    }
    fn accounts(&self) -> Accounts {
        Accounts::new(self.channel.clone())
    }
    fn subscriptions(&self) -> Subscriptions {
        Subscriptions::new(self.channel.clone())
    }
    fn entitlements(&self) -> Entitlements {
        Entitlements::new(self.channel.clone())
    }
    fn usage_client(&self) -> Usage {
        Usage::new(self.channel.clone())
    }

    async fn workspace(&self, owner: &User, mode: org::BillingMode) -> String {
        org::workspace_service_client::WorkspaceServiceClient::new(self.channel.clone())
            .create_workspace(authed(
                org::CreateWorkspaceRequest {
                    workspace: Some(org::Workspace {
                        display_name: "Billing".into(),
                        billing_mode: mode as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &owner.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .workspace
            .unwrap()
            .name
    }

    /// An organization (a root, in `workspace` when given), once its owner
    /// may read it.
    async fn organization(
        &self,
        owner: &User,
        name: &str,
        parent: Option<&str>,
        workspace: Option<&str>,
    ) -> String {
        let created =
            org::organization_service_client::OrganizationServiceClient::new(self.channel.clone())
                .create_organization(authed(
                    org::CreateOrganizationRequest {
                        organization: Some(org::Organization {
                            display_name: name.into(),
                            parent: parent
                                .map(|p| format!("organizations/{p}"))
                                .unwrap_or_default(),
                            workspace: workspace.unwrap_or_default().to_string(),
                            ..Default::default()
                        }),
                        request_id: String::new(),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .organization
                .unwrap();
        let org_id = id(&created.name);
        // Billing knows it for its creator's next call: no waiting.
        self.effective(owner, &org_id, pb::Metric::Projects)
            .await
            .unwrap_or_else(|status| panic!("billing does not know {name} yet: {status:?}"));
        org_id
    }

    async fn create_project(
        &self,
        owner: &User,
        org_id: &str,
        name: &str,
    ) -> Result<String, tonic::Status> {
        let project = org::project_service_client::ProjectServiceClient::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{org_id}"),
                    project: Some(org::Project {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await?
            .into_inner()
            .project
            .unwrap();
        Ok(id(&project.name))
    }

    async fn create_team(&self, owner: &User, org_id: &str, name: &str) -> String {
        let team = org::team_service_client::TeamServiceClient::new(self.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: format!("organizations/{org_id}"),
                    team: Some(org::Team {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        id(&team.name)
    }

    async fn add_member(&self, by: &User, org_id: &str, user: &User, roles: &[&str]) {
        tenantry_tests::people::join(
            &self.sandbox,
            &self.channel,
            &by.token,
            org_id,
            &user.token,
            roles,
        )
        .await;
    }

    async fn effective(
        &self,
        user: &User,
        org_id: &str,
        metric: pb::Metric,
    ) -> Result<pb::EffectiveLimit, tonic::Status> {
        Ok(self
            .entitlements()
            .get_effective_limits(authed(
                pb::GetEffectiveLimitsRequest {
                    organization: format!("organizations/{org_id}"),
                    metrics: vec![metric as i32],
                },
                &user.token,
            ))
            .await?
            .into_inner()
            .effective_limits
            .remove(0))
    }

    /// (own, subtree) usage of a metric in the current period.
    async fn usage(&self, user: &User, org_id: &str, metric: pb::Metric) -> (i64, i64) {
        let usage = self
            .usage_client()
            .get_usage(authed(
                pb::GetUsageRequest {
                    organization: format!("organizations/{org_id}"),
                    metric: metric as i32,
                    period_time: None,
                },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .usages
            .remove(0);
        (usage.own_quantity, usage.subtree_quantity)
    }

    /// Waits until billing counts `subtree` of `metric` at the organization.
    async fn until_usage(&self, user: &User, org_id: &str, metric: pb::Metric, subtree: i64) {
        eventually(
            &format!("{} usage {subtree}", metric.as_str_name()),
            || async { (self.usage(user, org_id, metric).await.1 == subtree).then_some(()) },
        )
        .await;
    }

    async fn check(
        &self,
        user: &User,
        org_id: &str,
        metric: pb::Metric,
        delta: i64,
    ) -> Result<pb::CheckQuotaResponse, tonic::Status> {
        Ok(self
            .entitlements()
            .check_quota(authed(
                pb::CheckQuotaRequest {
                    organization: format!("organizations/{org_id}"),
                    metric: metric as i32,
                    delta,
                    reservation_id: String::new(),
                },
                &user.token,
            ))
            .await?
            .into_inner())
    }

    async fn subscription(
        &self,
        user: &User,
        org_id: &str,
    ) -> Result<pb::Subscription, tonic::Status> {
        Ok(self
            .subscriptions()
            .get_subscription(authed(
                pb::GetSubscriptionRequest {
                    name: format!("organizations/{org_id}/subscription"),
                },
                &user.token,
            ))
            .await?
            .into_inner()
            .subscription
            .unwrap())
    }

    /// The root's FREE subscription, once billing made it.
    async fn until_subscribed(&self, user: &User, org_id: &str) -> pb::Subscription {
        eventually("the FREE subscription", || async {
            self.subscription(user, org_id).await.ok()
        })
        .await
    }

    async fn create_account(
        &self,
        user: &User,
        workspace: &str,
        organization: Option<&str>,
    ) -> Result<pb::BillingAccount, tonic::Status> {
        Ok(self
            .accounts()
            .create_billing_account(authed(
                pb::CreateBillingAccountRequest {
                    parent: workspace.to_string(),
                    billing_account: Some(pb::BillingAccount {
                        display_name: "Acme billing".into(),
                        currency_code: "USD".into(),
                        billing_email: "billing@acme.example".into(),
                        organization: organization
                            .map(|o| format!("organizations/{o}"))
                            .unwrap_or_default(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &user.token,
            ))
            .await?
            .into_inner()
            .billing_account
            .unwrap())
    }

    /// Creates an account once billing knows the workspace (its creation
    /// travels as an event).
    async fn account(
        &self,
        user: &User,
        workspace: &str,
        organization: Option<&str>,
    ) -> pb::BillingAccount {
        eventually("the workspace reaching billing", || async {
            match self.create_account(user, workspace, organization).await {
                Ok(account) => Some(account),
                Err(status) if status.code() == Code::NotFound => None,
                Err(status) => panic!("{status:?}"),
            }
        })
        .await
    }

    async fn pay_with(&self, user: &User, org_id: &str, account: &pb::BillingAccount) {
        self.subscriptions()
            .update_subscription(authed(
                pb::UpdateSubscriptionRequest {
                    subscription: Some(pb::Subscription {
                        name: format!("organizations/{org_id}/subscription"),
                        billing_account: account.name.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["billing_account".into()],
                    }),
                },
                &user.token,
            ))
            .await
            .unwrap();
    }

    async fn change_plan(
        &self,
        user: &User,
        org_id: &str,
        plan: &str,
        extra_seats: Option<i64>,
    ) -> Result<pb::Subscription, tonic::Status> {
        Ok(self
            .subscriptions()
            .change_plan(authed(
                pb::ChangePlanRequest {
                    name: format!("organizations/{org_id}/subscription"),
                    plan: format!("plans/{plan}"),
                    extra_seats,
                    ..Default::default()
                },
                &user.token,
            ))
            .await?
            .into_inner()
            .subscription
            .unwrap())
    }

    async fn record(
        &self,
        user: &User,
        org_id: &str,
        metric: pb::Metric,
        quantity: i64,
        key: &str,
    ) -> Result<pb::RecordUsageResponse, tonic::Status> {
        Ok(self
            .usage_client()
            .record_usage(authed(
                pb::RecordUsageRequest {
                    organization: format!("organizations/{org_id}"),
                    metric: metric as i32,
                    quantity,
                    idempotency_key: key.into(),
                    usage_time: None,
                },
                &user.token,
            ))
            .await?
            .into_inner())
    }

    async fn webhook(
        &self,
        provider: &str,
        payload: &serde_json::Value,
        signed_at: i64,
        secret: &str,
    ) -> Result<pb::HandleProviderEventResponse, tonic::Status> {
        let payload = serde_json::to_vec(payload).unwrap();
        let signature = Stripe::sign(secret, signed_at, &payload);
        // Public: no token.
        Ok(Webhooks::new(self.channel.clone())
            .handle_provider_event(pb::HandleProviderEventRequest {
                provider: provider.into(),
                payload,
                signature,
            })
            .await?
            .into_inner())
    }

    async fn tap(&self) -> EventTap {
        self.sandbox.event_tap().await.unwrap()
    }
}

#[tokio::test]
async fn plans_come_from_the_catalog_and_platform_admins_add_custom_ones() {
    for storage in storages() {
        let w = World::start(storage).await;
        let mut tap = w.tap().await;
        let root = w.user("root@example.com").await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;

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
        assert!(get(&ada).await.is_ok());
        assert_status(get(&bob).await, Code::NotFound, "");
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
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn downgrades_keep_everything_but_block_creation_and_trials_end() {
    for storage in storages() {
        let w = World::start(storage).await;
        let mut tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        let free = w.until_subscribed(&ada, &acme).await;
        assert_eq!(free.plan, "plans/free");
        assert_eq!(free.state, pb::subscription::State::Active as i32);
        tap.expect_about("billing.subscription.created", &acme, EVENT_WAIT)
            .await
            .unwrap();

        // FREE allows three projects; the fourth is refused by the
        // organization service, which asks billing first.
        for n in 1..=3 {
            w.create_project(&ada, &acme, &format!("p{n}"))
                .await
                .unwrap();
            w.until_usage(&ada, &acme, pb::Metric::Projects, n).await;
        }
        let refused = assert_status(
            w.create_project(&ada, &acme, "p4").await,
            Code::ResourceExhausted,
            "QUOTA_EXCEEDED",
        );
        assert_eq!(metadata(&refused, "limit"), "3");

        // A paid plan needs an account; then the limit rises at once.
        let workspace = w.organization_workspace(&ada, &acme).await;
        let no_account = w.change_plan(&ada, &acme, "starter", None).await;
        assert_status(
            no_account,
            Code::FailedPrecondition,
            "BILLING_ACCOUNT_REQUIRED",
        );
        let account = w.account(&ada, &workspace, None).await;
        let second = w.create_account(&ada, &workspace, None).await;
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
        w.pay_with(&ada, &acme, &account).await;
        let starter = w.change_plan(&ada, &acme, "starter", None).await.unwrap();
        assert_eq!(starter.limits.unwrap().projects, Some(10));
        tap.expect_about("billing.subscription.changed", &acme, EVENT_WAIT)
            .await
            .unwrap();
        for n in 4..=5 {
            w.create_project(&ada, &acme, &format!("p{n}"))
                .await
                .unwrap();
            w.until_usage(&ada, &acme, pb::Metric::Projects, n).await;
        }

        // Back to FREE: nothing is deleted, creation stops, and it says so.
        let downgraded = w.change_plan(&ada, &acme, "free", None).await.unwrap();
        assert_eq!(
            downgraded.over_limit_metrics,
            vec![pb::Metric::Projects as i32]
        );
        let exceeded = tap
            .expect_about("billing.limit.exceeded", &acme, EVENT_WAIT)
            .await
            .unwrap();
        assert_eq!(exceeded.organization_id, acme);
        assert_status(
            w.create_project(&ada, &acme, "p6").await,
            Code::ResourceExhausted,
            "QUOTA_EXCEEDED",
        );
        assert_eq!(w.usage(&ada, &acme, pb::Metric::Projects).await, (5, 5));
        let check = w.check(&ada, &acme, pb::Metric::Projects, 0).await.unwrap();
        assert!(!check.allowed, "usage above the limit refuses even zero");
        assert_eq!(
            (check.limit, check.used, check.remaining),
            (Some(3), 5, Some(0))
        );

        // Members may not see or change billing.
        w.add_member(&ada, &acme, &bob, &["roles/member"]).await;
        eventually("bob's membership", || async {
            match w.subscription(&bob, &acme).await {
                Err(status) if status.code() == Code::PermissionDenied => Some(()),
                _ => None,
            }
        })
        .await;
        assert_status(
            w.change_plan(&bob, &acme, "starter", None).await,
            Code::PermissionDenied,
            "",
        );
        assert_eq!(
            w.subscription(&ada, &acme).await.unwrap().plan,
            "plans/free"
        );

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
        tap.expect_about("billing.subscription.canceled", &acme, EVENT_WAIT)
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
        w.create_project(&ada, &acme, "p6").await.unwrap();

        // A child organization does not subscribe.
        let child = w.organization(&ada, "Child", Some(&acme), None).await;
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
        w.sandbox.shutdown().await.unwrap();
    }
}

impl World {
    async fn organization_workspace(&self, owner: &User, org_id: &str) -> String {
        org::organization_service_client::OrganizationServiceClient::new(self.channel.clone())
            .get_organization(authed(
                org::GetOrganizationRequest {
                    name: format!("organizations/{org_id}"),
                },
                &owner.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap()
            .workspace
    }
}

#[tokio::test]
async fn a_free_organization_upgrades_in_one_call() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        w.until_subscribed(&ada, &acme).await;
        let workspace = w.organization_workspace(&ada, &acme).await;
        let mut tap = w.tap().await;
        let request = |account: Option<pb::BillingAccount>, existing: &str| pb::ChangePlanRequest {
            name: format!("organizations/{acme}/subscription"),
            plan: "plans/starter".into(),
            request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a52".into(),
            billing_account: existing.to_string(),
            new_billing_account: account,
            ..Default::default()
        };
        let new_account = pb::BillingAccount {
            display_name: "Acme billing".into(),
            currency_code: "USD".into(),
            billing_email: "billing@acme.example".into(),
            ..Default::default()
        };
        let accounts = || async {
            w.accounts()
                .list_billing_accounts(authed(
                    pb::ListBillingAccountsRequest {
                        parent: workspace.clone(),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .billing_accounts
        };

        // Custom roles are a paid feature: on FREE, CreateRole says so in
        // words and makes nothing; CheckFeature tells anyone who may read
        // the organization, a stranger nothing.
        let create_role = || async {
            rbac::role_service_client::RoleServiceClient::new(w.channel.clone())
                .create_role(authed(
                    rbac::CreateRoleRequest {
                        parent: format!("organizations/{acme}"),
                        role: Some(rbac::Role {
                            display_name: "Auditor".into(),
                            permissions: vec!["organization.read".into(), "audit.read".into()],
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                    &ada.token,
                ))
                .await
        };
        let feature = |token: &str, name: &str| {
            authed(
                pb::CheckFeatureRequest {
                    organization: format!("organizations/{acme}"),
                    feature: name.into(),
                },
                token,
            )
        };
        let free = assert_status(
            create_role().await,
            Code::FailedPrecondition,
            "FEATURE_NOT_INCLUDED",
        );
        assert!(
            free.message()
                .contains("Free plan does not include custom roles"),
            "{free:?}"
        );
        let roles = rbac::role_service_client::RoleServiceClient::new(w.channel.clone())
            .list_roles(authed(
                rbac::ListRolesRequest {
                    parent: format!("organizations/{acme}"),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .roles;
        assert!(roles.iter().all(|r| r.display_name != "Auditor"));
        let on_free = w
            .entitlements()
            .check_feature(feature(&ada.token, "custom_roles"))
            .await
            .unwrap()
            .into_inner();
        assert!(!on_free.included);
        assert_eq!(on_free.plan, "plans/free");
        let bad = w
            .entitlements()
            .check_feature(feature(&ada.token, "Custom Roles"))
            .await;
        assert_status(bad, Code::InvalidArgument, "INVALID_ARGUMENT");
        let stranger = w.user("mallory@example.com").await;
        let hidden = w
            .entitlements()
            .check_feature(feature(&stranger.token, "custom_roles"))
            .await;
        assert_status(hidden, Code::NotFound, "NOT_FOUND");

        // Both ways of naming the payer at once: refused, nothing made.
        let both = w
            .subscriptions()
            .change_plan(authed(
                request(
                    Some(new_account.clone()),
                    &format!("{workspace}/billingAccounts/x"),
                ),
                &ada.token,
            ))
            .await;
        assert_status(both, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert!(accounts().await.is_empty());

        // One call: the account is made in the workspace and pays.
        let upgraded = w
            .subscriptions()
            .change_plan(authed(request(Some(new_account.clone()), ""), &ada.token))
            .await
            .unwrap()
            .into_inner()
            .subscription
            .unwrap();
        assert_eq!(upgraded.plan, "plans/starter");
        let made = accounts().await;
        assert_eq!(made.len(), 1);
        assert_eq!(upgraded.billing_account, made[0].name);
        // A retry of the same call makes no second account and no change.
        let again = w
            .subscriptions()
            .change_plan(authed(request(Some(new_account), ""), &ada.token))
            .await
            .unwrap()
            .into_inner()
            .subscription
            .unwrap();
        assert_eq!(again.etag, upgraded.etag);
        assert_eq!(accounts().await.len(), 1);
        // On STARTER, custom roles are there at once.
        let on_starter = w
            .entitlements()
            .check_feature(feature(&ada.token, "custom_roles"))
            .await
            .unwrap()
            .into_inner();
        assert!(on_starter.included);
        assert_eq!(on_starter.plan, "plans/starter");
        create_role().await.unwrap();

        // Both are in the organization's log, each naming what it is about.
        let wait = Duration::from_secs(15);
        let created = tap.expect("billing.account.created", wait).await.unwrap();
        assert_eq!(created.organization_id, acme);
        assert_eq!(created.targets[0].r#type, "billing_account");
        let changed = tap
            .expect("billing.subscription.changed", wait)
            .await
            .unwrap();
        assert_eq!(changed.organization_id, acme);
        assert_eq!(
            (
                changed.targets[0].r#type.as_str(),
                changed.targets[0].id.as_str()
            ),
            ("subscription", acme.as_str())
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Altostrat's tree (organizations, teams and workspaces): a limit set on
/// an organization binds its whole subtree, the most restrictive wins, and
/// usage rolls up to the root.
#[tokio::test]
async fn altostrat_limits_bind_down_its_tree_and_usage_rolls_up() {
    for storage in storages() {
        let w = World::start(storage).await;
        let mut tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let root = w.organization(&ada, "Root", None, None).await;
        let child = w.organization(&ada, "Child", Some(&root), None).await;
        let grandchild = w.organization(&ada, "Grandchild", Some(&child), None).await;
        let bobs = w.organization(&bob, "Bob's", None, None).await;
        w.until_usage(&ada, &root, pb::Metric::SubOrganizations, 2)
            .await;
        assert_eq!(
            w.usage(&ada, &child, pb::Metric::SubOrganizations).await,
            (1, 1)
        );

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
        tap.expect_about("billing.limit.set", &child, EVENT_WAIT)
            .await
            .unwrap();
        w.create_team(&ada, &grandchild, "Core").await;
        w.until_usage(&ada, &root, pb::Metric::Teams, 1).await;
        assert_eq!(w.usage(&ada, &grandchild, pb::Metric::Teams).await, (1, 1));
        assert_eq!(w.usage(&ada, &child, pb::Metric::Teams).await, (0, 1));
        let denied = w
            .check(&ada, &grandchild, pb::Metric::Teams, 1)
            .await
            .unwrap();
        assert!(!denied.allowed);
        assert_eq!(
            denied.reason,
            pb::check_quota_response::Reason::LimitExceeded as i32
        );
        assert_eq!(denied.source, pb::LimitSource::Ancestor as i32);
        assert_eq!(denied.source_organization, format!("organizations/{child}"));

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
            .effective(&ada, &grandchild, pb::Metric::Teams)
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
        tap.expect_about("billing.limit.cleared", &child, EVENT_WAIT)
            .await
            .unwrap();
        assert!(
            w.check(&ada, &grandchild, pb::Metric::Teams, 1)
                .await
                .unwrap()
                .allowed
        );

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
        let bobs_limits = w.effective(&bob, &bobs, pb::Metric::Teams).await.unwrap();
        assert_eq!(
            bobs_limits.candidates.len(),
            1,
            "only the plan: ada's limit was not written"
        );
        assert_status(
            w.check(&ada, &bobs, pb::Metric::Teams, 1).await,
            Code::NotFound,
            "",
        );
        assert_status(
            w.check(&ada, &child, pb::Metric::Teams, -1).await,
            Code::InvalidArgument,
            "",
        );

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
        w.until_usage(&ada, &root, pb::Metric::Teams, 0).await;
        w.until_usage(&ada, &root, pb::Metric::SubOrganizations, 1)
            .await;
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn metering_counts_once_per_key_and_seats_follow_memberships() {
    for storage in storages() {
        let w = World::start(storage).await;
        let mut tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let root = w.organization(&ada, "Root", None, None).await;
        let child = w.organization(&ada, "Child", Some(&root), None).await;

        let first = w
            .record(&ada, &child, pb::Metric::Deployments, 5, "deploy-1")
            .await
            .unwrap();
        assert!(!first.replayed);
        tap.expect_about("billing.usage.recorded", &child, EVENT_WAIT)
            .await
            .unwrap();
        let replay = w
            .record(&ada, &child, pb::Metric::Deployments, 5, "deploy-1")
            .await
            .unwrap();
        assert!(replay.replayed);
        assert_eq!(replay.usage_record, first.usage_record);
        let reused = assert_status(
            w.record(&ada, &child, pb::Metric::Deployments, 7, "deploy-1")
                .await,
            Code::AlreadyExists,
            "IDEMPOTENCY_KEY_REUSED",
        );
        assert_eq!(metadata(&reused, "quantity"), "5");
        assert_eq!(
            metadata(&reused, "usage_record"),
            first.usage_record.unwrap().name
        );
        w.record(&ada, &root, pb::Metric::Deployments, 2, "deploy-2")
            .await
            .unwrap();
        assert_eq!(w.usage(&ada, &child, pb::Metric::Deployments).await, (5, 5));
        assert_eq!(w.usage(&ada, &root, pb::Metric::Deployments).await, (2, 7));

        // Bad input: each refused, none counted.
        for quantity in [0, -1, 1_000_000_001, i64::MAX, i64::MIN] {
            assert_status(
                w.record(&ada, &child, pb::Metric::Deployments, quantity, "bad")
                    .await,
                Code::InvalidArgument,
                "",
            );
        }
        assert_status(
            w.record(&ada, &child, pb::Metric::Projects, 1, "bad").await,
            Code::InvalidArgument,
            "METRIC_NOT_METERED",
        );
        assert_status(
            w.record(&ada, &child, pb::Metric::Unspecified, 1, "bad")
                .await,
            Code::InvalidArgument,
            "UNKNOWN_METRIC",
        );
        assert_status(
            w.record(&ada, &child, pb::Metric::Deployments, 1, "").await,
            Code::InvalidArgument,
            "",
        );
        let future = w
            .usage_client()
            .record_usage(authed(
                pb::RecordUsageRequest {
                    organization: format!("organizations/{child}"),
                    metric: pb::Metric::Deployments as i32,
                    quantity: 1,
                    idempotency_key: "future".into(),
                    usage_time: Some(prost_types::Timestamp {
                        seconds: now_secs() + 3600,
                        nanos: 0,
                    }),
                },
                &ada.token,
            ))
            .await;
        assert_status(future, Code::InvalidArgument, "");
        assert_status(
            w.record(&bob, &child, pb::Metric::Deployments, 1, "bobs")
                .await,
            Code::NotFound,
            "",
        );
        assert_eq!(w.usage(&ada, &root, pb::Metric::Deployments).await, (2, 7));
        let records = w
            .usage_client()
            .list_usage_records(authed(
                pb::ListUsageRecordsRequest {
                    parent: format!("organizations/{child}"),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .usage_records;
        assert_eq!(records.len(), 1);

        // Seats: members plus pending invitations, from rbac's events.
        w.until_usage(&ada, &root, pb::Metric::Members, 2).await; // ada in Root and in Child
        w.add_member(&ada, &root, &bob, &["roles/member"]).await;
        w.until_usage(&ada, &root, pb::Metric::Members, 3).await;
        let invitation =
            rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
                .create_invitation(authed(
                    rbac::CreateInvitationRequest {
                        parent: format!("organizations/{root}"),
                        invitation: Some(rbac::Invitation {
                            email: "carol@example.com".into(),
                            roles: vec!["roles/member".into()],
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .invitation
                .unwrap();
        // The pending seat counts from the moment the invitation exists
        // (reserved by its create, then counted from rbac's event), in the
        // organization's own usage as in its subtree's.
        assert_eq!(
            w.usage(&ada, &root, pb::Metric::Members).await,
            (3, 4),
            "own: two members and one pending"
        );
        rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
            .revoke_invitation(authed(
                rbac::RevokeInvitationRequest {
                    name: invitation.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
        w.until_usage(&ada, &root, pb::Metric::Members, 3).await;
        // FREE has five seats: two more members fill them, the next is refused.
        let mut erin = None;
        for email in ["dave@example.com", "erin@example.com"] {
            let user = w.user(email).await;
            w.add_member(&ada, &root, &user, &["roles/member"]).await;
            erin = Some(user);
        }
        w.until_usage(&ada, &root, pb::Metric::Members, 5).await;
        let refused =
            rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
                .create_invitation(authed(
                    rbac::CreateInvitationRequest {
                        parent: format!("organizations/{root}"),
                        invitation: Some(rbac::Invitation {
                            email: "frank@example.com".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await;
        let refused = assert_status(refused, Code::ResourceExhausted, "QUOTA_EXCEEDED");
        assert_eq!(metadata(&refused, "metric"), "METRIC_MEMBERS");
        assert_eq!(w.usage(&ada, &root, pb::Metric::Members).await.1, 5);

        // An external user takes no seat: invited to one project while every
        // seat is taken, they accept, and the count stays where it was.
        let site = w.create_project(&ada, &root, "Site").await.unwrap();
        let guest = w.user("guest@example.com").await;
        let accepted = tenantry_tests::people::accept(
            &w.sandbox,
            &w.channel,
            &ada.token,
            &root,
            &guest.token,
            rbac::Invitation {
                external: true,
                projects: vec![rbac::InvitationProject {
                    project: format!("organizations/{root}/projects/{site}"),
                    access_level: authz::ProjectAccessLevel::Viewer as i32,
                }],
                ..Default::default()
            },
        )
        .await;
        assert!(accepted.membership.is_none());
        assert_eq!(w.usage(&ada, &root, pb::Metric::Members).await, (4, 5));
        // Billing counts from rbac's events in order: once a later removal
        // is counted, the acceptance before it has been counted too.
        let erin_id =
            identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone())
                .me(authed(identity_pb::MeRequest {}, &erin.unwrap().token))
                .await
                .unwrap()
                .into_inner()
                .user
                .unwrap()
                .name;
        rbac::membership_service_client::MembershipServiceClient::new(w.channel.clone())
            .delete_membership(authed(
                rbac::DeleteMembershipRequest {
                    name: format!("organizations/{root}/memberships/{}", id(&erin_id)),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
        w.until_usage(&ada, &root, pb::Metric::Members, 4).await;
        assert_eq!(w.usage(&ada, &root, pb::Metric::Members).await, (3, 4));
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Altostrat's billing modes: SINGLE, ASSIGNED and POOLED workspaces decide
/// who pays for which organization, and pooled plans add up.
#[tokio::test]
async fn altostrat_billing_modes_decide_accounts_and_pools_add_up() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;

        // ASSIGNED: one account per top-level organization, named by it.
        let assigned = w.workspace(&ada, org::BillingMode::Assigned).await;
        let a1 = w.organization(&ada, "A1", None, Some(&assigned)).await;
        let a2 = w.organization(&ada, "A2", None, Some(&assigned)).await;
        eventually("the ASSIGNED workspace reaching billing", || async {
            match w.create_account(&ada, &assigned, None).await {
                Err(status) if status.code() == Code::InvalidArgument => Some(()),
                _ => None,
            }
        })
        .await;
        let x1 = w.account(&ada, &assigned, Some(&a1)).await;
        assert_eq!(x1.billing_mode, pb::BillingMode::Assigned as i32);
        assert_status(
            w.create_account(&ada, &assigned, Some(&a1)).await,
            Code::FailedPrecondition,
            "ORGANIZATION_HAS_ACCOUNT",
        );
        w.account(&ada, &assigned, Some(&a2)).await;
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

        // POOLED: every contributor's subscriptions add up to one pool.
        let pooled = w.workspace(&ada, org::BillingMode::Pooled).await;
        let p1 = w.organization(&ada, "P1", None, Some(&pooled)).await;
        let p2 = w.organization(&ada, "P2", None, Some(&pooled)).await;
        let y1 = w.account(&ada, &pooled, None).await;
        let y2 = w.account(&ada, &pooled, None).await;
        w.until_subscribed(&ada, &p1).await;
        w.until_subscribed(&ada, &p2).await;
        w.pay_with(&ada, &p1, &y1).await;
        w.change_plan(&ada, &p1, "starter", None).await.unwrap();
        w.pay_with(&ada, &p2, &y2).await;
        w.change_plan(&ada, &p2, "professional", None)
            .await
            .unwrap();
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
        let check = w.check(&ada, &p1, pb::Metric::Projects, 1).await.unwrap();
        assert_eq!(
            (check.limit, check.source),
            (Some(110), pb::LimitSource::Plan as i32)
        );
        let single_only = w.create_account(&ada, &pooled, Some(&p1)).await;
        assert_status(single_only, Code::InvalidArgument, "");

        // The mode never changes.
        let immutable =
            org::workspace_service_client::WorkspaceServiceClient::new(w.channel.clone())
                .update_workspace(authed(
                    org::UpdateWorkspaceRequest {
                        workspace: Some(org::Workspace {
                            name: pooled.clone(),
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
            w.create_account(&ada, &pooled, None)
                .await
                .unwrap()
                .billing_mode,
            pb::BillingMode::Pooled as i32
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn webhooks_are_verified_applied_once_and_past_due_blocks_creation() {
    for storage in storages() {
        let w = World::start(storage).await;
        let mut tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        w.until_subscribed(&ada, &acme).await;
        let workspace = w.organization_workspace(&ada, &acme).await;
        let account = w.account(&ada, &workspace, None).await;
        w.pay_with(&ada, &acme, &account).await;
        w.change_plan(&ada, &acme, "professional", Some(2))
            .await
            .unwrap();

        let linked = serde_json::json!({
            "id": "evt_link", "type": "customer.subscription.created",
            "data": {"object": {"id": "sub_1", "customer": "cus_1", "status": "active",
                "metadata": {"tenantry_organization_id": acme, "tenantry_billing_account_id": id(&account.name)}}}
        });
        let outcome = w
            .webhook("stripe", &linked, now_secs(), SECRET)
            .await
            .unwrap();
        assert_eq!(
            outcome.outcome,
            pb::handle_provider_event_response::Outcome::Processed as i32
        );
        let linked_account = w
            .accounts()
            .get_billing_account(authed(
                pb::GetBillingAccountRequest {
                    name: account.name.clone(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .billing_account
            .unwrap();
        assert_eq!(
            (
                linked_account.provider.as_str(),
                linked_account.provider_customer_id.as_str()
            ),
            ("stripe", "cus_1")
        );

        // Forged, stale and unknown: refused, nothing applied.
        let failed = serde_json::json!({
            "id": "evt_fail", "type": "invoice.payment_failed",
            "data": {"object": {"id": "in_1", "customer": "cus_1", "amount_due": 11500, "currency": "usd"}}
        });
        assert_status(
            w.webhook("stripe", &failed, now_secs(), "whsec_forged_secret_000")
                .await,
            Code::Unauthenticated,
            "BAD_SIGNATURE",
        );
        assert_status(
            w.webhook("stripe", &failed, now_secs() - 3600, SECRET)
                .await,
            Code::Unauthenticated,
            "TIMESTAMP_OUT_OF_TOLERANCE",
        );
        assert_status(
            w.webhook("paypal", &failed, now_secs(), SECRET).await,
            Code::NotFound,
            "",
        );
        assert_eq!(
            w.subscription(&ada, &acme).await.unwrap().state,
            pb::subscription::State::Active as i32
        );

        // A failed payment: past due, creation refused, nothing deleted.
        let outcome = w
            .webhook("stripe", &failed, now_secs(), SECRET)
            .await
            .unwrap();
        assert_eq!(
            outcome.outcome,
            pb::handle_provider_event_response::Outcome::Processed as i32
        );
        tap.expect("billing.invoice.payment_failed", EVENT_WAIT)
            .await
            .unwrap();
        assert_eq!(
            w.subscription(&ada, &acme).await.unwrap().state,
            pb::subscription::State::PastDue as i32
        );
        assert_status(
            w.create_project(&ada, &acme, "blocked").await,
            Code::FailedPrecondition,
            "SUBSCRIPTION_PAST_DUE",
        );
        let check = w.check(&ada, &acme, pb::Metric::Projects, 1).await.unwrap();
        assert_eq!(
            check.reason,
            pb::check_quota_response::Reason::SubscriptionPastDue as i32
        );

        // The same event again changes nothing; a payment restores creation.
        let paid = serde_json::json!({
            "id": "evt_paid", "type": "invoice.paid",
            "data": {"object": {"id": "in_1", "customer": "cus_1", "amount_paid": 11500, "currency": "usd"}}
        });
        w.webhook("stripe", &paid, now_secs(), SECRET)
            .await
            .unwrap();
        assert_eq!(
            w.subscription(&ada, &acme).await.unwrap().state,
            pb::subscription::State::Active as i32
        );
        let duplicate = w
            .webhook("stripe", &failed, now_secs(), SECRET)
            .await
            .unwrap();
        assert_eq!(
            duplicate.outcome,
            pb::handle_provider_event_response::Outcome::Duplicate as i32
        );
        assert_eq!(
            w.subscription(&ada, &acme).await.unwrap().state,
            pb::subscription::State::Active as i32
        );
        w.create_project(&ada, &acme, "unblocked").await.unwrap();
        let other = serde_json::json!({"id": "evt_other", "type": "charge.refunded", "data": {"object": {}}});
        let ignored = w
            .webhook("stripe", &other, now_secs(), SECRET)
            .await
            .unwrap();
        assert_eq!(
            ignored.outcome,
            pb::handle_provider_event_response::Outcome::Ignored as i32
        );

        // The invoice preview: plan, bought seats and metered usage above
        // what the plan includes, in cents.
        w.record(&ada, &acme, pb::Metric::Deployments, 6_000, "big-deploy")
            .await
            .unwrap();
        let preview = Invoices::new(w.channel.clone())
            .preview_invoice(authed(
                pb::PreviewInvoiceRequest {
                    billing_account: account.name.clone(),
                    period_time: None,
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice_preview
            .unwrap();
        let amounts: Vec<(i32, i64, i64)> = preview
            .lines
            .iter()
            .map(|l| (l.kind, l.billable_quantity, l.amount_minor_units))
            .collect();
        assert_eq!(
            amounts,
            [
                (pb::invoice_line::Kind::Plan as i32, 1, 9_900),
                (pb::invoice_line::Kind::Seats as i32, 2, 2_400),
                (pb::invoice_line::Kind::MeteredUsage as i32, 1_000, 1_000),
            ]
        );
        assert_eq!(preview.total_minor_units, 13_300);
        assert_eq!(preview.currency_code, "USD");

        // The deleted subscription at the provider ends it here.
        let deleted = serde_json::json!({
            "id": "evt_del", "type": "customer.subscription.deleted",
            "data": {"object": {"id": "sub_1", "customer": "cus_1", "status": "canceled", "metadata": {}}}
        });
        w.webhook("stripe", &deleted, now_secs(), SECRET)
            .await
            .unwrap();
        assert_eq!(
            w.subscription(&ada, &acme).await.unwrap().state,
            pb::subscription::State::Canceled as i32
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn enterprise_overrides_are_negotiated_by_platform_admins_and_finance_manages_billing() {
    for storage in storages() {
        let w = World::start(storage).await;
        let mut tap = w.tap().await;
        let root = w.user("root@example.com").await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let fin = w.user("fin@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        w.until_subscribed(&ada, &acme).await;
        let workspace = w.organization_workspace(&ada, &acme).await;
        let account = w.account(&ada, &workspace, None).await;

        // Finance manages billing; an admin does not even see it.
        w.add_member(&ada, &acme, &fin, &["roles/finance"]).await;
        w.add_member(&ada, &acme, &bob, &["roles/admin"]).await;
        eventually("fin's membership", || async {
            w.subscription(&fin, &acme).await.ok()
        })
        .await;
        eventually("bob's membership", || async {
            match w.subscription(&bob, &acme).await {
                Err(status) if status.code() == Code::PermissionDenied => Some(()),
                _ => None,
            }
        })
        .await;
        w.pay_with(&fin, &acme, &account).await;
        let enterprise = w
            .change_plan(&fin, &acme, "enterprise", None)
            .await
            .unwrap();
        assert_eq!(
            enterprise.limits.unwrap().projects,
            None,
            "enterprise is unlimited"
        );

        let overrides = |user: &User, projects: i64| {
            let request = authed(
                pb::UpdateSubscriptionRequest {
                    subscription: Some(pb::Subscription {
                        name: format!("organizations/{acme}/subscription"),
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
            let mut client = w.subscriptions();
            async move { client.update_subscription(request).await }
        };
        // The customer cannot negotiate with itself.
        assert_status(overrides(&fin, 500).await, Code::PermissionDenied, "");
        assert_status(overrides(&bob, 500).await, Code::PermissionDenied, "");
        let negotiated = eventually("billing learning the platform admin", || async {
            overrides(&root, 2).await.ok()
        })
        .await
        .into_inner()
        .subscription
        .unwrap();
        assert_eq!(negotiated.limits.unwrap().projects, Some(2));
        assert_eq!(negotiated.features.get("sso"), Some(&false));
        assert_eq!(negotiated.features.get("scim"), Some(&true));
        tap.expect_about("billing.subscription.changed", &acme, EVENT_WAIT)
            .await
            .unwrap();
        let check = w.check(&ada, &acme, pb::Metric::Projects, 1).await.unwrap();
        assert_eq!(
            (check.limit, check.source),
            (Some(2), pb::LimitSource::SubscriptionOverride as i32)
        );

        // Overrides belong to ENTERPRISE and custom plans only.
        w.change_plan(&fin, &acme, "starter", None).await.unwrap();
        assert_status(
            overrides(&root, 2).await,
            Code::FailedPrecondition,
            "OVERRIDES_NOT_ALLOWED",
        );
        let starter = w.subscription(&ada, &acme).await.unwrap();
        assert_eq!(
            starter.limits.unwrap().projects,
            Some(10),
            "a plan change drops the old plan's overrides"
        );
        w.sandbox.shutdown().await.unwrap();
    }
}
