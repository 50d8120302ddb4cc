//! Sign-ups, disabled users and the organizations tokens name.

use super::*;

/// SignUp keeps its promise of an organization: when the organization
/// service cannot be reached, the sign-up fails as UNAVAILABLE and leaves
/// no account behind (the same address can sign up again later).
#[tokio::test]
async fn a_sign_up_without_its_organization_leaves_nothing_behind() {
    let nowhere = format!("http://{}", tenantry_testkit::free_addr().unwrap());
    let sandbox = Sandbox::builder()
        .services(&[ServiceKind::Identity, ServiceKind::Rbac])
        .configure(move |config| config.peers.organization = Some(nowhere))
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let failed = Identity::new(channel.clone())
        .sign_up(identity_pb::SignUpRequest {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
            display_name: "Ada".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Unavailable, "{failed:?}");
    let login = Identity::new(channel)
        .login(identity_pb::LoginRequest {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        login.code(),
        tonic::Code::Unauthenticated,
        "no account: {login:?}"
    );
    assert!(
        sandbox
            .mail_token("ada@example.com", "verify_email")
            .is_none(),
        "no verification mail for an account that does not exist"
    );
    sandbox.shutdown().await.unwrap();
}

/// A disabled user holds nothing from the moment DisableUser returns, even
/// with the access token they still carry; enabling gives it all back.
#[tokio::test]
async fn a_disabled_user_is_denied_at_once() {
    for storage in storages() {
        let sandbox = Sandbox::builder()
            .services(&[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
            ])
            .storage(storage)
            .configure(|config| config.identity.platform_admins = vec!["root@example.com".into()])
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let w = World { sandbox, channel };
        let (root, _) = w.sign_up("root@example.com").await;
        let (bob, bobs) = w.sign_up("bob@example.com").await;
        assert!(
            w.allowed(&bob, ("organization", &bobs), "project.create")
                .await
        );
        Identity::new(w.channel.clone())
            .disable_user(authed(
                identity_pb::DisableUserRequest {
                    name: format!("users/{}", bob.id),
                    ..Default::default()
                },
                &root.token,
            ))
            .await
            .unwrap();
        assert!(
            !w.allowed(&bob, ("organization", &bobs), "organization.read")
                .await,
            "{storage:?}: a disabled user still holds access"
        );
        Identity::new(w.channel.clone())
            .enable_user(authed(
                identity_pb::EnableUserRequest {
                    name: format!("users/{}", bob.id),
                    ..Default::default()
                },
                &root.token,
            ))
            .await
            .unwrap();
        // Disabling ended bob's sessions: his old token stays dead; once
        // enabled, he signs in again and holds his access.
        assert!(
            !w.allowed(&bob, ("organization", &bobs), "project.create")
                .await,
            "{storage:?}: a session ended by disabling came back"
        );
        let login = Identity::new(w.channel.clone())
            .login(identity_pb::LoginRequest {
                email: "bob@example.com".into(),
                password: "correct horse battery staple".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let Some(identity_pb::login_response::Result::Tokens(tokens)) = login.result else {
            panic!("no tokens");
        };
        let bob = User {
            id: bob.id,
            email: bob.email,
            token: tokens.access_token,
        };
        assert!(
            w.allowed(&bob, ("organization", &bobs), "project.create")
                .await
        );
        w.sandbox.shutdown().await.unwrap();
    }
}

/// An organization enters a token only for its members: `Login` naming
/// another tenant's organization is NOT_FOUND, and a member who leaves an
/// organization gets tokens for none at the next refresh.
#[tokio::test]
async fn tokens_name_only_organizations_the_user_belongs_to() {
    let w = World::start(Storage::Sqlite, Bus::Local).await;
    let (_, victims) = w.sign_up("victim@example.com").await;
    let (_, own) = w.sign_up("mallory@example.com").await;
    let login = |organization: &str| {
        let channel = w.channel.clone();
        let organization = organization.to_string();
        async move {
            Identity::new(channel)
                .login(identity_pb::LoginRequest {
                    email: "mallory@example.com".into(),
                    password: "correct horse battery staple".into(),
                    organization: format!("organizations/{organization}"),
                })
                .await
        }
    };
    let refused = login(&victims).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let tokens = login(&own).await.unwrap().into_inner();
    let Some(identity_pb::login_response::Result::Tokens(tokens)) = tokens.result else {
        panic!("no tokens");
    };
    let claims: serde_json::Value = {
        use base64::Engine as _;
        let payload = tokens.access_token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["org"], own.as_str());
    w.sandbox.shutdown().await.unwrap();
}
