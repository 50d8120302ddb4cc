//! The audit service end to end, with every other service writing the
//! events it ingests: the log per organization and its filters and pages,
//! who may read it, tamper evidence (a row edited in the database breaks
//! VerifyChain at that event), signed checkpoints, retention that keeps the
//! chain verifiable, streaming exports, and nothing lost or doubled when
//! the audit consumer (and, on NATS, the bus) is down while others write.
//!
//! By concern: what is logged and who reads it, the chain and its
//! checkpoints, exports, and Rollbar's admin page.

mod chain;
mod exports;
mod log;
mod rollbar;

use ed25519_dalek::Verifier as _;
use std::collections::HashSet;
use std::time::Duration;
use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::audit::v1 as pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;
use tenantry_testkit::{
    Bus, NatsServer, Sandbox, SandboxBuilder, Storage, authed, eventually, last_id as id, now_secs,
    storages,
};
use tonic::Code;
use tonic::transport::Channel;

use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_testkit::clients::{Audit, Grants, Invitations, Members, Orgs, Projects};
use tenantry_testkit::people::{self, User};

fn builder(storage: Storage) -> SandboxBuilder {
    Sandbox::builder().storage(storage).configure(|config| {
        config.identity.platform_admins = vec!["root@example.com".into()];
        config.audit.checkpoint_interval_secs = 1;
        config.audit.retention_interval_secs = 1;
    })
}

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

impl World {
    async fn start(builder: SandboxBuilder) -> World {
        let sandbox = builder.start().await.unwrap();
        let channel = sandbox.channel().await.unwrap();
        World { sandbox, channel }
    }

    fn audit(&self) -> Audit {
        Audit::new(self.channel.clone())
    }

    async fn user(&self, email: &str) -> User {
        people::sign_up(&self.channel, email, email).await.0
    }

    async fn login(&self, email: &str) -> User {
        people::log_in(&self.channel, email).await
    }

    async fn organization(&self, owner: &User, name: &str) -> String {
        let created =
            org::organization_service_client::OrganizationServiceClient::new(self.channel.clone())
                .create_organization(authed(
                    org::CreateOrganizationRequest {
                        organization: Some(org::Organization {
                            display_name: name.into(),
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
        id(&created.name)
    }

    /// A project, created at once: the owner's next call after creating
    /// the organization sees it.
    async fn project(&self, owner: &User, org_id: &str, name: &str) -> String {
        let project = org::project_service_client::ProjectServiceClient::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{org_id}"),
                    project: Some(org::Project {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    request_id: format!("{org_id}-{name}"),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await
            .unwrap_or_else(|status| panic!("creating project {name}: {status:?}"))
            .into_inner()
            .project
            .unwrap();
        id(&project.name)
    }

    async fn list(
        &self,
        user: &User,
        parent: &str,
        filter: Option<pb::AuditEventFilter>,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListAuditEventsResponse, tonic::Status> {
        Ok(self
            .audit()
            .list_audit_events(authed(
                pb::ListAuditEventsRequest {
                    parent: parent.into(),
                    page_size,
                    page_token: page_token.into(),
                    filter,
                },
                &user.token,
            ))
            .await?
            .into_inner())
    }

    /// Every event of an organization, newest first, `action` among them:
    /// the log reads its writers' writes, with no waiting.
    async fn logged_with(&self, user: &User, org_id: &str, action: &str) -> Vec<pb::AuditEvent> {
        let events = self
            .list(user, &format!("organizations/{org_id}"), None, 1000, "")
            .await
            .expect("the log")
            .audit_events;
        assert!(
            events.iter().any(|e| e.action == action),
            "{action} in the log"
        );
        events
    }

    async fn verify(&self, user: &User, org_id: &str) -> pb::VerifyChainResponse {
        self.audit()
            .verify_chain(authed(
                pb::VerifyChainRequest {
                    organization: format!("organizations/{org_id}"),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner()
    }
}

/// Outbox event ids of every service except audit's own checkpoints.
async fn written_ids(sandbox: &Sandbox) -> HashSet<String> {
    let db = sandbox.database.connect().await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, subject FROM tenantry_outbox")
            .fetch_all(db.pool())
            .await
            .unwrap();
    rows.into_iter()
        .filter(|(_, subject)| !subject.ends_with("audit.checkpoint.created"))
        .map(|(id, _)| id)
        .collect()
}

async fn audited_ids(sandbox: &Sandbox) -> Vec<(String, String, i64)> {
    let db = sandbox.database.connect_as_operator().await.unwrap();
    sqlx::query_as("SELECT id, scope, sequence FROM audit_events ORDER BY scope, sequence")
        .fetch_all(db.pool())
        .await
        .unwrap()
}
