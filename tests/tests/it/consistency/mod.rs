//! Decisions follow the truth: a caller's next call sees what their last
//! write did, on every service, with no token handling, no sleep and no
//! retry; and a write that removes access is reflected by the very next
//! check. On SQLite and Postgres, on the in-process bus and (with the bus
//! stopped) on NATS.
//!
//! By concern: reading one's own writes, limits, replicas, consumers, and
//! users and tokens.

mod limits;
mod own_writes;
mod replicas;
mod users;

use tenantry::services::ServiceKind;
use tenantry_kit::consistency::HEADER;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{Bus, NatsServer, Sandbox, Storage, authed, last_id as id, storages};
use tonic::transport::Channel;

/// Iterations of every read-your-writes loop.
const ITERATIONS: usize = 1000;

use tenantry_testkit::clients::{
    Authz, Grants, Identity, Invitations, Members, Orgs, Projects, Subscriptions,
};
use tenantry_testkit::people;

struct User {
    id: String,
    email: String,
    token: String,
}

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

impl World {
    async fn start(storage: Storage, bus: Bus) -> World {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
            ])
            .storage(storage)
            .bus(bus)
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        World { sandbox, channel }
    }

    /// Signs a user up; returns them with the organization they got.
    async fn sign_up(&self, email: &str) -> (User, String) {
        let (user, organization) = people::sign_up(&self.channel, email, "Tester").await;
        let user = User {
            id: user.id,
            email: email.into(),
            token: user.token,
        };
        (user, organization)
    }

    /// Whether `user` may do `permission` on the object, asked as the user
    /// with no consistency requirement at all.
    async fn allowed(&self, user: &User, object: (&str, &str), permission: &str) -> bool {
        allowed(&self.channel, user, object, permission, None).await
    }

    /// Brings `user` into `organization` as a member, by `admin`'s
    /// invitation.
    async fn join(&self, admin: &User, organization: &str, user: &User) {
        tenantry_tests::people::join(
            &self.sandbox,
            &self.channel,
            &admin.token,
            organization,
            &user.token,
            &["roles/member"],
        )
        .await;
    }

    async fn organization(&self, user: &User, parent: Option<&str>) -> String {
        let response = Orgs::new(self.channel.clone())
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: "Acme".into(),
                        parent: parent
                            .map(|p| format!("organizations/{p}"))
                            .unwrap_or_default(),
                        // Members read every project here: a member's
                        // read is the probe of these tests.
                        settings: Some(org::OrganizationSettings {
                            project_visibility: org::ProjectVisibility::AllMembers as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap();
        assert!(
            response.metadata().get(HEADER).is_some(),
            "a write answers with its consistency token"
        );
        id(&response.into_inner().organization.unwrap().name)
    }

    async fn project(&self, user: &User, organization: &str) -> String {
        let project = Projects::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{organization}"),
                    project: Some(org::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        id(&project.name)
    }

    async fn delete_project(&self, user: &User, organization: &str, project: &str) {
        Projects::new(self.channel.clone())
            .delete_project(authed(
                org::DeleteProjectRequest {
                    name: format!("organizations/{organization}/projects/{project}"),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap();
    }
}

/// Whether `user` may do `permission` on the object, asked as the user of
/// the server behind `channel`, with no consistency requirement in the
/// request; with `token` in the consistency metadata when given.
async fn allowed(
    channel: &Channel,
    user: &User,
    object: (&str, &str),
    permission: &str,
    token: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
) -> bool {
    let mut request = authed(
        authz::CheckPermissionRequest {
            consistency: None,
            resource: Some(authz::ObjectReference {
                object_type: object.0.into(),
                object_id: object.1.into(),
            }),
            permission: permission.into(),
            subject: Some(authz::SubjectReference {
                object: Some(authz::ObjectReference {
                    object_type: "user".into(),
                    object_id: user.id.clone(),
                }),
                optional_relation: String::new(),
            }),
            with_tracing: false,
        },
        &user.token,
    );
    if let Some(token) = token {
        request.metadata_mut().insert(HEADER, token.clone());
    }
    Authz::new(channel.clone())
        .check_permission(request)
        .await
        .unwrap()
        .into_inner()
        .permissionship()
        == authz::Permissionship::Allowed
}

/// How many `project.created` events of `organization` the audit log holds.
async fn audit_projects(channel: &Channel, owner: &User, organization: &str) -> usize {
    use tenantry_proto::tenantry::audit::v1 as audit;
    audit::audit_service_client::AuditServiceClient::new(channel.clone())
        .list_audit_events(authed(
            audit::ListAuditEventsRequest {
                parent: format!("organizations/{organization}"),
                page_size: 100,
                filter: Some(audit::AuditEventFilter {
                    action: "project.created".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &owner.token,
        ))
        .await
        .map(|r| r.into_inner().audit_events.len())
        .unwrap_or(0)
}
