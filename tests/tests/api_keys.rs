//! API keys through the identity contract. The rbac service's answers come
//! from a stand-in serving the real rbac and authz contracts (the rbac
//! service itself arrives with issue #5), so identity is exercised exactly
//! as it will talk to rbac: over gRPC.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tenantry::services::ServiceKind;
use tenantry_kit::auth::{Expectations, JwkKey, KeySet, PrincipalKind};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::identity::v1 as pb;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;
use tenantry_testkit::{Sandbox, authed};
use tonic::{Code, Request, Response, Status};

type Identity = pb::identity_service_client::IdentityServiceClient<tonic::transport::Channel>;
type Keys = pb::api_key_service_client::ApiKeyServiceClient<tonic::transport::Channel>;

/// What the stand-in rbac knows: (user, organization) memberships and
/// (user, organization, permission) grants.
#[derive(Debug, Default)]
struct Directory {
    members: HashSet<(String, String)>,
    grants: HashSet<(String, String, String)>,
}

#[derive(Debug, Clone, Default)]
struct FakeRbac(Arc<Mutex<Directory>>);

#[tonic::async_trait]
impl authz_pb::authorization_service_server::AuthorizationService for FakeRbac {
    async fn check_permission(
        &self,
        request: Request<authz_pb::CheckPermissionRequest>,
    ) -> Result<Response<authz_pb::CheckPermissionResponse>, Status> {
        let request = request.into_inner();
        let user = request
            .subject
            .and_then(|s| s.object)
            .map(|o| o.object_id)
            .unwrap_or_default();
        let org = request.resource.map(|r| r.object_id).unwrap_or_default();
        let allowed = self
            .0
            .lock()
            .unwrap()
            .grants
            .contains(&(user, org, request.permission));
        let permissionship = if allowed {
            authz_pb::Permissionship::Allowed
        } else {
            authz_pb::Permissionship::Denied
        };
        Ok(Response::new(authz_pb::CheckPermissionResponse {
            permissionship: permissionship as i32,
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl rbac_pb::membership_service_server::MembershipService for FakeRbac {
    async fn list_user_memberships(
        &self,
        request: Request<rbac_pb::ListUserMembershipsRequest>,
    ) -> Result<Response<rbac_pb::ListUserMembershipsResponse>, Status> {
        let user = request
            .into_inner()
            .parent
            .trim_start_matches("users/")
            .to_string();
        let memberships = self
            .0
            .lock()
            .unwrap()
            .members
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(u, org)| rbac_pb::Membership {
                name: format!("organizations/{org}/memberships/{u}"),
                roles: vec!["roles/admin".into()],
                ..Default::default()
            })
            .collect();
        Ok(Response::new(rbac_pb::ListUserMembershipsResponse {
            memberships,
            ..Default::default()
        }))
    }
}

async fn start_fake(rbac: FakeRbac) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                authz_pb::authorization_service_server::AuthorizationServiceServer::new(
                    rbac.clone(),
                ),
            )
            .add_service(rbac_pb::membership_service_server::MembershipServiceServer::new(rbac))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

async fn sign_up(identity: &mut Identity, email: &str) -> (String, String) {
    let response = identity
        .sign_up(pb::SignUpRequest {
            email: email.into(),
            password: "correct horse battery staple".into(),
            display_name: "Key Maker".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = response
        .user
        .unwrap()
        .name
        .trim_start_matches("users/")
        .to_string();
    (id, response.tokens.unwrap().access_token)
}

fn create(org: &str, permissions: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        parent: format!("organizations/{org}"),
        api_key: Some(pb::ApiKey {
            display_name: "ci".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn api_keys_carry_a_subset_of_permissions_and_exchange_for_tokens() {
    let rbac = FakeRbac::default();
    let url = start_fake(rbac.clone()).await;
    let sandbox = Sandbox::builder()
        .services(&[ServiceKind::Identity, ServiceKind::Gateway])
        .configure(move |config| {
            config.peers.rbac = Some(url.clone());
            config.peers.organization = Some(url);
        })
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let mut identity = Identity::new(channel.clone());
    let mut keys = Keys::new(channel);

    let org = tenantry_kit::id::new_id().to_string();
    let (creator, creator_token) = sign_up(&mut identity, "creator@example.com").await;
    let (_, outsider_token) = sign_up(&mut identity, "outsider@example.com").await;
    {
        let mut directory = rbac.0.lock().unwrap();
        directory.members.insert((creator.clone(), org.clone()));
        for permission in ["organization.api_keys.create", "project.read"] {
            directory
                .grants
                .insert((creator.clone(), org.clone(), permission.to_string()));
        }
    }

    // A permission the creator lacks cannot go into a key; nothing is written.
    let too_much = keys
        .create_api_key(authed(
            create(&org, &["project.read", "billing.manage"]),
            &creator_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(too_much.code(), Code::PermissionDenied);
    // Someone without the right to manage keys sees no organization at all.
    let outsider = keys
        .create_api_key(authed(create(&org, &["project.read"]), &outsider_token))
        .await
        .unwrap_err();
    assert_eq!(outsider.code(), Code::NotFound);
    let bad = keys
        .create_api_key(authed(create(&org, &["Project Read"]), &creator_token))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let created = keys
        .create_api_key(authed(create(&org, &["project.read"]), &creator_token))
        .await
        .unwrap()
        .into_inner();
    let secret = created.secret.clone();
    assert!(secret.starts_with("tnt_"), "{secret}");
    let key = created.api_key.unwrap();
    assert_eq!(key.state, pb::ApiKeyState::Active as i32);

    // Exchange: a short-lived token for the key's organization and permissions.
    let exchanged = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: secret.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exchanged.organization, format!("organizations/{org}"));
    assert_eq!(exchanged.permissions, vec!["project.read".to_string()]);
    let jwks = identity
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let jwks: Vec<JwkKey> = jwks.keys.into_iter().map(JwkKey::from).collect();
    let claims = KeySet::from_jwks(&jwks)
        .unwrap()
        .verify(
            &exchanged.access_token,
            &Expectations::new("tenantry", "tenantry"),
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    assert_eq!(claims.kind, PrincipalKind::ApiKey);
    assert_eq!(claims.org.as_deref(), Some(org.as_str()));
    // A hot key is served from the cache: the same token comes back.
    let again = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: secret.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.access_token, exchanged.access_token);

    // A valid prefix with a wrong secret, a typo, garbage: all UNAUTHENTICATED.
    let (_, foreign) = tenantry_identity::secrets::new_api_key();
    let mut typo = secret.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let forged_secret = {
        let parts = tenantry_identity::secrets::parse_api_key(&secret).unwrap();
        let (other, _) = tenantry_identity::secrets::new_api_key();
        format!("tnt_{}_{}", parts.id, other.secret)
    };
    for attempt in [
        foreign,
        typo,
        forged_secret,
        "tnt_".to_string(),
        String::new(),
    ] {
        let status = keys
            .authenticate_api_key(pb::AuthenticateApiKeyRequest {
                secret: attempt.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{attempt}");
    }

    // Revoked keys stop at once on this replica.
    keys.revoke_api_key(authed(
        pb::RevokeApiKeyRequest {
            name: key.name.clone(),
        },
        &creator_token,
    ))
    .await
    .unwrap();
    let revoked = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest { secret })
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);

    // A key stops working when its creator leaves the organization.
    let second = keys
        .create_api_key(authed(create(&org, &["project.read"]), &creator_token))
        .await
        .unwrap()
        .into_inner();
    rbac.0.lock().unwrap().members.clear();
    let orphaned = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: second.secret,
        })
        .await
        .unwrap_err();
    assert_eq!(orphaned.code(), Code::Unauthenticated);

    // Listing shows both, the revoked one only with show_inactive.
    let active = keys
        .list_api_keys(authed(
            pb::ListApiKeysRequest {
                parent: format!("organizations/{org}"),
                ..Default::default()
            },
            &creator_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(active.len(), 1);
    let all = keys
        .list_api_keys(authed(
            pb::ListApiKeysRequest {
                parent: format!("organizations/{org}"),
                show_inactive: true,
                ..Default::default()
            },
            &creator_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(all.len(), 2);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_an_authorization_answer_no_key_is_created() {
    // The all-in-one server's rbac does not answer CheckPermission yet:
    // identity must fail closed.
    let sandbox = Sandbox::builder().start().await.unwrap();
    let channel = sandbox.channel().await.unwrap();
    let mut identity = Identity::new(channel.clone());
    let mut keys = Keys::new(channel);
    let (_, token) = sign_up(&mut identity, "early@example.com").await;
    let org = tenantry_kit::id::new_id().to_string();
    let status = keys
        .create_api_key(authed(create(&org, &["project.read"]), &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let db = sandbox.database.connect().await.unwrap();
    let count: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) FROM identity_api_keys")
            .fetch_one(db.pool())
            .await
            .unwrap(),
        0,
    );
    assert_eq!(count, 0);
    db.close().await;
    sandbox.shutdown().await.unwrap();
}
