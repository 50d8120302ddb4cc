//! Email: address changes and the SMTP relay.

use super::*;

#[tokio::test]
async fn email_changes_take_effect_when_the_new_address_is_verified() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let access = sign_up(&mut client, "old@example.com")
        .await
        .tokens
        .unwrap()
        .access_token;
    sign_up(&mut client, "taken2@example.com").await;
    a_change_needs_the_password_and_a_free_address(&mut client, &access).await;
    the_new_address_counts_once_verified(&sandbox, &mut client, &access).await;
    the_event_records_the_change_before_and_after(&sandbox).await;
    people::tokens(
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

/// Asks to move the caller of `access` to `new_email`, proving it with
/// `current_password`.
async fn change_email(
    client: &mut Client,
    access: &str,
    current_password: &str,
    new_email: &str,
) -> Result<pb::User, tonic::Status> {
    client
        .change_email(authed(
            pb::ChangeEmailRequest {
                current_password: current_password.into(),
                new_email: new_email.into(),
            },
            access,
        ))
        .await
        .map(|response| response.into_inner().user.unwrap())
}

async fn a_change_needs_the_password_and_a_free_address(client: &mut Client, access: &str) {
    let wrong = change_email(client, access, "wrong password!", "new@example.com")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let taken = change_email(client, access, PASSWORD, "taken2@example.com")
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
}

async fn the_new_address_counts_once_verified(
    sandbox: &Sandbox,
    client: &mut Client,
    access: &str,
) {
    let pending = change_email(client, access, PASSWORD, "New@Example.com")
        .await
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
}

/// The event records the change, before and after, for audit.
async fn the_event_records_the_change_before_and_after(sandbox: &Sandbox) {
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
