//! The organization service: organization trees (organizations and departments), workspaces, teams, projects and their environments, ownership.
//!
//! The contract is served in full; its RPCs answer UNIMPLEMENTED until the
//! service's own issue (#4) lands. The crate already has the shape every
//! service keeps: [`Options`] → [`build`] → [`Service::register`], an outbox
//! whose relay runs from the start, and its own migrations.

use serde::{Deserialize, Serialize};
use tenantry_kit::configure_server;
use tenantry_kit::db::Migration;
use tenantry_kit::outbox::Outbox;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::organization::v1 as organization_pb;

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "organization";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = &[];

/// Options of the organization service (the `[organization]` table of the config file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {}

/// The running organization service.
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
            organization_pb::workspace_service_server::WorkspaceServiceServer::new(WorkspaceApi)
        ));
        routes.add(configure_server!(
            organization_pb::organization_service_server::OrganizationServiceServer::new(
                OrganizationApi
            )
        ));
        routes.add(configure_server!(
            organization_pb::team_service_server::TeamServiceServer::new(TeamApi)
        ));
        routes.add(configure_server!(
            organization_pb::project_service_server::ProjectServiceServer::new(ProjectApi)
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// The `WorkspaceService` handler.
#[derive(Debug, Clone)]
struct WorkspaceApi;

#[tonic::async_trait]
impl organization_pb::workspace_service_server::WorkspaceService for WorkspaceApi {}

/// The `OrganizationService` handler.
#[derive(Debug, Clone)]
struct OrganizationApi;

#[tonic::async_trait]
impl organization_pb::organization_service_server::OrganizationService for OrganizationApi {}

/// The `TeamService` handler.
#[derive(Debug, Clone)]
struct TeamApi;

#[tonic::async_trait]
impl organization_pb::team_service_server::TeamService for TeamApi {}

/// The `ProjectService` handler.
#[derive(Debug, Clone)]
struct ProjectApi;

#[tonic::async_trait]
impl organization_pb::project_service_server::ProjectService for ProjectApi {}
