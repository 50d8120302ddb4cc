//! The account page: the display name, the password (a wrong current one
//! refused and nothing changed), two-factor authentication (enrolment, then
//! sign-in asks for a code, a recovery code works), sessions (one revoked
//! ends it), and an organization that requires two-factor authentication
//! sending its member to enrol.

use tenantry_identity::totp;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_testkit::authed;
use tenantry_testkit::people::{self, User};
use tonic::transport::Channel;

use super::recover::sign_in_status;
use super::*;

const NEW_PASSWORD: &str = "a fresh and rather long passphrase";

async fn world() -> (Sandbox, Channel) {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let channel = sandbox.channel().await.unwrap();
    (sandbox, channel)
}

/// A browser signed in as `email` with `password`.
async fn signed_in(sandbox: &Sandbox, email: &str, password: &str) -> Browser {
    let mut browser = Browser::new(sandbox);
    let csrf = browser.get("/console/sign-in").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", password),
    ];
    let answer = browser.post("/console/sign-in", &form).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    browser
}

/// Posts `form` from the account page with its CSRF token.
async fn submit(browser: &mut Browser, to: &str, form: &[(&str, &str)]) -> Answer {
    let csrf = browser.get("/console/account").await.csrf();
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    browser.post(to, &fields).await
}

#[tokio::test]
async fn the_name_changes_and_a_wrong_current_password_changes_nothing() {
    let (sandbox, channel) = world().await;
    people::sign_up(&channel, "me@account.example", "Ada").await;
    let mut browser = signed_in(&sandbox, "me@account.example", PASSWORD).await;
    let page = browser.get("/console/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for heading in [
        "Profile",
        "Password",
        "Two-factor authentication",
        "Sessions",
    ] {
        assert!(page.body.contains(heading), "{heading}: {}", page.body);
    }

    let saved = submit(
        &mut browser,
        "/console/account/profile",
        &[("display_name", "Ada Lovelace")],
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let page = browser.get(saved.location()).await;
    assert!(
        page.body.contains(r#"value="Ada Lovelace""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("Your name is saved."));

    let wrong = [
        ("current_password", "not my password at all"),
        ("new_password", NEW_PASSWORD),
    ];
    let refused = submit(&mut browser, "/console/account/password", &wrong).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("The current password is not right"),
        "{}",
        refused.body
    );
    assert_eq!(
        sign_in_status("me@account.example", PASSWORD, &sandbox).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in_status("me@account.example", NEW_PASSWORD, &sandbox).await,
        StatusCode::UNAUTHORIZED
    );

    let right = [
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
    ];
    let changed = submit(&mut browser, "/console/account/password", &right).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(
        browser.get("/console/account").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        sign_in_status("me@account.example", NEW_PASSWORD, &sandbox).await,
        StatusCode::SEE_OTHER
    );
}

/// Enrols TOTP from the account page (a wrong first code refused and MFA
/// still off); the recovery codes shown once.
async fn enrol(browser: &mut Browser) -> Vec<String> {
    let started = submit(browser, "/console/account/totp", &[]).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert!(started.body.contains("<svg"), "a QR code");
    let secret = hidden(&started.body, "secret").remove(0);
    let uri = hidden(&started.body, "uri").remove(0);
    assert!(started.body.contains(&secret) && uri.starts_with("otpauth://totp/"));
    let secret_key = totp::TotpSecret::from_base32(&secret).unwrap();
    let now = chrono::Utc::now().timestamp();
    let code = totp::code_at(&secret_key, now);
    let bad = if code == "000000" { "111111" } else { "000000" };
    let form = [("secret", secret.as_str()), ("uri", uri.as_str())];
    let refused = submit(
        browser,
        "/console/account/totp/confirm",
        &[&form[..], &[("code", bad)]].concat(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("<svg"), "the same code to scan again");
    let confirmed = submit(
        browser,
        "/console/account/totp/confirm",
        &[&form[..], &[("code", &code)]].concat(),
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert!(confirmed.body.contains("Save your recovery codes"));
    let codes: Vec<String> = confirmed
        .body
        .split("<li><code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{}", confirmed.body);
    codes
}

#[tokio::test]
async fn after_enrolment_sign_in_asks_for_a_code_and_takes_a_recovery_code() {
    let (sandbox, channel) = world().await;
    people::sign_up(&channel, "mfa@account.example", "Ada").await;
    let mut browser = signed_in(&sandbox, "mfa@account.example", PASSWORD).await;
    let codes = enrol(&mut browser).await;
    assert!(
        browser
            .get("/console/account")
            .await
            .body
            .contains("10 recovery codes left")
    );

    let mut other = Browser::new(&sandbox);
    let csrf = other.get("/console/sign-in").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("email", "mfa@account.example"),
        ("password", PASSWORD),
    ];
    let asked = other.post("/console/sign-in", &form).await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    assert!(
        asked.location().starts_with("/console/sign-in/mfa"),
        "{}",
        asked.location()
    );
    let page = other.get(asked.location()).await;
    let wrong = other
        .post(
            "/console/sign-in/mfa",
            &[("csrf", &page.csrf()), ("code", "123456")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    let done = other
        .post(
            "/console/sign-in/mfa",
            &[("csrf", &page.csrf()), ("code", &codes[0])],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(other.get("/console/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_session_ends_and_a_bad_name_revokes_nothing() {
    let (sandbox, channel) = world().await;
    people::sign_up(&channel, "two@account.example", "Ada").await;
    let mut first = signed_in(&sandbox, "two@account.example", PASSWORD).await;
    let mut second = signed_in(&sandbox, "two@account.example", PASSWORD).await;
    let listed_first = hidden(&first.get("/console/account").await.body, "name");
    let listed_second = hidden(&second.get("/console/account").await.body, "name");
    let theirs: Vec<&String> = listed_first
        .iter()
        .filter(|n| !listed_second.contains(n))
        .collect();
    assert_eq!(
        theirs.len(),
        1,
        "the second browser's session, shown to the first"
    );

    let bogus = [("name", "users/me/sessions/no-such-session")];
    let refused = submit(&mut first, "/console/account/sessions/revoke", &bogus).await;
    assert!(refused.status.is_client_error(), "{}", refused.body);
    assert_eq!(second.get("/console/account").await.status, StatusCode::OK);

    let revoked = submit(
        &mut first,
        "/console/account/sessions/revoke",
        &[("name", theirs[0])],
    )
    .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert!(
        first
            .get(revoked.location())
            .await
            .body
            .contains("The session has ended.")
    );
    let ended = second.get("/console/account").await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert!(
        ended.location().starts_with("/console/sign-in"),
        "{}",
        ended.location()
    );
}

#[tokio::test]
async fn an_organization_that_requires_two_factor_sends_its_member_to_enrol() {
    let (sandbox, channel) = world().await;
    let (owner, org) = people::sign_up(&channel, "boss@account.example", "Boss").await;
    member_by_invitation(&sandbox, &channel, &owner, &org, "staff@account.example").await;
    // Working there once makes it the organization a sign-in returns to.
    signed_in(&sandbox, "staff@account.example", PASSWORD).await;
    require_mfa(&channel, &owner, &org).await;

    let mut browser = Browser::new(&sandbox);
    let csrf = browser.get("/console/sign-in").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("email", "staff@account.example"),
        ("password", PASSWORD),
    ];
    let answer = browser.post("/console/sign-in", &form).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location(),
        "/console/account?mfa=required#two-factor"
    );
    let elsewhere = browser.get("/console/projects").await;
    assert_eq!(
        elsewhere.location(),
        "/console/account?mfa=required#two-factor"
    );
    let page = browser.get("/console/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("Your organization requires two-factor authentication")
    );
    assert!(
        !page.body.contains("Change password"),
        "only enrolment: {}",
        page.body
    );

    enrol(&mut browser).await;
    let overview = browser.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    let name = format!("organizations/{org}");
    assert!(
        overview
            .body
            .contains(&format!(r#"value="{name}" selected"#)),
        "{}",
        overview.body
    );
}

/// `email` signs up through an invitation into `org` (their only one).
async fn member_by_invitation(
    sandbox: &Sandbox,
    channel: &Channel,
    owner: &User,
    org: &str,
    email: &str,
) {
    let token = super::accept::invite(sandbox, channel, &owner.token, org, email).await;
    identity::identity_service_client::IdentityServiceClient::new(channel.clone())
        .sign_up(identity::SignUpRequest {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: "Staff".into(),
            invitation_token: token,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn require_mfa(channel: &Channel, owner: &User, org: &str) {
    organization::organization_service_client::OrganizationServiceClient::new(channel.clone())
        .update_organization(authed(
            organization::UpdateOrganizationRequest {
                organization: Some(organization::Organization {
                    name: format!("organizations/{org}"),
                    settings: Some(organization::OrganizationSettings {
                        require_mfa: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["settings.require_mfa".into()],
                }),
            },
            &owner.token,
        ))
        .await
        .unwrap();
}

/// The values of the page's hidden fields named `name`.
fn hidden(body: &str, name: &str) -> Vec<String> {
    let marker = format!(r#"type="hidden" name="{name}" value=""#);
    body.split(&marker)
        .skip(1)
        .map(|v| v.split('"').next().unwrap().to_string())
        .collect()
}
