//! Sign-up: verification, the first organization, and bad sign-ups that
//! write nothing.

use super::*;
use tenantry_testkit::check;
use tenantry_testkit::clients::{Orgs, Usage};
use tonic::transport::Channel;

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
    let tokens = people::tokens(login(client, "ada@example.com", PASSWORD).await.unwrap());
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
    let tokens = people::tokens(login(client, "ada@example.com", PASSWORD).await.unwrap());
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

/// Counts the accounts: none exists before its link is used.
const USERS: &str = "SELECT COUNT(*) FROM identity_users";

/// Ada's sign-up with `password`, naming her first organization.
fn ada_signs_up(password: &str) -> pb::SignUpRequest {
    pb::SignUpRequest {
        email: "Ada@Example.com".into(),
        password: password.into(),
        display_name: "Ada Lovelace".into(),
        organization_display_name: "Analytical Engines".into(),
        ..Default::default()
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
        let fresh = nothing_exists_until_the_link_is_used(&sandbox, &mut client).await;
        let password = whichever_link_is_used_first_makes_the_account(&sandbox, &mut client).await;
        let users_before =
            a_taken_address_answers_as_a_new_one(&sandbox, &mut client, &fresh, password).await;

        // Bad input is still refused in words, before anything is stored.
        let status = client.sign_up(ada_signs_up("short")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(count(&sandbox, USERS).await, users_before);
        sandbox.shutdown().await.unwrap();
    }
}

async fn nothing_exists_until_the_link_is_used(
    sandbox: &Sandbox,
    client: &mut Client,
) -> pb::SignUpResponse {
    let events_at_start = event_types(sandbox).await;
    let fresh = client
        .sign_up(ada_signs_up(PASSWORD))
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
    assert_eq!(count(sandbox, USERS).await, 0, "no account before the link");
    assert_eq!(event_types(sandbox).await, events_at_start);
    let status = login(client, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    fresh
}

/// A second sign-up for the same address (someone else, or Ada again):
/// whichever link is used first makes the account, and the other link
/// stops working. Answers the password that won.
async fn whichever_link_is_used_first_makes_the_account(
    sandbox: &Sandbox,
    client: &mut Client,
) -> &'static str {
    let first_link = sandbox
        .mail_token("ada@example.com", "verify_email")
        .unwrap();
    let second_password = "a second horse battery staple";
    client.sign_up(ada_signs_up(second_password)).await.unwrap();
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
    let status = login(client, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "the other link's password"
    );
    login(client, "ada@example.com", second_password)
        .await
        .unwrap();
    second_password
}

/// A sign-up for the taken address answers exactly as for a new one; the
/// owner gets a mail saying so, with no link, and nothing changes.
/// Answers the number of accounts.
async fn a_taken_address_answers_as_a_new_one(
    sandbox: &Sandbox,
    client: &mut Client,
    fresh: &pb::SignUpResponse,
    password: &str,
) -> i64 {
    let users_before = count(sandbox, USERS).await;
    let events_before = event_types(sandbox).await;
    let taken = client
        .sign_up(ada_signs_up("an attacker's horse battery staple"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(taken, *fresh);
    let notes = mails_to(sandbox, "ada@example.com", "account_exists");
    assert_eq!(notes.len(), 1);
    assert!(!notes[0].contains("token:"), "{}", notes[0]);
    assert_eq!(count(sandbox, USERS).await, users_before);
    assert_eq!(event_types(sandbox).await, events_before);
    assert_eq!(
        mails_to(sandbox, "ada@example.com", "verify_email").len(),
        2,
        "no link for a taken address"
    );
    login(client, "ada@example.com", password).await.unwrap();
    users_before
}

/// Ada, signed up with her first organization, and a channel to ask with.
struct FirstOrganization {
    sandbox: Sandbox,
    channel: Channel,
    token: String,
    ada: String,
    org: String,
}

impl FirstOrganization {
    async fn start(storage: Storage) -> FirstOrganization {
        let (sandbox, mut client) = sandbox(storage).await;
        let channel = sandbox.channel().await.unwrap();
        let signed_up = sign_up(&mut client, "ada@example.com").await;
        FirstOrganization {
            sandbox,
            channel,
            token: signed_up.tokens.unwrap().access_token,
            ada: signed_up.user.unwrap().name,
            org: signed_up.organization,
        }
    }
}

#[tokio::test]
async fn a_first_organization_starts_with_its_default_project() {
    for storage in storages() {
        let f = FirstOrganization::start(storage).await;
        let main = the_project_is_main_with_the_default_environments(&f).await;
        its_owner_manages_it_and_the_plan_counts_it(&f, &main).await;
        any_organization_may_ask_for_one_and_a_replay_makes_no_second(&f).await;
        f.sandbox.shutdown().await.unwrap();
        an_installation_without_one_makes_nothing(storage).await;
    }
}

/// Made with the organization: named by the installation, with the default
/// environments, readable by its owner at once.
async fn the_project_is_main_with_the_default_environments(
    f: &FirstOrganization,
) -> org_pb::Project {
    let listed = projects(&f.channel, &f.token, &f.org).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let main = listed[0].clone();
    assert_eq!(
        (main.display_name.as_str(), main.slug.as_str()),
        ("main", "main")
    );
    // Made by the user themself (identity acts with a token of theirs),
    // so the audit log shows them, not a service.
    assert_eq!(main.created_by, f.ada);
    let environments = Projects::new(f.channel.clone())
        .list_environments(authed(
            org_pb::ListEnvironmentsRequest {
                parent: main.name.clone(),
                ..Default::default()
            },
            &f.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .environments;
    let mut slugs: Vec<&str> = environments.iter().map(|e| e.slug.as_str()).collect();
    slugs.sort();
    assert_eq!(slugs, ["dev", "production", "staging"]);
    main
}

/// Its owner may manage it, and the plan counts it like any project.
async fn its_owner_manages_it_and_the_plan_counts_it(
    f: &FirstOrganization,
    main: &org_pb::Project,
) {
    let ada = f.ada.trim_start_matches("users/");
    let project = main.name.rsplit('/').next().unwrap();
    let subject = ("user", ada);
    assert!(
        check::allowed(
            &f.channel,
            &f.token,
            subject,
            ("project", project),
            "project.manage"
        )
        .await
    );
    let usage = Usage::new(f.channel.clone())
        .get_usage(authed(
            billing_pb::GetUsageRequest {
                organization: f.org.clone(),
                metric: billing_pb::Metric::Projects as i32,
                period_time: None,
            },
            &f.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .usages
        .remove(0);
    assert_eq!(usage.own_quantity, 1);
}

/// Any organization may ask for it; a replay answers the same organization
/// and the same project, not a second one.
async fn any_organization_may_ask_for_one_and_a_replay_makes_no_second(f: &FirstOrganization) {
    let mut organizations = Orgs::new(f.channel.clone());
    let request = || org_pb::CreateOrganizationRequest {
        organization: Some(org_pb::Organization {
            display_name: "Second".into(),
            ..Default::default()
        }),
        request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a51".into(),
        with_default_project: true,
    };
    let first = organizations
        .create_organization(authed(request(), &f.token))
        .await
        .unwrap()
        .into_inner();
    let again = organizations
        .create_organization(authed(request(), &f.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let second = first.organization.unwrap().name;
    let made = first.default_project.unwrap();
    assert!(made.name.starts_with(&format!("{second}/projects/")));
    assert_eq!(projects(&f.channel, &f.token, &second).await, vec![made]);
}

/// An installation without a default project: nothing is made.
async fn an_installation_without_one_makes_nothing(storage: Storage) {
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

/// Counts what identity has published.
const IDENTITY_EVENTS: &str = "SELECT COUNT(*) FROM tenantry_outbox WHERE service = 'identity'";

#[tokio::test]
async fn bad_sign_ups_are_refused_and_write_nothing() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        sign_up(&mut client, "taken@example.com").await;
        let users_before = count(&sandbox, USERS).await;
        let events_before = count(&sandbox, IDENTITY_EVENTS).await;

        let long_local = format!("{}@example.com", "a".repeat(65));
        let cyrillic_a = "аdmin@example.com";
        for email in [
            "not-an-email",
            "a@b",
            cyrillic_a,
            "a b@example.com",
            &long_local,
        ] {
            refused(
                &mut client,
                (email, PASSWORD, "A"),
                Code::InvalidArgument,
                "email",
            )
            .await;
        }
        let weak = [
            "short",
            "password1234",
            "ok@example.com",
            "P@ssw0rd1234",
            "letmein12345",
        ];
        for password in weak {
            let sign_up = ("ok@example.com", password, "A");
            refused(&mut client, sign_up, Code::InvalidArgument, "password").await;
        }
        let long_name = "x".repeat(201);
        for name in ["", &long_name] {
            let sign_up = ("ok@example.com", PASSWORD, name);
            refused(&mut client, sign_up, Code::InvalidArgument, "display_name").await;
        }
        let taken = ("TAKEN@example.com", PASSWORD, "A");
        refused(&mut client, taken, Code::AlreadyExists, "").await;
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

        assert_eq!(count(&sandbox, USERS).await, users_before);
        assert_eq!(count(&sandbox, IDENTITY_EVENTS).await, events_before);
        sandbox.shutdown().await.unwrap();
    }
}

/// Signs up `(email, password, display name)`, which must be refused with
/// `code`; for bad input, the message and the details name `field`.
async fn refused(client: &mut Client, sign_up: (&str, &str, &str), code: Code, field: &str) {
    let (email, password, name) = sign_up;
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
