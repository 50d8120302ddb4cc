//! The billing service end to end, with the real identity, organization and
//! rbac services: plans, subscriptions and downgrades, billing modes and
//! pools, limits down the tree and usage rolling up, metering, quotas in
//! front of real creates, provider webhooks and invoice previews. Every
//! call is gRPC; every test runs on SQLite and Postgres.
//!
//! By concern: the plan catalog and overrides, subscriptions, Altostrat's
//! tree, metering, and the provider's webhooks.

mod altostrat;
mod metering;
mod plans;
mod runbook;
mod subscriptions;
mod webhooks;

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

use tenantry_testkit::clients::{
    Accounts, Entitlements, Invoices, Plans, Subscriptions, Usage, Webhooks,
};
use tenantry_testkit::people::{self, User};

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
        people::sign_up(&self.channel, email, email).await.0
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

    /// Asserts that billing counts `subtree` of `metric` at the
    /// organization: usage follows the writes that change it, at once.
    async fn assert_usage(&self, user: &User, org_id: &str, metric: pb::Metric, subtree: i64) {
        let usage = self.usage(user, org_id, metric).await.1;
        assert_eq!(usage, subtree, "{} usage", metric.as_str_name());
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

    /// The root's FREE subscription, there from the root's creation on.
    async fn subscribed(&self, user: &User, org_id: &str) -> pb::Subscription {
        self.subscription(user, org_id)
            .await
            .expect("the FREE subscription")
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

    /// Creates an account; billing knows the workspace from its creation
    /// on.
    async fn account(
        &self,
        user: &User,
        workspace: &str,
        organization: Option<&str>,
    ) -> pb::BillingAccount {
        self.create_account(user, workspace, organization)
            .await
            .expect("the billing account")
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
