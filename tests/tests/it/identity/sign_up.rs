//! Sign-up: verification, the first organization, and bad sign-ups that
//! write nothing.

use super::*;

#[tokio::test]
async fn sign_up_verify_login_me_refresh_reuse_logout() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        sign_up_normalizes_and_verification_is_single_use(&sandbox, &mut client).await;
        let tokens = a_login_reaches_me_and_verifies_against_the_jwks(&mut client).await;
        refresh_rotates_and_a_reuse_revokes_the_family(&mut client, &tokens).await;
        logout_ends_the_session_and_each_step_is_an_event(&sandbox, &mut client).await;
        sandbox.shutdown().await.unwrap();
    }
}

async fn sign_up_normalizes_and_verification_is_single_use(sandbox: &Sandbox, client: &mut Client) {
    let signed_up = sign_up(client, "Ada@Example.com").await;
    let user = signed_up.user.unwrap();
    assert_eq!(user.email, "ada@example.com", "emails are normalized");
    assert!(!user.email_verified);

    // A signed-in caller asks for the mail again without naming the
    // address; without a token the address is needed.
    let access = signed_up.tokens.clone().unwrap().access_token;
    let before = mails_to(sandbox, "ada@example.com", "verify_email").len();
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
        mails_to(sandbox, "ada@example.com", "verify_email").len(),
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
}

async fn a_login_reaches_me_and_verifies_against_the_jwks(client: &mut Client) -> pb::AuthTokens {
    let tokens = into_tokens(login(client, "ada@example.com", PASSWORD).await.unwrap());
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
    tokens
}

async fn refresh_rotates_and_a_reuse_revokes_the_family(
    client: &mut Client,
    tokens: &pb::AuthTokens,
) {
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
}

async fn logout_ends_the_session_and_each_step_is_an_event(sandbox: &Sandbox, client: &mut Client) {
    // A new sign-in, then logout ends that session.
    let tokens = into_tokens(login(client, "ada@example.com", PASSWORD).await.unwrap());
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

    let events = event_types(sandbox).await;
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
