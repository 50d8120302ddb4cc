//! Accepting an invitation from its mail link at the console: a signed-in
//! invitee accepts with a button and lands in the organization; a new one
//! signs up on the same page; a bad token is refused in words and joins
//! nobody to anything.

use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::authed;
use tenantry_testkit::people::{self, User};
use tonic::transport::Channel;

use super::recover::pairs;
use super::*;

/// A sandbox, a channel to it, and an owner's organization (its id).
async fn world() -> (Sandbox, Channel, User, String) {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let channel = sandbox.channel().await.unwrap();
    let (owner, organization) = people::sign_up(&channel, "owner@accept.example", "Olive").await;
    (sandbox, channel, owner, organization)
}

/// Invites `email` as a member; the mailed token.
pub(super) async fn invite(
    sandbox: &Sandbox,
    channel: &Channel,
    owner: &str,
    organization: &str,
    email: &str,
) -> String {
    rbac::invitation_service_client::InvitationServiceClient::new(channel.clone())
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: format!("organizations/{organization}"),
                invitation: Some(rbac::Invitation {
                    email: email.into(),
                    roles: vec!["roles/member".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            owner,
        ))
        .await
        .unwrap();
    sandbox.mail_token(email, "invitation").unwrap()
}

/// The organizations `email` belongs to, by identity's `Me`.
async fn memberships(channel: &Channel, email: &str) -> Vec<String> {
    let user = people::log_in(channel, email).await;
    identity::identity_service_client::IdentityServiceClient::new(channel.clone())
        .me(authed(identity::MeRequest {}, &user.token))
        .await
        .unwrap()
        .into_inner()
        .memberships
        .into_iter()
        .map(|m| m.organization)
        .collect()
}

#[tokio::test]
async fn a_signed_in_invitee_accepts_and_lands_in_the_organization() {
    let (sandbox, channel, owner, organization) = world().await;
    let guest = "guest@accept.example";
    let mut browser = Browser::new(&sandbox);
    browser.sign_up(guest).await;
    verify(&sandbox, &channel, guest).await;
    let token = invite(&sandbox, &channel, &owner.token, &organization, guest).await;

    let wrong = browser
        .get("/console/invitations/accept?token=not-a-token")
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.body.contains("This invitation link is not valid"),
        "{}",
        wrong.body
    );
    let form = [("csrf", wrong.csrf()), ("token", "not-a-token".to_string())];
    let refused = browser
        .post("/console/invitations/accept", &pairs(&form))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("This invitation link is not valid"));
    let name = format!("organizations/{organization}");
    assert!(
        !memberships(&channel, guest).await.contains(&name),
        "nothing joined"
    );

    let page = browser
        .get(&format!(
            "/console/invitations/accept?token={}",
            encode(&token)
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Olive"), "the inviter: {}", page.body);
    assert!(
        page.body.contains("<strong>member</strong>"),
        "the role: {}",
        page.body
    );
    assert_eq!(no_store(&page), "no-store");
    let form = [("csrf", page.csrf()), ("token", token.clone())];
    let accepted = browser
        .post("/console/invitations/accept", &pairs(&form))
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert_eq!(accepted.location(), "/console/");
    let overview = browser.get("/console/").await;
    assert!(
        overview
            .body
            .contains(&format!(r#"value="{name}" selected"#)),
        "{}",
        overview.body
    );
    assert!(memberships(&channel, guest).await.contains(&name));
}

#[tokio::test]
async fn a_new_invitee_signs_up_on_the_page_or_signs_in_and_comes_back() {
    let (sandbox, channel, owner, organization) = world().await;
    let newcomer = "new@accept.example";
    let token = invite(&sandbox, &channel, &owner.token, &organization, newcomer).await;
    let mut browser = Browser::new(&sandbox);
    let path = format!("/console/invitations/accept?token={}", encode(&token));
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(&format!(r#"value="{newcomer}""#)),
        "the email prefilled"
    );
    let back = format!(r#"href="/console/sign-in?next={}""#, encode(&path));
    assert!(
        page.body.contains(&back),
        "sign in and come back: {}",
        page.body
    );

    let form = [
        ("csrf", page.csrf()),
        ("token", token.clone()),
        ("display_name", "Newt".to_string()),
        ("email", newcomer.to_string()),
        ("password", PASSWORD.to_string()),
    ];
    let signed_up = browser
        .post("/console/invitations/accept/sign-up", &pairs(&form))
        .await;
    assert_eq!(
        signed_up.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_up.body
    );
    assert_eq!(signed_up.location(), "/console/");
    let overview = browser.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK);
    let name = format!("organizations/{organization}");
    assert!(
        overview
            .body
            .contains(&format!(r#"value="{name}" selected"#)),
        "{}",
        overview.body
    );
    assert_eq!(memberships(&channel, newcomer).await, vec![name]);
}

/// Verifies `email` with the mailed token, as its owner would (when a
/// verification was mailed at all).
async fn verify(sandbox: &Sandbox, channel: &Channel, email: &str) {
    let Some(token) = sandbox.mail_token(email, "verify_email") else {
        return;
    };
    identity::identity_service_client::IdentityServiceClient::new(channel.clone())
        .verify_email(identity::VerifyEmailRequest { token })
        .await
        .unwrap();
}

fn no_store(answer: &Answer) -> &str {
    answer
        .headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}
