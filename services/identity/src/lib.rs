//! The identity service: who-you-are for the whole suite: users, credentials, sessions and tokens, API keys, service accounts, MFA and the signing keys (JWKS).
//!
//! The contract is served in full; its RPCs answer UNIMPLEMENTED until the
//! service's own issue (#3) lands. The crate already has the shape every
//! service keeps: [`Options`] → [`build`] → [`Service::register`], an outbox
//! whose relay runs from the start, and its own migrations.

use serde::{Deserialize, Serialize};
use tenantry_kit::configure_server;
use tenantry_kit::db::Migration;
use tenantry_kit::outbox::Outbox;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::identity::v1 as identity_pb;

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "identity";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = &[];

/// Options of the identity service (the `[identity]` table of the config file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {}

/// The running identity service.
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
            identity_pb::identity_service_server::IdentityServiceServer::new(IdentityApi)
        ));
        routes.add(configure_server!(
            identity_pb::api_key_service_server::ApiKeyServiceServer::new(ApiKeyApi)
        ));
        routes.add(configure_server!(
            identity_pb::service_account_service_server::ServiceAccountServiceServer::new(
                ApiAccountApi
            )
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// The `IdentityService` handler.
#[derive(Debug, Clone)]
struct IdentityApi;

#[tonic::async_trait]
impl identity_pb::identity_service_server::IdentityService for IdentityApi {}

/// The `ApiKeyService` handler.
#[derive(Debug, Clone)]
struct ApiKeyApi;

#[tonic::async_trait]
impl identity_pb::api_key_service_server::ApiKeyService for ApiKeyApi {}

/// The `ServiceAccountService` handler.
#[derive(Debug, Clone)]
struct ApiAccountApi;

#[tonic::async_trait]
impl identity_pb::service_account_service_server::ServiceAccountService for ApiAccountApi {}
