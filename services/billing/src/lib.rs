//! The billing service: the plan catalog, subscriptions, billing accounts
//! and modes, limits down the organization tree, usage metering with
//! roll-up, quota checks, payment-provider webhooks and invoice previews.
//!
//! - [`catalog`]: built-in plans (and the catalog file), the plan shape;
//!   [`plans`]: the PlanService (custom plans).
//! - [`accounts`]: billing accounts and pool contributions;
//!   [`subscriptions`]: a root organization's plan, trial and state.
//! - [`ledger`]: the usage counters and how a change rolls up the tree;
//!   [`directory`]: what the counters learn from other services' events.
//! - [`entitlements`]: effective limits and `CheckQuota`; [`usage`]:
//!   metering (`RecordUsage`) and reports.
//! - [`provider`] and [`webhooks`]: signed provider events;
//!   [`invoices`]: what an account would be charged.
//! - [`access`]: who may do what (asked of rbac) and organizations billing
//!   has not heard of yet (asked of the organization service).
//!
//! Every change writes its domain event (`billing.*`) to the outbox in the
//! same transaction.

pub mod access;
pub mod accounts;
pub mod catalog;
mod convert;
pub mod directory;
pub mod entitlements;
mod error;
pub mod feed;
pub mod invoices;
pub mod ledger;
pub mod metric;
pub mod plans;
pub mod provider;
pub mod schema;
pub mod store;
pub mod subscriptions;
pub mod sweeper;
pub mod usage;
pub mod webhooks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tenantry_kit::access::{Caller, Checker};
use tenantry_kit::cache::Cache;
use tenantry_kit::configure_server;
use tenantry_kit::db::Migration;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::outbox::{NewEvent, Outbox};
use tenantry_kit::page_token::PageTokens;
use tenantry_kit::peer::{Peer, PeerChannel};
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::events::v1 as events;

use crate::catalog::Plan;
use crate::provider::PaymentProvider;
use crate::store::{NodeRow, Store};

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "billing";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = schema::MIGRATIONS;

/// The methods that take no access token: provider webhooks, which are
/// authenticated by their signature.
pub const PUBLIC_METHODS: &[&str] =
    &["/tenantry.billing.v1.ProviderWebhookService/HandleProviderEvent"];

/// Options of the billing service (the `[billing]` table of the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// A TOML file whose `[plans.<id>]` tables replace the built-in plans
    /// (`free`, `starter`, `professional`, `enterprise`). Default: none,
    /// the defaults in services/billing/README.md.
    pub catalog_file: Option<PathBuf>,
    /// Payment providers whose webhooks are accepted, by id (the `provider`
    /// of `HandleProviderEvent`). Default: none.
    pub providers: BTreeMap<String, ProviderOptions>,
    /// How often trials that ended and cancellations that came due are
    /// written back (with their events), in seconds. Reads apply them at
    /// once either way. Default: 60.
    pub sweep_interval_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            catalog_file: None,
            providers: BTreeMap::new(),
            sweep_interval_secs: 60,
        }
    }
}

/// One payment provider's settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderOptions {
    /// The webhook format: `stripe` (Stripe and compatible providers).
    pub kind: String,
    /// The endpoint's signing secret (`whsec_…`).
    pub webhook_secret: String,
    /// How old (or how far in the future) a signed timestamp may be, in
    /// seconds. Default: 300.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    300
}

impl std::fmt::Debug for ProviderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderOptions")
            .field("kind", &self.kind)
            .field("webhook_secret", &"<redacted>")
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl Options {
    /// Checks the values, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.sweep_interval_secs >= 1,
            "invalid configuration: `billing.sweep_interval_secs` must be at least 1"
        );
        for (id, provider) in &self.providers {
            anyhow::ensure!(
                provider.kind == "stripe",
                "invalid configuration: `billing.providers.{id}.kind` must be `stripe`"
            );
            anyhow::ensure!(
                provider.webhook_secret.len() >= 16,
                "invalid configuration: `billing.providers.{id}.webhook_secret` must be at least 16 characters"
            );
            anyhow::ensure!(
                (1..=3600).contains(&provider.tolerance_secs),
                "invalid configuration: `billing.providers.{id}.tolerance_secs` must be from 1 to 3600"
            );
        }
        catalog::built_in(self.catalog_file.as_deref())?;
        Ok(())
    }
}

