//! The billing service: plans, subscriptions, billing accounts, limits down the organization tree, usage metering and quotas, payment-provider webhooks.
//!
//! The contract is served in full; its RPCs answer UNIMPLEMENTED until the
//! service's own issue (#6) lands. The crate already has the shape every
//! service keeps: [`Options`] → [`build`] → [`Service::register`], an outbox
//! whose relay runs from the start, and its own migrations.

use serde::{Deserialize, Serialize};
use tenantry_kit::configure_server;
use tenantry_kit::db::Migration;
use tenantry_kit::outbox::Outbox;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::billing::v1 as billing_pb;

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "billing";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = &[];

/// Options of the billing service (the `[billing]` table of the config file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {}

/// The running billing service.
#[derive(Debug, Clone)]
pub struct Service {
    outbox: Outbox,
}

/// Builds the service and starts its background work (the outbox relay).
pub async fn build(ctx: &ServiceContext, _options: &Options) -> anyhow::Result<Service> {
    let outbox = Outbox::new(NAME);
    ctx.spawn_relay(&outbox);
    Ok(Service { outbox })
}

impl Service {
    /// Mounts the service's gRPC servers.
    pub fn register(&self, routes: &mut GrpcRoutes) {
        routes.add(configure_server!(
            billing_pb::plan_service_server::PlanServiceServer::new(PlanApi)
        ));
        routes.add(configure_server!(
            billing_pb::billing_account_service_server::BillingAccountServiceServer::new(
                BillingAccountApi
            )
        ));
        routes.add(configure_server!(
            billing_pb::subscription_service_server::SubscriptionServiceServer::new(
                SubscriptionApi
            )
        ));
        routes.add(configure_server!(
            billing_pb::entitlement_service_server::EntitlementServiceServer::new(EntitlementApi)
        ));
        routes.add(configure_server!(
            billing_pb::usage_service_server::UsageServiceServer::new(UsageApi)
        ));
        routes.add(configure_server!(
            billing_pb::invoice_service_server::InvoiceServiceServer::new(InvoiceApi)
        ));
        routes.add(configure_server!(
            billing_pb::provider_webhook_service_server::ProviderWebhookServiceServer::new(
                ProviderWebhookApi
            )
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// The `PlanService` handler.
#[derive(Debug, Clone)]
struct PlanApi;

#[tonic::async_trait]
impl billing_pb::plan_service_server::PlanService for PlanApi {}

/// The `BillingAccountService` handler.
#[derive(Debug, Clone)]
struct BillingAccountApi;

#[tonic::async_trait]
impl billing_pb::billing_account_service_server::BillingAccountService for BillingAccountApi {}

/// The `SubscriptionService` handler.
#[derive(Debug, Clone)]
struct SubscriptionApi;

#[tonic::async_trait]
impl billing_pb::subscription_service_server::SubscriptionService for SubscriptionApi {}

/// The `EntitlementService` handler.
#[derive(Debug, Clone)]
struct EntitlementApi;

#[tonic::async_trait]
impl billing_pb::entitlement_service_server::EntitlementService for EntitlementApi {}

/// The `UsageService` handler.
#[derive(Debug, Clone)]
struct UsageApi;

#[tonic::async_trait]
impl billing_pb::usage_service_server::UsageService for UsageApi {}

/// The `InvoiceService` handler.
#[derive(Debug, Clone)]
struct InvoiceApi;

#[tonic::async_trait]
impl billing_pb::invoice_service_server::InvoiceService for InvoiceApi {}

/// The `ProviderWebhookService` handler.
#[derive(Debug, Clone)]
struct ProviderWebhookApi;

#[tonic::async_trait]
impl billing_pb::provider_webhook_service_server::ProviderWebhookService for ProviderWebhookApi {}
