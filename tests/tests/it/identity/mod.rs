//! The identity service through its gRPC contract, on SQLite and (when
//! configured) Postgres: sign-up, verification, sign-in, refresh rotation
//! with reuse detection, logout, password reset, MFA, sessions, JWKS; and
//! the attacks and bad input the issue lists, each with its status code and
//! a check that nothing was written.
//!
//! By concern: sign-up, sessions and tokens, MFA, platform administration
//! and service accounts, and email.

mod admin;
mod email;
mod mfa;
mod sessions;
mod sign_up;

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
use tenantry_testkit::clients::Projects;
use tenantry_testkit::people::{self, PASSWORD};
use tenantry_testkit::{Sandbox, Storage, authed, storages};
use tonic::Code;
use tonic_types::StatusExt;

type Client = pb::identity_service_client::IdentityServiceClient<tonic::transport::Channel>;

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

/// The projects of an organization, as its member lists them.
async fn projects(
    channel: &tonic::transport::Channel,
    token: &str,
    org: &str,
) -> Vec<org_pb::Project> {
    Projects::new(channel.clone())
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

async fn admin_sandbox() -> (Sandbox, Client) {
    let sandbox = Sandbox::builder()
        .configure(|config| config.identity.platform_admins = vec!["root@example.com".into()])
        .start()
        .await
        .unwrap();
    let client = Client::new(sandbox.channel().await.unwrap());
    (sandbox, client)
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
