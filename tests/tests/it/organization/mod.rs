//! The organization service over gRPC, on SQLite and Postgres: trees,
//! workspaces, teams, projects and environments, ownership, soft delete,
//! and every bad input the contract names. Permissions, memberships and
//! quotas come from a stand-in serving the rbac and billing contracts, so
//! each rule of who-may-do-what is set by the test and the service is
//! exercised exactly as it asks those services: over gRPC, with the
//! caller's own token.
//!
//! By concern: trees and departments, names and listings, tenants kept
//! apart, deletion, teams, projects and environments, ownership and the
//! identity service's view, and workspaces.

mod children;
mod isolation;
mod lifecycle;
mod listings;
mod ownership;
mod trees;
mod workspaces;

use std::time::Duration;

use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as pb;
use tenantry_testkit::clients::{Orgs, Projects, Teams, Workspaces};
use tenantry_testkit::people;
use tenantry_testkit::standin::DirectoryStandIn;
use tenantry_testkit::{EventTap, Sandbox, Storage, authed, storages};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Every organization-level permission the service asks about.
const ORG_PERMISSIONS: &[&str] = &[
    "organization.read",
    "organization.settings.manage",
    "organization.suborganizations.create",
    "organization.departments.create",
    "organization.delete",
    "organization.deactivate",
    "organization.teams.create",
    "project.create",
    "billing.manage",
];

struct World {
    sandbox: Sandbox,
    rbac: DirectoryStandIn,
    channel: Channel,
    orgs: Orgs,
    teams: Teams,
    projects: Projects,
    workspaces: Workspaces,
}

impl World {
    async fn start(storage: Storage) -> World {
        World::with(storage, |_| {}).await
    }

    /// A world whose configuration `change` adjusts further.
    async fn with(
        storage: Storage,
        change: impl FnOnce(&mut tenantry::config::Config) + Send + 'static,
    ) -> World {
        let rbac = DirectoryStandIn::default();
        let url = rbac.start().await.unwrap();
        let sandbox = Sandbox::builder()
            .services(&[ServiceKind::Identity, ServiceKind::Organization])
            .storage(storage)
            .configure(move |config| {
                config.peers.rbac = Some(url.clone());
                config.peers.billing = Some(url);
                change(config);
            })
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        World {
            orgs: Orgs::new(channel.clone()),
            teams: Teams::new(channel.clone()),
            projects: Projects::new(channel.clone()),
            workspaces: Workspaces::new(channel.clone()),
            channel,
            rbac,
            sandbox,
        }
    }

    /// Signs a user up; returns (id, access token).
    async fn user(&self, email: &str) -> (String, String) {
        let (user, _) = people::sign_up(&self.channel, email, email).await;
        let id = user.id;
        self.rbac
            .state()
            .emails
            .insert(id.clone(), email.to_string());
        (id, user.token)
    }

    /// Makes `user` a member of `org` holding `permissions` on `object`.
    fn grant(&self, user: &str, object: &str, permissions: &[&str]) {
        let mut state = self.rbac.state();
        for permission in permissions {
            state
                .grants
                .insert((user.to_string(), object.to_string(), permission.to_string()));
        }
    }

    fn member(&self, user: &str, org: &str) {
        self.rbac
            .state()
            .members
            .insert((user.to_string(), org.to_string()));
    }

    /// Creates a root organization as `token`'s user, who then holds every
    /// organization permission on it (as its owner would).
    async fn root(&mut self, user: &str, token: &str, name: &str) -> pb::Organization {
        let org = self
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        self.grant(user, id(&org.name), ORG_PERMISSIONS);
        self.member(user, id(&org.name));
        org
    }

    async fn child(
        &mut self,
        user: &str,
        token: &str,
        parent: &pb::Organization,
        name: &str,
        kind: pb::OrganizationKind,
    ) -> Result<pb::Organization, tonic::Status> {
        let org = self
            .orgs
            .create_organization(authed(
                pb::CreateOrganizationRequest {
                    organization: Some(pb::Organization {
                        display_name: name.into(),
                        parent: parent.name.clone(),
                        kind: kind as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner()
            .organization
            .unwrap();
        self.grant(user, id(&org.name), ORG_PERMISSIONS);
        Ok(org)
    }

    /// Creates the team `name` in the organization `parent` as `token`.
    async fn team(&mut self, token: &str, parent: &str, name: &str) -> pb::Team {
        self.teams
            .create_team(authed(
                pb::CreateTeamRequest {
                    parent: parent.into(),
                    team: Some(pb::Team {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap()
    }

    async fn get(&mut self, token: &str, name: &str) -> Result<pb::Organization, tonic::Status> {
        Ok(self
            .orgs
            .get_organization(authed(
                pb::GetOrganizationRequest { name: name.into() },
                token,
            ))
            .await?
            .into_inner()
            .organization
            .unwrap())
    }

    /// How many organizations the database holds, for "nothing was
    /// written" checks.
    async fn organization_rows(&self) -> i64 {
        use sqlx::Row;
        let db = self.sandbox.database.connect_as_operator().await.unwrap();
        let count = sqlx::query("SELECT COUNT(*) FROM org_organizations")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        db.close().await;
        count
    }
}

/// The last segment of a resource name.
fn id(name: &str) -> &str {
    name.rsplit('/').next().unwrap()
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

fn payload<M: prost::Name + Default>(event: &events::Event) -> M {
    event.payload.as_ref().unwrap().to_msg().unwrap()
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}