/// Most workspace modes kept in memory, and for how long: a mode never
/// changes, the bound is for memory.
const MODE_CAPACITY: u64 = 100_000;
const MODE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// What every handler of the service shares.
#[derive(Clone)]
pub struct Core {
    store: Store,
    checker: Checker,
    organization: PeerChannel,
    outbox: Outbox,
    page_tokens: PageTokens,
    catalog: Arc<Vec<Plan>>,
    providers: Arc<BTreeMap<String, Arc<dyn PaymentProvider>>>,
    /// Workspaces' billing modes, which never change once known.
    modes: Arc<Cache<String, String>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The running billing service.
#[derive(Debug, Clone)]
pub struct Service {
    core: Core,
}

/// Builds the service and starts its background work: the outbox relay,
/// the event consumer and the sweeper.
pub async fn build(ctx: &ServiceContext, options: &Options) -> anyhow::Result<Service> {
    options.validate()?;
    let outbox = ctx.outbox(NAME)?;
    let providers = options
        .providers
        .iter()
        .map(|(id, p)| {
            let provider: Arc<dyn PaymentProvider> = Arc::new(provider::Stripe::new(
                id,
                &p.webhook_secret,
                std::time::Duration::from_secs(p.tolerance_secs),
            ));
            (id.clone(), provider)
        })
        .collect();
    let core = Core {
        store: Store::new(ctx.db.clone()),
        checker: Checker::new(ctx.channel(Peer::Rbac)?, NAME),
        organization: ctx.channel(Peer::Organization)?,
        outbox,
        page_tokens: ctx.page_tokens.clone(),
        catalog: Arc::new(catalog::built_in(options.catalog_file.as_deref())?),
        providers: Arc::new(providers),
        modes: Arc::new(Cache::new("billing_workspace_modes", MODE_CAPACITY)),
    };
    directory::spawn(ctx, core.clone());
    sweeper::spawn(
        ctx,
        core.clone(),
        std::time::Duration::from_secs(options.sweep_interval_secs),
    );
    Ok(Service { core })
}

impl Service {
    /// Mounts the service's gRPC servers.
    pub fn register(&self, routes: &mut GrpcRoutes) {
        let core = self.core.clone();
        routes.add(configure_server!(
            billing_pb::plan_service_server::PlanServiceServer::new(plans::PlanApi(core.clone()))
        ));
        routes.add(configure_server!(
            billing_pb::billing_account_service_server::BillingAccountServiceServer::new(
                accounts::BillingAccountApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            billing_pb::subscription_service_server::SubscriptionServiceServer::new(
                subscriptions::SubscriptionApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            billing_pb::entitlement_service_server::EntitlementServiceServer::new(
                entitlements::EntitlementApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            billing_pb::usage_service_server::UsageServiceServer::new(usage::UsageApi(
                core.clone()
            ))
        ));
        routes.add(configure_server!(
            billing_pb::invoice_service_server::InvoiceServiceServer::new(invoices::InvoiceApi(
                core.clone()
            ))
        ));
        routes.add(configure_server!(
            billing_pb::billing_feed_service_server::BillingFeedServiceServer::new(
                feed::BillingFeedApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            billing_pb::provider_webhook_service_server::ProviderWebhookServiceServer::new(
                webhooks::ProviderWebhookApi(core)
            )
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.core.outbox
    }
}

impl Core {
    /// A plan by id: built-in from the catalog, custom from the database.
    pub(crate) async fn plan(&self, id: &str) -> Result<Option<Plan>> {
        if let Some(plan) = self.catalog.iter().find(|p| p.id == id) {
            return Ok(Some(plan.clone()));
        }
        if uuid::Uuid::try_parse(id).is_err() {
            return Ok(None);
        }
        store::custom_plan(self.store.pool(), id).await
    }

    /// A workspace's billing mode (`single` while billing has not heard of
    /// the workspace yet). Modes never change, so a known one is kept in
    /// memory.
    pub(crate) async fn workspace_mode(&self, workspace_id: &str) -> Result<String> {
        if let Some(mode) = self.modes.get(workspace_id) {
            return Ok(mode);
        }
        match store::workspace_mode(self.store.pool(), workspace_id).await? {
            Some(mode) => {
                self.modes
                    .insert(workspace_id.to_string(), mode.clone(), MODE_TTL);
                Ok(mode)
            }
            None => Ok("single".into()),
        }
    }

    /// The FREE plan, which organizations fall back to.
    pub(crate) fn free_plan(&self) -> &Plan {
        &self.catalog[0]
    }

    /// Begins a write: a transaction whose events go to the outbox and,
    /// once it commits, to the audit log.
    pub(crate) async fn begin(&self) -> Result<Write> {
        Ok(Write::new(self.store.begin().await?, &self.outbox, None))
    }

    /// Commits a write: the relay wakes and the audit log has its events.
    pub(crate) async fn commit(&self, tx: Write) -> Result<()> {
        tx.commit().await?;
        Ok(())
    }

    /// Appends an event, in the organization `organization` (id, root)
    /// when it is about one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn emit<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        actor: events::Actor,
        request: Option<&events::RequestContext>,
        aggregate: (&'static str, &str),
        organization: Option<(&str, &str)>,
        payload: &M,
    ) -> Result<()> {
        let mut event = NewEvent::new(aggregate.0, aggregate.1, actor, payload);
        // What the change is about: its aggregate (a subscription, an
        // account, a plan), so that the audit log can show and filter it.
        event.targets = vec![events::Target {
            r#type: aggregate.0.to_string(),
            id: aggregate.1.to_string(),
            name: String::new(),
        }];
        if let Some((id, root)) = organization {
            event = event.in_organization(id, root);
        }
        if let Some(request) = request {
            event = event.with_request(request.clone());
        }
        tx.emit(event).await?;
        Ok(())
    }

    /// Appends an event of a caller's change at the organization `node`,
    /// in its tree's log.
    pub(crate) async fn emit_at<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        caller: &Caller,
        node: &NodeRow,
        payload: &M,
    ) -> Result<()> {
        self.emit(
            tx,
            caller.actor(),
            Some(&caller.request),
            ("organization", &node.id),
            Some((&node.id, &node.root_id)),
            payload,
        )
        .await
    }

    /// Appends an event about the subscription of the root organization
    /// `organization_id`, in that organization's log.
    pub(crate) async fn emit_for_subscription<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        actor: events::Actor,
        request: Option<&events::RequestContext>,
        organization_id: &str,
        payload: &M,
    ) -> Result<()> {
        self.emit(
            tx,
            actor,
            request,
            ("subscription", organization_id),
            Some((organization_id, organization_id)),
            payload,
        )
        .await
    }
}

/// The actor of changes billing makes on its own (webhooks, sweeps,
/// events).
pub(crate) fn system_actor() -> events::Actor {
    events::Actor {
        kind: events::actor::Kind::System as i32,
        id: NAME.into(),
        display_name: String::new(),
    }
}

/// The NOT_FOUND of a missing (or hidden) object of `kind`.
pub(crate) fn not_found(kind: &str) -> Error {
    Error::not_found(kind).with_domain(NAME)
}

pub(crate) use tenantry_kit::db::timestamp;

/// Microseconds of a request's timestamp.
pub(crate) fn micros(time: &prost_types::Timestamp) -> i64 {
    time.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(time.nanos / 1_000))
}

/// Answers a request with `handler`, given the request's caller and its
/// message; a refusal becomes the request's status.
pub(crate) async fn serve<R, T, F>(
    request: tonic::Request<R>,
    handler: impl FnOnce(Caller, R) -> F,
) -> std::result::Result<T, tonic::Status>
where
    F: std::future::Future<Output = Result<T>>,
{
    let caller = Caller::from_request(&request)?;
    Ok(handler(caller, request.into_inner()).await?)
}

/// [`serve`] for a handler whose answer is the whole response message.
pub(crate) async fn respond<R, T, F>(
    request: tonic::Request<R>,
    handler: impl FnOnce(Caller, R) -> F,
) -> std::result::Result<tonic::Response<T>, tonic::Status>
where
    F: std::future::Future<Output = Result<T>>,
{
    serve(request, handler).await.map(tonic::Response::new)
}
