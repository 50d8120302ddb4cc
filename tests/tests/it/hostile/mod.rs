//! The tenant boundary against a hostile or demoted insider: credentials
//! follow access at once. An API key holds what it carries, inside its
//! scope, only while its owner holds it there; a revoked key stops on the
//! very next call, also through the gateway with its exchanged token
//! cached. On SQLite and (when configured) Postgres, with no sleeps and no
//! retries.
//!
//! By concern: API keys, sessions, another tenant's names, invitations, and
//! row-level security on Postgres.

mod feeds;
mod invitations;
mod keys;
mod names;
mod row_security;
mod sessions;

use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{Sandbox, Storage, authed, last_id as id, storages};
use tenantry_tests::rest::Rest;
use tonic::Code;
use tonic::transport::Channel;

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

use tenantry_testkit::check::allowed;
use tenantry_testkit::clients::{
    Grants, Identity, Keys, Members, Orgs, Projects, TeamMembers, Teams,
};
use tenantry_testkit::people::{self, User};

/// A key: its id, its secret, and an access token it was exchanged for.
struct Key {
    id: String,
    secret: String,
    token: String,
}

impl World {
    async fn start(storage: Storage) -> World {
        World::with(
            storage,
            &[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Gateway,
            ],
        )
        .await
    }

    async fn with(storage: Storage, services: &[ServiceKind]) -> World {
        let sandbox = Sandbox::builder()
            .services(services)
            .storage(storage)
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        World { sandbox, channel }
    }

    async fn sign_up(&self, email: &str) -> (User, String) {
        people::sign_up(&self.channel, email, "Tester").await
    }

    async fn project(&self, token: &str, organization: &str) -> Result<String, tonic::Status> {
        Projects::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{organization}"),
                    project: Some(org::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|r| id(&r.into_inner().project.unwrap().name))
    }

    /// The ids of the projects a token sees in an organization (NOT_FOUND
    /// when it sees none and cannot read the organization).
    async fn projects(&self, token: &str, organization: &str) -> Result<Vec<String>, Code> {
        let mut ids: Vec<String> = Projects::new(self.channel.clone())
            .list_projects(authed(
                org::ListProjectsRequest {
                    parent: format!("organizations/{organization}"),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map_err(|status| status.code())?
            .into_inner()
            .projects
            .iter()
            .map(|p| id(&p.name))
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn set_roles(&self, owner: &User, organization: &str, user: &User, role: &str) {
        Members::new(self.channel.clone())
            .update_membership(authed(
                rbac::UpdateMembershipRequest {
                    membership: Some(rbac::Membership {
                        name: format!("organizations/{organization}/memberships/{}", user.id),
                        roles: vec![format!("roles/{role}")],
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["roles".into()],
                    }),
                },
                &owner.token,
            ))
            .await
            .unwrap();
    }

    async fn add_member(&self, owner: &User, organization: &str, user: &User, role: &str) {
        tenantry_tests::people::join(
            &self.sandbox,
            &self.channel,
            &owner.token,
            organization,
            &user.token,
            &[&format!("roles/{role}")],
        )
        .await;
    }

    /// Creates a key as `creator` with a scope (`team` or `project` name,
    /// or neither) and exchanges it for a token.
    async fn key(
        &self,
        creator: &User,
        organization: &str,
        scope: (&str, &str),
        permissions: &[&str],
    ) -> Result<Key, tonic::Status> {
        let mut keys = Keys::new(self.channel.clone());
        let created = keys
            .create_api_key(authed(
                identity_pb::CreateApiKeyRequest {
                    parent: format!("organizations/{organization}"),
                    api_key: Some(identity_pb::ApiKey {
                        display_name: "ci".into(),
                        team: scope.0.into(),
                        project: scope.1.into(),
                        permissions: permissions.iter().map(|p| p.to_string()).collect(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &creator.token,
            ))
            .await?
            .into_inner();
        let token = keys
            .authenticate_api_key(identity_pb::AuthenticateApiKeyRequest {
                secret: created.secret.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token;
        Ok(Key {
            id: id(&created.api_key.unwrap().name),
            secret: created.secret,
            token,
        })
    }

    /// A check about a user, asked with their own token.
    async fn allowed(&self, user: &User, object: (&str, &str), permission: &str) -> bool {
        allowed(
            &self.channel,
            &user.token,
            ("user", &user.id),
            object,
            permission,
        )
        .await
    }

    /// A check about the key itself, asked with its own token.
    async fn key_allowed(&self, key: &Key, object: (&str, &str), permission: &str) -> bool {
        key_allowed(&self.channel, key, object, permission).await
    }
}

/// A check about a key, asked with its own token.
async fn key_allowed(channel: &Channel, key: &Key, object: (&str, &str), permission: &str) -> bool {
    allowed(
        channel,
        &key.token,
        ("api_key", &key.id),
        object,
        permission,
    )
    .await
}

/// A new session of `email`'s, signed in with testkit's password: its
/// access token.
async fn session(w: &World, email: &str) -> String {
    let response = people::login(&w.channel, email, people::PASSWORD).await;
    people::tokens(response.unwrap()).access_token
}
