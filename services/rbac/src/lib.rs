//! The rbac service: memberships, roles, team members, project grants and invitations, and the authorization engine behind `CheckPermission`.
//!
//! The contract is served in full; its RPCs answer UNIMPLEMENTED until the
//! service's own issue (#5) lands. The crate already has the shape every
//! service keeps: [`Options`] → [`build`] → [`Service::register`], an outbox
//! whose relay runs from the start, and its own migrations.

pub mod engine;

use serde::{Deserialize, Serialize};
use tenantry_kit::configure_server;
use tenantry_kit::db::Migration;
use tenantry_kit::outbox::Outbox;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "rbac";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = &[];

/// Options of the rbac service (the `[rbac]` table of the config file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {}

/// The running rbac service.
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
            rbac_pb::membership_service_server::MembershipServiceServer::new(MembershipApi)
        ));
        routes.add(configure_server!(
            rbac_pb::role_service_server::RoleServiceServer::new(RoleApi)
        ));
        routes.add(configure_server!(
            rbac_pb::team_member_service_server::TeamMemberServiceServer::new(TeamMemberApi)
        ));
        routes.add(configure_server!(
            rbac_pb::project_grant_service_server::ProjectGrantServiceServer::new(ProjectGrantApi)
        ));
        routes.add(configure_server!(
            rbac_pb::invitation_service_server::InvitationServiceServer::new(InvitationApi)
        ));
        routes.add(configure_server!(
            authz_pb::authorization_service_server::AuthorizationServiceServer::new(
                AuthorizationApi
            )
        ));
        routes.add(configure_server!(
            authz_pb::schema_service_server::SchemaServiceServer::new(SchemaApi)
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// The `MembershipService` handler.
#[derive(Debug, Clone)]
struct MembershipApi;

#[tonic::async_trait]
impl rbac_pb::membership_service_server::MembershipService for MembershipApi {}

/// The `RoleService` handler.
#[derive(Debug, Clone)]
struct RoleApi;

#[tonic::async_trait]
impl rbac_pb::role_service_server::RoleService for RoleApi {}

/// The `TeamMemberService` handler.
#[derive(Debug, Clone)]
struct TeamMemberApi;

#[tonic::async_trait]
impl rbac_pb::team_member_service_server::TeamMemberService for TeamMemberApi {}

/// The `ProjectGrantService` handler.
#[derive(Debug, Clone)]
struct ProjectGrantApi;

#[tonic::async_trait]
impl rbac_pb::project_grant_service_server::ProjectGrantService for ProjectGrantApi {}

/// The `InvitationService` handler.
#[derive(Debug, Clone)]
struct InvitationApi;

#[tonic::async_trait]
impl rbac_pb::invitation_service_server::InvitationService for InvitationApi {}

/// The `AuthorizationService` handler.
#[derive(Debug, Clone)]
struct AuthorizationApi;

#[tonic::async_trait]
impl authz_pb::authorization_service_server::AuthorizationService for AuthorizationApi {}

/// The `SchemaService` handler.
#[derive(Debug, Clone)]
struct SchemaApi;

#[tonic::async_trait]
impl authz_pb::schema_service_server::SchemaService for SchemaApi {}
