//! The identity service through its gRPC contract, on SQLite and (when
//! configured) Postgres: sign-up, verification, sign-in, refresh rotation
//! with reuse detection, logout, password reset, MFA, sessions, JWKS; and
//! the attacks and bad input the issue lists, each with its status code and
//! a check that nothing was written.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::Row;
use tenantry_identity::totp;
use tenantry_kit::auth::{Claims, Expectations, KeySet, PrincipalKind, SigningKey};
use tenantry_proto::tenantry::audit::v1 as audit_pb;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::identity::v1 as pb;
use tenantry_proto::tenantry::organization::v1 as org_pb;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;
use tenantry_testkit::{Sandbox, Storage, authed, storages};
use tonic::Code;
use tonic_types::StatusExt;

type Client = pb::identity_service_client::IdentityServiceClient<tonic::transport::Channel>;

const PASSWORD: &str = "correct horse battery staple";

async fn sandbox(storage: Storage) -> (Sandbox, Client) {
    let sandbox = Sandbox::builder().storage(storage).start().await.unwrap();
    let client = Client::new(sandbox.channel().await.unwrap());
    (sandbox, client)
}

async fn sign_up(client: &mut Client, email: &str) -> pb::SignUpResponse {
    client
        .sign_up(pb::SignUpRequest {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: "Ada Lovelace".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn login(
    client: &mut Client,
    email: &str,
    password: &str,
) -> Result<pb::LoginResponse, tonic::Status> {
    client
        .login(pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

fn into_tokens(response: pb::LoginResponse) -> pb::AuthTokens {
    match response.result {
        Some(pb::login_response::Result::Tokens(tokens)) => tokens,
        other => panic!("expected tokens, got {other:?}"),
    }
}

async fn count(sandbox: &Sandbox, sql: &'static str) -> i64 {
    let db = sandbox.database.connect().await.unwrap();
    let n = sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0);
    db.close().await;
    n
}

async fn event_types(sandbox: &Sandbox) -> Vec<String> {
    let db = sandbox.database.connect().await.unwrap();
    let rows = sqlx::query(
        "SELECT subject FROM tenantry_outbox WHERE service = 'identity' ORDER BY position",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    db.close().await;
    rows.iter()
        .map(|r| {
            r.get::<String, _>(0)
                .trim_start_matches("tenantry.events.identity.")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn sign_up_verify_login_me_refresh_reuse_logout() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        let signed_up = sign_up(&mut client, "Ada@Example.com").await;
        let user = signed_up.user.unwrap();
        assert_eq!(user.email, "ada@example.com", "emails are normalized");
        assert!(!user.email_verified);

        // A signed-in caller asks for the mail again without naming the
        // address; without a token the address is needed.
        let access = signed_up.tokens.clone().unwrap().access_token;
        let before = mails_to(&sandbox, "ada@example.com", "verify_email").len();
        client
            .resend_verification(authed(
                pb::ResendVerificationRequest {
                    email: String::new(),
                },
                &access,
            ))
            .await
            .unwrap();
        assert_eq!(
            mails_to(&sandbox, "ada@example.com", "verify_email").len(),
            before + 1
        );
        let anonymous = client
            .resend_verification(pb::ResendVerificationRequest {
                email: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(anonymous.code(), Code::InvalidArgument);

        // Verify the address with the mailed single-use token.
        let token = sandbox
            .mail_token("ada@example.com", "verify_email")
            .expect("verification mail");
        let verified = client
            .verify_email(pb::VerifyEmailRequest {
                token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(verified.user.unwrap().email_verified);
        let reused = client
            .verify_email(pb::VerifyEmailRequest { token })
            .await
            .unwrap_err();
        assert_eq!(reused.code(), Code::InvalidArgument);

        let tokens = into_tokens(
            login(&mut client, "ada@example.com", PASSWORD)
                .await
                .unwrap(),
        );
        assert_eq!(tokens.token_type, "Bearer");
        let me = client
            .me(authed(pb::MeRequest {}, &tokens.access_token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.user.unwrap().email, "ada@example.com");

        // The access token verifies against the published JWKS.
        let jwks = client
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<_> = jwks
            .keys
            .into_iter()
            .map(tenantry_kit::auth::JwkKey::from)
            .collect();
        let claims = KeySet::from_jwks(&keys)
            .unwrap()
            .verify(
                &tokens.access_token,
                &Expectations::new("tenantry", "tenantry"),
                chrono::Utc::now().timestamp(),
            )
            .unwrap();
        assert_eq!(format!("users/{}", claims.sub), tokens.user);

        // Refresh rotates the token; presenting the old one again ends the session.
        let first_refresh = tokens.refresh_token.clone();
        let rotated = client
            .refresh(pb::RefreshRequest {
                refresh_token: first_refresh.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap();
        assert_ne!(rotated.refresh_token, first_refresh);
        let replay = client
            .refresh(pb::RefreshRequest {
                refresh_token: first_refresh,
            })
            .await
            .unwrap_err();
        assert_eq!(replay.code(), Code::Unauthenticated);
        let after_reuse = client
            .refresh(pb::RefreshRequest {
                refresh_token: rotated.refresh_token.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            after_reuse.code(),
            Code::Unauthenticated,
            "the whole family is revoked"
        );
        let revoked_me = client
            .me(authed(pb::MeRequest {}, &rotated.access_token))
            .await
            .unwrap_err();
        assert_eq!(revoked_me.code(), Code::Unauthenticated);

        // A new sign-in, then logout ends that session.
        let tokens = into_tokens(
            login(&mut client, "ada@example.com", PASSWORD)
                .await
                .unwrap(),
        );
        client
            .logout(authed(
                pb::LogoutRequest {
                    refresh_token: String::new(),
                },
                &tokens.access_token,
            ))
            .await
            .unwrap();
        let after_logout = client
            .refresh(pb::RefreshRequest {
                refresh_token: tokens.refresh_token,
            })
            .await
            .unwrap_err();
        assert_eq!(after_logout.code(), Code::Unauthenticated);

        let events = event_types(&sandbox).await;
        for expected in [
            "identity.user.signed_up",
            "identity.user.email_verification_requested",
            "identity.user.email_verified",
            "identity.login.succeeded",
            "identity.session.revoked",
        ] {
            assert!(
                events.iter().any(|e| e == expected),
                "{expected} missing from {events:?}"
            );
        }
        sandbox.shutdown().await.unwrap();
    }
}

/// The mails of `kind` to `to` in the sandbox's mail directory.
fn mails_to(sandbox: &Sandbox, to: &str, kind: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sandbox.database.dir().join("mail")) else {
        return Vec::new();
    };
    let mut mails: Vec<(std::path::PathBuf, String)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().contains(kind))
        .filter_map(|path| Some((path.clone(), std::fs::read_to_string(path).ok()?)))
        .filter(|(_, text)| text.lines().any(|line| line == format!("To: {to}")))
        .collect();
    mails.sort();
    mails.into_iter().map(|(_, text)| text).collect()
}

#[tokio::test]
async fn a_sign_up_proves_the_address_first_and_tells_no_one_who_has_an_account() {
    for storage in storages() {
        // The default: nothing exists until the mailed link is used.
        let sandbox = Sandbox::builder()
            .storage(storage)
            .configure(|config| config.identity.verify_before_sign_in = true)
            .start()
            .await
            .unwrap();
        let mut client = Client::new(sandbox.channel().await.unwrap());
        let request = |password: &str| pb::SignUpRequest {
            email: "Ada@Example.com".into(),
            password: password.into(),
            display_name: "Ada Lovelace".into(),
            organization_display_name: "Analytical Engines".into(),
            ..Default::default()
        };
        let users = "SELECT COUNT(*) FROM identity_users";
        let events_at_start = event_types(&sandbox).await;
        let fresh = client
            .sign_up(request(PASSWORD))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            fresh,
            pb::SignUpResponse {
                verification_required: true,
                ..Default::default()
            }
        );
        assert_eq!(
            count(&sandbox, users).await,
            0,
            "no account before the link"
        );
        assert_eq!(event_types(&sandbox).await, events_at_start);
        let status = login(&mut client, "ada@example.com", PASSWORD)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);

        // A second sign-up for the same address (someone else, or Ada
        // again): whichever link is used first makes the account, and the
        // other link stops working.
        let first_link = sandbox
            .mail_token("ada@example.com", "verify_email")
            .unwrap();
        let second_password = "a second horse battery staple";
        client.sign_up(request(second_password)).await.unwrap();
        let second_link = sandbox
            .mail_token("ada@example.com", "verify_email")
            .unwrap();
        assert_ne!(first_link, second_link);
        let verified = client
            .verify_email(pb::VerifyEmailRequest {
                token: second_link.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let user = verified.user.unwrap();
        assert_eq!(user.email, "ada@example.com");
        assert!(user.email_verified);
        let tokens = verified.tokens.unwrap();
        assert!(verified.organization.starts_with("organizations/"));
        let me = client
            .me(authed(pb::MeRequest {}, &tokens.access_token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.user.unwrap().name, user.name);
        assert_eq!(me.active_organization, verified.organization);
        for used in [first_link, second_link] {
            let status = client
                .verify_email(pb::VerifyEmailRequest { token: used })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
        let status = login(&mut client, "ada@example.com", PASSWORD)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "the other link's password"
        );
        login(&mut client, "ada@example.com", second_password)
            .await
            .unwrap();

        // A sign-up for the taken address answers exactly as for a new one;
        // the owner gets a mail saying so, with no link, and nothing changes.
        let users_before = count(&sandbox, users).await;
        let events_before = event_types(&sandbox).await;
        let taken = client
            .sign_up(request("an attacker's horse battery staple"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(taken, fresh);
        let notes = mails_to(&sandbox, "ada@example.com", "account_exists");
        assert_eq!(notes.len(), 1);
        assert!(!notes[0].contains("token:"), "{}", notes[0]);
        assert_eq!(count(&sandbox, users).await, users_before);
        assert_eq!(event_types(&sandbox).await, events_before);
        assert_eq!(
            mails_to(&sandbox, "ada@example.com", "verify_email").len(),
            2,
            "no link for a taken address"
        );
        login(&mut client, "ada@example.com", second_password)
            .await
            .unwrap();

        // Bad input is still refused in words, before anything is stored.
        let status = client.sign_up(request("short")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(count(&sandbox, users).await, users_before);
        sandbox.shutdown().await.unwrap();
    }
}

/// The projects of an organization, as its member lists them.
async fn projects(
    channel: &tonic::transport::Channel,
    token: &str,
    org: &str,
) -> Vec<org_pb::Project> {
    org_pb::project_service_client::ProjectServiceClient::new(channel.clone())
        .list_projects(authed(
            org_pb::ListProjectsRequest {
                parent: org.to_string(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .projects
}

#[tokio::test]
async fn a_first_organization_starts_with_its_default_project() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        let channel = sandbox.channel().await.unwrap();
        let signed_up = sign_up(&mut client, "ada@example.com").await;
        let token = signed_up.tokens.unwrap().access_token;
        let ada = signed_up.user.unwrap().name;
        let org = signed_up.organization;

        // Made with the organization: named by the installation, with the
        // default environments, readable by its owner at once, and counted
        // by the plan like any project.
        let listed = projects(&channel, &token, &org).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        let main = &listed[0];
        assert_eq!(
            (main.display_name.as_str(), main.slug.as_str()),
            ("main", "main")
        );
        // Made by the user themself (identity acts with a token of theirs),
        // so the audit log shows them, not a service.
        assert_eq!(main.created_by, ada);
        let environments =
            org_pb::project_service_client::ProjectServiceClient::new(channel.clone())
                .list_environments(authed(
                    org_pb::ListEnvironmentsRequest {
                        parent: main.name.clone(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner()
                .environments;
        let mut slugs: Vec<&str> = environments.iter().map(|e| e.slug.as_str()).collect();
        slugs.sort();
        assert_eq!(slugs, ["dev", "production", "staging"]);
        let answer = authz_pb::authorization_service_client::AuthorizationServiceClient::new(
            channel.clone(),
        )
        .check_permission(authed(
            authz_pb::CheckPermissionRequest {
                resource: Some(authz_pb::ObjectReference {
                    object_type: "project".into(),
                    object_id: main.name.rsplit('/').next().unwrap().into(),
                }),
                permission: "project.manage".into(),
                subject: Some(authz_pb::SubjectReference {
                    object: Some(authz_pb::ObjectReference {
                        object_type: "user".into(),
                        object_id: ada.trim_start_matches("users/").into(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
        assert_eq!(answer.permissionship(), authz_pb::Permissionship::Allowed);
        let usage = billing_pb::usage_service_client::UsageServiceClient::new(channel.clone())
            .get_usage(authed(
                billing_pb::GetUsageRequest {
                    organization: org.clone(),
                    metric: billing_pb::Metric::Projects as i32,
                    period_time: None,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .usages
            .remove(0);
        assert_eq!(usage.own_quantity, 1);

        // Any organization may ask for it; a replay answers the same
        // organization and the same project, not a second one.
        let mut organizations =
            org_pb::organization_service_client::OrganizationServiceClient::new(channel.clone());
        let request = || org_pb::CreateOrganizationRequest {
            organization: Some(org_pb::Organization {
                display_name: "Second".into(),
                ..Default::default()
            }),
            request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a51".into(),
            with_default_project: true,
        };
        let first = organizations
            .create_organization(authed(request(), &token))
            .await
            .unwrap()
            .into_inner();
        let again = organizations
            .create_organization(authed(request(), &token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first, again);
        let second = first.organization.unwrap().name;
        let made = first.default_project.unwrap();
        assert!(made.name.starts_with(&format!("{second}/projects/")));
        assert_eq!(projects(&channel, &token, &second).await, vec![made]);
        sandbox.shutdown().await.unwrap();

        // An installation without one: nothing is made.
        let sandbox = Sandbox::builder()
            .storage(storage)
            .configure(|config| config.organization.default_project = String::new())
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let mut client = Client::new(channel.clone());
        let signed_up = sign_up(&mut client, "bob@example.com").await;
        let token = signed_up.tokens.unwrap().access_token;
        assert_eq!(
            projects(&channel, &token, &signed_up.organization).await,
            vec![]
        );
        sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn every_service_rejects_unauthenticated_calls() {
    let (sandbox, mut identity) = sandbox(Storage::Sqlite).await;
    let channel = sandbox.channel().await.unwrap();
    let mut statuses = vec![
        identity.me(pb::MeRequest {}).await.unwrap_err(),
        org_pb::organization_service_client::OrganizationServiceClient::new(channel.clone())
            .list_organizations(org_pb::ListOrganizationsRequest::default())
            .await
            .unwrap_err(),
        rbac_pb::membership_service_client::MembershipServiceClient::new(channel.clone())
            .list_memberships(rbac_pb::ListMembershipsRequest::default())
            .await
            .unwrap_err(),
        authz_pb::authorization_service_client::AuthorizationServiceClient::new(channel.clone())
            .check_permission(authz_pb::CheckPermissionRequest::default())
            .await
            .unwrap_err(),
        billing_pb::plan_service_client::PlanServiceClient::new(channel.clone())
            .list_plans(billing_pb::ListPlansRequest::default())
            .await
            .unwrap_err(),
        audit_pb::audit_service_client::AuditServiceClient::new(channel.clone())
            .list_audit_events(audit_pb::ListAuditEventsRequest::default())
            .await
            .unwrap_err(),
    ];
    // A header a proxy might set proves nothing.
    let mut spoofed = tonic::Request::new(pb::MeRequest {});
    spoofed.metadata_mut().insert(
        "x-user-id",
        "0190c2a4-0000-7000-8000-000000000000".parse().unwrap(),
    );
    statuses.push(identity.me(spoofed).await.unwrap_err());
    for status in statuses {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    sandbox.shutdown().await.unwrap();
}

fn claims_for(sub: &str, exp_offset: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: "tenantry".into(),
        aud: "tenantry".into(),
        sub: sub.into(),
        sid: None,
        org: None,
        iat: now,
        exp: now + exp_offset,
        nbf: None,
        jti: "j".into(),
        amr: vec!["pwd".into()],
        kind: PrincipalKind::User,
        perms: None,
        team: None,
        mfa_pending: false,
        name: None,
    }
}

#[tokio::test]
async fn forged_expired_and_unsigned_tokens_are_rejected() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let signed_up = sign_up(&mut client, "eve@example.com").await;
    let real = signed_up.tokens.unwrap().access_token;
    let user_id = signed_up
        .user
        .unwrap()
        .name
        .trim_start_matches("users/")
        .to_string();
    let real_kid = {
        let header = real.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_string()
    };

    // Signed by a key of our own that claims the real key id.
    let forged = SigningKey::from_seed(real_kid, [9; 32]).sign(&claims_for(&user_id, 600));
    // alg=none with no signature.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims_for(&user_id, 600)).unwrap());
    let unsigned = format!("{header}.{payload}.");
    // A tampered payload on a real token.
    let mut parts: Vec<String> = real.split('.').map(str::to_string).collect();
    parts[1] = payload.clone();
    let tampered = parts.join(".");
    // A real key would be needed for a truly expired token; an unknown key
    // with an expired claim must fail too.
    let expired = SigningKey::generate().sign(&claims_for(&user_id, -3600));

    for token in [
        forged,
        unsigned,
        tampered,
        expired,
        "garbage".to_string(),
        String::new(),
    ] {
        let status = client
            .me(authed(pb::MeRequest {}, &token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "token {token:?}");
    }
    // The real token still works.
    client.me(authed(pb::MeRequest {}, &real)).await.unwrap();
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same_and_are_throttled() {
    let (sandbox, mut client) = Sandbox::builder()
        .configure(|config| {
            config.identity.throttle.free_attempts_per_account = 3;
            config.identity.throttle.backoff_base_ms = 60_000;
        })
        .start()
        .await
        .map(|sandbox| async move {
            let client = Client::new(sandbox.channel().await.unwrap());
            (sandbox, client)
        })
        .unwrap()
        .await;
    sign_up(&mut client, "grace@example.com").await;

    let unknown = login(&mut client, "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    let wrong = login(&mut client, "grace@example.com", "not the password at all")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(wrong.code(), unknown.code());
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(
        wrong.get_details_error_info().unwrap().reason,
        unknown.get_details_error_info().unwrap().reason
    );

    // Two more failures reach the free attempts; the next is throttled, even
    // with the right password, and says when to retry.
    for _ in 0..2 {
        login(&mut client, "grace@example.com", "still not it, sorry")
            .await
            .unwrap_err();
    }
    let throttled = login(&mut client, "grace@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    let retry = throttled
        .get_details_retry_info()
        .and_then(|r| r.retry_delay);
    assert!(retry.is_some_and(|d| d.as_secs() >= 1), "{retry:?}");
    // Unknown accounts are throttled the same way.
    for _ in 0..3 {
        login(&mut client, "nobody@example.com", PASSWORD)
            .await
            .unwrap_err();
    }
    let throttled_unknown = login(&mut client, "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(throttled_unknown.code(), Code::ResourceExhausted);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_sign_ups_are_refused_and_write_nothing() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        sign_up(&mut client, "taken@example.com").await;
        let users_before = count(&sandbox, "SELECT COUNT(*) FROM identity_users").await;
        let events_before = count(
            &sandbox,
            "SELECT COUNT(*) FROM tenantry_outbox WHERE service = 'identity'",
        )
        .await;

        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_name = "x".repeat(201);
        let cases: Vec<(&str, &str, &str, Code, &str)> = vec![
            (
                "not-an-email",
                PASSWORD,
                "A",
                Code::InvalidArgument,
                "email",
            ),
            ("a@b", PASSWORD, "A", Code::InvalidArgument, "email"),
            (
                "аdmin@example.com",
                PASSWORD,
                "A",
                Code::InvalidArgument,
                "email",
            ), // Cyrillic а
            (
                "a b@example.com",
                PASSWORD,
                "A",
                Code::InvalidArgument,
                "email",
            ),
            (&long_local, PASSWORD, "A", Code::InvalidArgument, "email"),
            (
                "ok@example.com",
                "short",
                "A",
                Code::InvalidArgument,
                "password",
            ),
            (
                "ok@example.com",
                "password1234",
                "A",
                Code::InvalidArgument,
                "password",
            ),
            (
                "ok@example.com",
                "ok@example.com",
                "A",
                Code::InvalidArgument,
                "password",
            ),
            (
                "ok@example.com",
                "P@ssw0rd1234",
                "A",
                Code::InvalidArgument,
                "password",
            ),
            (
                "ok@example.com",
                "letmein12345",
                "A",
                Code::InvalidArgument,
                "password",
            ),
            (
                "ok@example.com",
                PASSWORD,
                "",
                Code::InvalidArgument,
                "display_name",
            ),
            (
                "ok@example.com",
                PASSWORD,
                &long_name,
                Code::InvalidArgument,
                "display_name",
            ),
            ("TAKEN@example.com", PASSWORD, "A", Code::AlreadyExists, ""),
        ];
        for (email, password, name, code, field) in cases {
            let status = client
                .sign_up(pb::SignUpRequest {
                    email: email.into(),
                    password: password.into(),
                    display_name: name.into(),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(status.code(), code, "{email} / {name}");
            if !field.is_empty() {
                // The message alone names the field, for grpcurl and curl.
                assert!(status.message().contains(field), "{}", status.message());
                let violations = status.get_details_bad_request().unwrap().field_violations;
                assert!(
                    violations.iter().any(|v| v.field == field),
                    "{email}: {violations:?}"
                );
            }
        }
        let oversized = "p".repeat(5000);
        let status = client
            .sign_up(pb::SignUpRequest {
                email: "ok@example.com".into(),
                password: oversized,
                display_name: "A".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);

        assert_eq!(
            count(&sandbox, "SELECT COUNT(*) FROM identity_users").await,
            users_before
        );
        assert_eq!(
            count(
                &sandbox,
                "SELECT COUNT(*) FROM tenantry_outbox WHERE service = 'identity'"
            )
            .await,
            events_before
        );
        sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn password_reset_is_single_use_and_ends_every_session() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        let signed_up = sign_up(&mut client, "ken@example.com").await;
        let old = signed_up.tokens.unwrap();

        // Unknown addresses get the same empty answer.
        client
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: "nobody@example.com".into(),
            })
            .await
            .unwrap();
        client
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: "ken@example.com".into(),
            })
            .await
            .unwrap();
        let token = sandbox
            .mail_token("ken@example.com", "reset_password")
            .expect("reset mail");
        let new_password = "a completely new passphrase";
        client
            .reset_password(pb::ResetPasswordRequest {
                token: token.clone(),
                new_password: new_password.into(),
            })
            .await
            .unwrap();
        let reused = client
            .reset_password(pb::ResetPasswordRequest {
                token,
                new_password: "yet another passphrase!".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(reused.code(), Code::InvalidArgument);
        let bogus = client
            .reset_password(pb::ResetPasswordRequest {
                token: "x".repeat(43),
                new_password: new_password.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(bogus.code(), Code::InvalidArgument);

        let old_refresh = client
            .refresh(pb::RefreshRequest {
                refresh_token: old.refresh_token,
            })
            .await
            .unwrap_err();
        assert_eq!(
            old_refresh.code(),
            Code::Unauthenticated,
            "sessions end on reset"
        );
        login(&mut client, "ken@example.com", PASSWORD)
            .await
            .unwrap_err();
        into_tokens(
            login(&mut client, "ken@example.com", new_password)
                .await
                .unwrap(),
        );
        sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn totp_enrollment_mfa_login_and_recovery_codes() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        let signed_up = sign_up(&mut client, "mfa@example.com").await;
        let access = signed_up.tokens.unwrap().access_token;

        let enrollment = client
            .enroll_totp(authed(pb::EnrollTotpRequest {}, &access))
            .await
            .unwrap()
            .into_inner();
        assert!(enrollment.otpauth_uri.starts_with("otpauth://totp/"));
        assert_eq!(enrollment.digits, 6);
        let secret = totp::TotpSecret::from_base32(&enrollment.secret).unwrap();
        let now = chrono::Utc::now().timestamp();
        let wrong = client
            .confirm_totp(authed(
                pb::ConfirmTotpRequest {
                    code: "000000".into(),
                },
                &access,
            ))
            .await;
        if totp::code_at(&secret, now) != "000000" {
            assert_eq!(wrong.unwrap_err().code(), Code::InvalidArgument);
        }
        let confirmed = client
            .confirm_totp(authed(
                pb::ConfirmTotpRequest {
                    code: totp::code_at(&secret, now),
                },
                &access,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(confirmed.recovery_codes.len(), 10);
        assert!(confirmed.user.unwrap().mfa_enabled);

        // Sign-in now asks for the second factor.
        let challenge = match login(&mut client, "mfa@example.com", PASSWORD)
            .await
            .unwrap()
            .result
        {
            Some(pb::login_response::Result::MfaChallenge(challenge)) => challenge,
            other => panic!("expected an MFA challenge, got {other:?}"),
        };
        let bad = client
            .complete_mfa_login(pb::CompleteMfaLoginRequest {
                mfa_token: challenge.mfa_token.clone(),
                factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(
                    "aaaa-aaaa-aaaa-aaaa".into(),
                )),
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::Unauthenticated);
        let code = confirmed.recovery_codes[0].clone();
        let signed_in = client
            .complete_mfa_login(pb::CompleteMfaLoginRequest {
                mfa_token: challenge.mfa_token.clone(),
                factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(
                    code.clone(),
                )),
            })
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap();
        assert!(signed_in.mfa_authenticated);
        // The challenge and the recovery code are both single-use.
        let replay = client
            .complete_mfa_login(pb::CompleteMfaLoginRequest {
                mfa_token: challenge.mfa_token,
                factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(
                    code.clone(),
                )),
            })
            .await
            .unwrap_err();
        assert_eq!(replay.code(), Code::InvalidArgument);
        let second = match login(&mut client, "mfa@example.com", PASSWORD)
            .await
            .unwrap()
            .result
        {
            Some(pb::login_response::Result::MfaChallenge(challenge)) => challenge,
            other => panic!("expected an MFA challenge, got {other:?}"),
        };
        let used_code = client
            .complete_mfa_login(pb::CompleteMfaLoginRequest {
                mfa_token: second.mfa_token,
                factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(code)),
            })
            .await
            .unwrap_err();
        assert_eq!(used_code.code(), Code::Unauthenticated);

        // Disabling needs the password.
        let refused = client
            .disable_totp(authed(
                pb::DisableTotpRequest {
                    current_password: "wrong password!!".into(),
                },
                &signed_in.access_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
        let disabled = client
            .disable_totp(authed(
                pb::DisableTotpRequest {
                    current_password: PASSWORD.into(),
                },
                &signed_in.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!disabled.user.unwrap().mfa_enabled);
        sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn users_list_and_revoke_their_own_sessions_only() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let first = sign_up(&mut client, "sam@example.com")
        .await
        .tokens
        .unwrap();
    let second = into_tokens(
        login(&mut client, "sam@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let other = sign_up(&mut client, "other@example.com")
        .await
        .tokens
        .unwrap();

    let sessions = client
        .list_sessions(authed(
            pb::ListSessionsRequest {
                parent: "users/me".into(),
                ..Default::default()
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s.current).count(), 1);

    // Another user's session is NOT_FOUND, not PERMISSION_DENIED.
    let foreign = client
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                name: second.session.clone(),
            },
            &other.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    client
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                name: second.session.clone(),
            },
            &first.access_token,
        ))
        .await
        .unwrap();
    let ended = client
        .me(authed(pb::MeRequest {}, &second.access_token))
        .await
        .unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated);
    client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap();
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn password_changes_need_the_current_password_and_end_other_sessions() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let first = sign_up(&mut client, "pat@example.com")
        .await
        .tokens
        .unwrap();
    let second = into_tokens(
        login(&mut client, "pat@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let wrong = client
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: "nope nope nope".into(),
                new_password: "brand new passphrase".into(),
            },
            &first.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let changed = client
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "brand new passphrase".into(),
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    // The other session ended; the caller's own stays.
    assert_eq!(changed.revoked_session_count, 1);
    client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap();
    let other = client
        .me(authed(pb::MeRequest {}, &second.access_token))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::Unauthenticated);
    sandbox.shutdown().await.unwrap();
}

async fn admin_sandbox() -> (Sandbox, Client) {
    let sandbox = Sandbox::builder()
        .configure(|config| config.identity.platform_admins = vec!["root@example.com".into()])
        .start()
        .await
        .unwrap();
    let client = Client::new(sandbox.channel().await.unwrap());
    (sandbox, client)
}

#[tokio::test]
async fn platform_admins_manage_users_and_others_cannot() {
    let (sandbox, mut client) = admin_sandbox().await;
    let root = sign_up(&mut client, "root@example.com").await;
    assert!(root.user.unwrap().platform_admin);
    let admin = root.tokens.unwrap().access_token;
    let member = sign_up(&mut client, "member@example.com").await;
    let member_user = member.user.unwrap();
    let member_token = member.tokens.unwrap().access_token;

    // A regular user may not list users, and another user's id is NOT_FOUND.
    let denied = client
        .list_users(authed(pb::ListUsersRequest::default(), &member_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let hidden = client
        .get_user(authed(
            pb::GetUserRequest {
                name: "users/me".into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let foreign = client
        .get_user(authed(
            pb::GetUserRequest {
                name: hidden.name.clone(),
            },
            &member_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    // Pages of one, with tokens bound to the query.
    let first = client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size: 1,
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.users.len(), 1);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.users.len(), 1);
    assert_ne!(second.users[0].name, first.users[0].name);
    let other_query = client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size: 1,
                page_token: first.next_page_token,
                email: "m".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(other_query.code(), Code::InvalidArgument);

    // A stale etag is ABORTED and changes nothing.
    let stale = client
        .disable_user(authed(
            pb::DisableUserRequest {
                name: member_user.name.clone(),
                etag: "\"999\"".into(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    client
        .me(authed(pb::MeRequest {}, &member_token))
        .await
        .unwrap();

    // Disabling ends the member's sessions and sign-ins.
    client
        .disable_user(authed(
            pb::DisableUserRequest {
                name: member_user.name.clone(),
                etag: member_user.etag.clone(),
            },
            &admin,
        ))
        .await
        .unwrap();
    assert_eq!(
        client
            .me(authed(pb::MeRequest {}, &member_token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        login(&mut client, "member@example.com", PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    client
        .enable_user(authed(
            pb::EnableUserRequest {
                name: member_user.name.clone(),
                etag: String::new(),
            },
            &admin,
        ))
        .await
        .unwrap();
    into_tokens(
        login(&mut client, "member@example.com", PASSWORD)
            .await
            .unwrap(),
    );

    // Soft delete and undelete.
    client
        .delete_user(authed(
            pb::DeleteUserRequest {
                name: member_user.name.clone(),
                etag: String::new(),
            },
            &admin,
        ))
        .await
        .unwrap();
    login(&mut client, "member@example.com", PASSWORD)
        .await
        .unwrap_err();
    let restored = client
        .undelete_user(authed(
            pb::UndeleteUserRequest {
                name: member_user.name.clone(),
                etag: String::new(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(restored.state, pb::UserState::Active as i32);
    into_tokens(
        login(&mut client, "member@example.com", PASSWORD)
            .await
            .unwrap(),
    );

    // The bootstrap path grants the role straight in the database.
    let db = sandbox.database.connect().await.unwrap();
    let granted = tenantry_identity::admin::grant_platform_admin(&db, "member@example.com")
        .await
        .unwrap();
    assert!(granted.platform_admin);
    let missing = tenantry_identity::admin::grant_platform_admin(&db, "ghost@example.com")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tenantry_kit::Code::NotFound);
    db.close().await;
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn service_accounts_sign_in_with_client_credentials() {
    type Accounts =
        pb::service_account_service_client::ServiceAccountServiceClient<tonic::transport::Channel>;
    let (sandbox, mut client) = admin_sandbox().await;
    let admin = sign_up(&mut client, "root@example.com")
        .await
        .tokens
        .unwrap()
        .access_token;
    let member = sign_up(&mut client, "dev@example.com")
        .await
        .tokens
        .unwrap()
        .access_token;
    let mut accounts = Accounts::new(sandbox.channel().await.unwrap());

    let denied = accounts
        .create_service_account(authed(
            pb::CreateServiceAccountRequest {
                service_account: Some(pb::ServiceAccount {
                    display_name: "deployer".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &member,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Creates are idempotent by request id: a replay answers the first
    // account, and the first credential without its secret.
    let create_account = || {
        let mut accounts = accounts.clone();
        let admin = admin.clone();
        async move {
            accounts
                .create_service_account(authed(
                    pb::CreateServiceAccountRequest {
                        service_account: Some(pb::ServiceAccount {
                            display_name: "deployer".into(),
                            ..Default::default()
                        }),
                        request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a52".into(),
                    },
                    &admin,
                ))
                .await
                .unwrap()
                .into_inner()
                .service_account
                .unwrap()
        }
    };
    let account = create_account().await;
    assert_eq!(create_account().await.name, account.name);
    let create_credential = || {
        let mut accounts = accounts.clone();
        let (admin, parent) = (admin.clone(), account.name.clone());
        async move {
            accounts
                .create_service_account_credential(authed(
                    pb::CreateServiceAccountCredentialRequest {
                        parent,
                        credential: Some(pb::ServiceAccountCredential {
                            display_name: "ci".into(),
                            ..Default::default()
                        }),
                        request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a53".into(),
                    },
                    &admin,
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let created = create_credential().await;
    assert!(created.client_secret.starts_with("tsa_"));
    let replayed = create_credential().await;
    assert!(
        replayed.client_secret.is_empty(),
        "the secret is shown once"
    );
    assert_eq!(replayed.credential, created.credential);
    let credential = created.credential.clone().unwrap();
    assert_eq!(credential.display_name, "ci");
    assert!(credential.created_by.starts_with("users/"));
    let listed = accounts
        .list_service_account_credentials(authed(
            pb::ListServiceAccountCredentialsRequest {
                parent: account.name.clone(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .credentials;
    assert_eq!(listed.len(), 1, "one credential for the two calls");

    let issued = accounts
        .issue_service_account_token(pb::IssueServiceAccountTokenRequest {
            client_id: credential.client_id.clone(),
            client_secret: created.client_secret.clone(),
            organization: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(issued.service_account, account.name);
    let jwks = client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = jwks
        .keys
        .into_iter()
        .map(tenantry_kit::auth::JwkKey::from)
        .collect();
    let claims = KeySet::from_jwks(&keys)
        .unwrap()
        .verify(
            &issued.access_token,
            &Expectations::new("tenantry", "tenantry"),
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    assert_eq!(claims.kind, PrincipalKind::ServiceAccount);
    // The account says when it was last used.
    let used = accounts
        .get_service_account(authed(
            pb::GetServiceAccountRequest {
                name: account.name.clone(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    assert!(used.last_used_time.is_some());
    // A machine token is authenticated but is not a user.
    let not_user = client
        .me(authed(pb::MeRequest {}, &issued.access_token))
        .await
        .unwrap_err();
    assert_eq!(not_user.code(), Code::PermissionDenied);

    // Wrong secret, a typo (checksum) and a foreign client id all look alike.
    let mut typo = created.client_secret.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let (other_parts, other_secret) = tenantry_identity::secrets::new_client_secret();
    for (client_id, secret) in [
        (credential.client_id.clone(), typo),
        (credential.client_id.clone(), other_secret.clone()),
        (other_parts.id.clone(), other_secret),
        (credential.client_id.clone(), String::new()),
    ] {
        let status = accounts
            .issue_service_account_token(pb::IssueServiceAccountTokenRequest {
                client_id,
                client_secret: secret,
                organization: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }

    // A deleted credential stops working.
    accounts
        .delete_service_account_credential(authed(
            pb::DeleteServiceAccountCredentialRequest {
                name: credential.name.clone(),
            },
            &admin,
        ))
        .await
        .unwrap();
    let revoked = accounts
        .issue_service_account_token(pb::IssueServiceAccountTokenRequest {
            client_id: credential.client_id,
            client_secret: created.client_secret,
            organization: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);

    // Deleting with a stale etag changes nothing; with the current one it
    // goes.
    let stale = accounts
        .delete_service_account(authed(
            pb::DeleteServiceAccountRequest {
                name: account.name.clone(),
                etag: "\"1\"".into(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    accounts
        .delete_service_account(authed(
            pb::DeleteServiceAccountRequest {
                name: account.name.clone(),
                etag: used.etag.clone(),
            },
            &admin,
        ))
        .await
        .unwrap();
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn email_changes_take_effect_when_the_new_address_is_verified() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let access = sign_up(&mut client, "old@example.com")
        .await
        .tokens
        .unwrap()
        .access_token;
    sign_up(&mut client, "taken2@example.com").await;
    let wrong = client
        .change_email(authed(
            pb::ChangeEmailRequest {
                current_password: "wrong password!".into(),
                new_email: "new@example.com".into(),
            },
            &access,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let taken = client
        .change_email(authed(
            pb::ChangeEmailRequest {
                current_password: PASSWORD.into(),
                new_email: "taken2@example.com".into(),
            },
            &access,
        ))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    let pending = client
        .change_email(authed(
            pb::ChangeEmailRequest {
                current_password: PASSWORD.into(),
                new_email: "New@Example.com".into(),
            },
            &access,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(pending.email, "old@example.com");
    assert_eq!(pending.pending_email, "new@example.com");
    let token = sandbox
        .mail_token("new@example.com", "verify_email")
        .unwrap();
    let user = client
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.email, "new@example.com");
    assert!(user.email_verified);
    // The event records the change, before and after, for audit.
    let db = sandbox.database.connect().await.unwrap();
    let payload: Vec<u8> = sqlx::query(
        "SELECT payload FROM tenantry_outbox WHERE subject = 'tenantry.events.identity.identity.user.email_changed'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap()
    .get(0);
    db.close().await;
    let event =
        <tenantry_proto::tenantry::events::v1::Event as prost::Message>::decode(payload.as_slice())
            .unwrap();
    assert_eq!(event.changes.len(), 1);
    assert_eq!(event.changes[0].field, "email");
    assert_eq!(event.changes[0].before, "old@example.com");
    assert_eq!(event.changes[0].after, "new@example.com");
    assert!(event.sequence > 1, "the user's earlier events come first");
    into_tokens(
        login(&mut client, "new@example.com", PASSWORD)
            .await
            .unwrap(),
    );

    // Switching to an organization the user is not a member of is NOT_FOUND.
    let stranger = client
        .switch_organization(authed(
            pb::SwitchOrganizationRequest {
                organization: format!("organizations/{}", tenantry_kit::id::new_id()),
            },
            &access,
        ))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn verification_mail_goes_through_an_smtp_relay_when_configured() {
    let sink = tenantry_testkit::smtp::SmtpSink::start().await.unwrap();
    let port = sink.port;
    let sandbox = Sandbox::builder()
        .configure(move |config| {
            config.identity.mailer.kind = tenantry_identity::mailer::MailerKind::Smtp;
            config.identity.mailer.smtp.host = "127.0.0.1".into();
            config.identity.mailer.smtp.port = port;
            config.identity.mailer.smtp.tls = tenantry_identity::mailer::SmtpTls::None;
        })
        .start()
        .await
        .unwrap();
    let mut client = Client::new(sandbox.channel().await.unwrap());
    sign_up(&mut client, "smtp@example.com").await;
    let message = sink
        .last_to("smtp@example.com")
        .expect("a message reached the relay");
    assert!(
        message.contains("Subject: Verify your email address"),
        "{message}"
    );
    let token = message
        .lines()
        .find_map(|line| line.trim().strip_prefix("token: "))
        .expect("the token is in the message")
        .to_string();
    let user = client
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(user.email_verified);
    sandbox.shutdown().await.unwrap();
}

#[test]
fn plaintext_smtp_is_refused_for_remote_relays() {
    use tenantry_identity::mailer::{MailerKind, MailerOptions, SmtpOptions, SmtpTls};
    let mut options = MailerOptions {
        kind: MailerKind::Smtp,
        smtp: SmtpOptions {
            host: "mail.example.com".into(),
            tls: SmtpTls::None,
            ..SmtpOptions::default()
        },
        ..MailerOptions::default()
    };
    let error = options.validate("identity.mailer").unwrap_err().to_string();
    assert!(error.contains("identity.mailer.smtp.tls"), "{error}");
    options.smtp.tls = tenantry_identity::mailer::SmtpTls::Starttls;
    options.validate("identity.mailer").unwrap();
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_or_all_but_the_current_one() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let first = sign_up(&mut client, "many@example.com")
        .await
        .tokens
        .unwrap();
    let second = into_tokens(
        login(&mut client, "many@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let third = into_tokens(
        login(&mut client, "many@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let ended = client
        .logout_everywhere(authed(
            pb::LogoutEverywhereRequest {
                keep_current_session: true,
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.revoked_session_count, 2);
    client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap();
    for other in [&second, &third] {
        let status = client
            .me(authed(pb::MeRequest {}, &other.access_token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    client
        .logout_everywhere(authed(
            pb::LogoutEverywhereRequest {
                keep_current_session: false,
            },
            &first.access_token,
        ))
        .await
        .unwrap();
    let status = client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn signing_keys_rotate_and_old_tokens_keep_verifying() {
    use std::time::Duration;
    use tenantry_identity::keys::KeyRing;
    use tenantry_identity::store::Store;
    for storage in storages() {
        let database = tenantry_testkit::TestDatabase::new(storage).await.unwrap();
        let db = database.connect().await.unwrap();
        db.migrate(tenantry_identity::NAME, tenantry_identity::MIGRATIONS)
            .await
            .unwrap();
        let store = Store::new(db.clone());
        let rotation = Duration::from_secs(30 * 24 * 3600);
        let ttl = Duration::from_secs(900);
        let ring = KeyRing::load(store.clone(), rotation, ttl).await.unwrap();
        let old = ring.signing_key();
        let token = old.sign(&claims_for("user", 600));

        // The key ages past the rotation period (as if 31 days went by).
        let aged = tenantry_kit::db::now_micros() - 31 * 24 * 3_600_000_000;
        sqlx::query("UPDATE identity_signing_keys SET created_at_us = $1")
            .bind(aged)
            .execute(db.pool())
            .await
            .unwrap();
        ring.refresh().await.unwrap();
        let new = ring.signing_key();
        assert_ne!(new.kid(), old.kid(), "a new key signs");
        let published: Vec<String> = ring.published().iter().map(|k| k.kid.clone()).collect();
        assert!(published.contains(&new.kid().to_string()));
        assert!(
            published.contains(&old.kid().to_string()),
            "the old key is still published"
        );
        let keys = KeySet::from_jwks(&ring.published()).unwrap();
        keys.verify(
            &token,
            &Expectations::new("tenantry", "tenantry"),
            chrono::Utc::now().timestamp(),
        )
        .expect("tokens of the old key still verify");
        // Another replica loading the same table agrees on the signing key.
        let replica = KeyRing::load(store, rotation, ttl).await.unwrap();
        assert_eq!(replica.signing_key().kid(), new.kid());
        db.close().await;
    }
}

/// The stored TOTP secrets of every user, as stored.
async fn stored_totp(sandbox: &Sandbox) -> Vec<String> {
    let db = sandbox.database.connect().await.unwrap();
    let rows = sqlx::query(
        "SELECT COALESCE(totp_secret, pending_totp_secret) FROM identity_users
         WHERE totp_secret IS NOT NULL OR pending_totp_secret IS NOT NULL ORDER BY email",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    db.close().await;
    rows.iter().map(|row| row.get::<String, _>(0)).collect()
}

fn sealing(
    keys: &[(&str, u8)],
    current: &str,
) -> impl FnOnce(&mut tenantry::config::Config) + Send + 'static {
    let keys: std::collections::BTreeMap<String, String> = keys
        .iter()
        .map(|(id, byte)| (id.to_string(), format!("{byte:02x}").repeat(32)))
        .collect();
    let current = current.to_string();
    move |config| {
        config.sealing_keys = keys;
        config.sealing_key_id = Some(current);
    }
}

#[tokio::test]
async fn totp_secrets_are_sealed_at_rest_and_survive_a_key_rotation() {
    for storage in storages() {
        let sandbox = Sandbox::builder()
            .storage(storage)
            .configure(sealing(&[("k1", 1)], "k1"))
            .start()
            .await
            .unwrap();
        let mut client = Client::new(sandbox.channel().await.unwrap());
        // Ada enrolls and confirms; Bob only starts enrolling.
        let ada = sign_up(&mut client, "ada@example.com")
            .await
            .tokens
            .unwrap()
            .access_token;
        let bob = sign_up(&mut client, "bob@example.com")
            .await
            .tokens
            .unwrap()
            .access_token;
        let ada_secret = client
            .enroll_totp(authed(pb::EnrollTotpRequest {}, &ada))
            .await
            .unwrap()
            .into_inner()
            .secret;
        let now = chrono::Utc::now().timestamp();
        let ada_totp = totp::TotpSecret::from_base32(&ada_secret).unwrap();
        client
            .confirm_totp(authed(
                pb::ConfirmTotpRequest {
                    code: totp::code_at(&ada_totp, now),
                },
                &ada,
            ))
            .await
            .unwrap();
        let bob_secret = client
            .enroll_totp(authed(pb::EnrollTotpRequest {}, &bob))
            .await
            .unwrap()
            .into_inner()
            .secret;
        let stored = stored_totp(&sandbox).await;
        assert_eq!(stored.len(), 2);
        for (value, secret) in stored.iter().zip([&ada_secret, &bob_secret]) {
            assert!(value.starts_with("sealed:v1:k1:"), "{value}");
            assert!(
                !value.contains(secret.as_str()),
                "a secret is stored in clear"
            );
        }
        if storage == Storage::Sqlite {
            // The database file, its write-ahead log and anything beside.
            for entry in std::fs::read_dir(sandbox.database.dir()).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                assert!(!text.contains(&ada_secret) && !text.contains(&bob_secret));
            }
        }

        // Rotation: a new current key; every secret is sealed again at start.
        let stopped = sandbox.stop().await.unwrap();
        let sandbox = Sandbox::builder()
            .storage(storage)
            .resume(stopped)
            .configure(sealing(&[("k1", 1), ("k2", 2)], "k2"))
            .start()
            .await
            .unwrap();
        for value in stored_totp(&sandbox).await {
            assert!(value.starts_with("sealed:v1:k2:"), "{value}");
        }
        // The old key retired: both secrets still open.
        let stopped = sandbox.stop().await.unwrap();
        let sandbox = Sandbox::builder()
            .storage(storage)
            .resume(stopped)
            .configure(sealing(&[("k2", 2)], "k2"))
            .start()
            .await
            .unwrap();
        let mut client = Client::new(sandbox.channel().await.unwrap());
        let challenge = match login(&mut client, "ada@example.com", PASSWORD)
            .await
            .unwrap()
            .result
        {
            Some(pb::login_response::Result::MfaChallenge(challenge)) => challenge,
            other => panic!("expected an MFA challenge, got {other:?}"),
        };
        // The next step's code: the one used to confirm is spent.
        client
            .complete_mfa_login(pb::CompleteMfaLoginRequest {
                mfa_token: challenge.mfa_token,
                factor: Some(pb::complete_mfa_login_request::Factor::TotpCode(
                    totp::code_at(&ada_totp, now + 30),
                )),
            })
            .await
            .unwrap();
        let bob = into_tokens(
            login(&mut client, "bob@example.com", PASSWORD)
                .await
                .unwrap(),
        )
        .access_token;
        let bob_totp = totp::TotpSecret::from_base32(&bob_secret).unwrap();
        client
            .confirm_totp(authed(
                pb::ConfirmTotpRequest {
                    code: totp::code_at(&bob_totp, chrono::Utc::now().timestamp()),
                },
                &bob,
            ))
            .await
            .unwrap();
        sandbox.shutdown().await.unwrap();
    }
}
