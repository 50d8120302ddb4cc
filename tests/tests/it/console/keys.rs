//! API keys at /console/api-keys: the secret shown once and working as a
//! credential, revocation refusing the key at once, and a member without
//! `organization.api_keys.create` refused with nothing written. Also the
//! fixture of the billing and audit pages' tests: an owner and a member of
//! one organization, each signed in at the console.

use super::*;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::authed;
use tenantry_testkit::clients::{Keys, Projects, ServiceAccounts, TeamMembers, Teams};
use tenantry_testkit::people::{self, User};
use tonic::transport::Channel;

/// How the page links the console's one script.
const SCRIPT_TAG: &str = r#"<script src=""#;

/// An organization with its owner (Ada) and a member (Bob, role `member`),
/// each signed in at the console in the organization.
pub(super) struct Org {
    pub sandbox: Sandbox,
    pub channel: Channel,
    pub owner: User,
    /// The organization's id.
    pub id: String,
    pub ada: Browser,
    pub bob: Browser,
}

impl Org {
    pub(super) async fn start() -> Org {
        Org::start_with(|_| {}).await
    }

    /// As [`Org::start`], with a change to the configuration.
    pub(super) async fn start_with(
        change: impl FnOnce(&mut tenantry::config::Config) + Send + 'static,
    ) -> Org {
        let sandbox = start(tenantry_testkit::Storage::Sqlite, change).await;
        let channel = sandbox.channel().await.unwrap();
        let (owner, id) = people::sign_up(&channel, "ada@example.com", "Ada").await;
        let (bob, _) = people::sign_up(&channel, "bob@example.com", "Bob").await;
        tenantry_tests::people::join(
            &sandbox,
            &channel,
            &owner.token,
            &id,
            &bob.token,
            &["roles/member"],
        )
        .await;
        let ada = signed_in(&sandbox, "ada@example.com", &id).await;
        let bob = signed_in(&sandbox, "bob@example.com", &id).await;
        Org {
            sandbox,
            channel,
            owner,
            id,
            ada,
            bob,
        }
    }

    pub(super) fn name(&self) -> String {
        format!("organizations/{}", self.id)
    }

    /// The organization's keys, active or not, as the owner lists them.
    pub(super) async fn keys(&self) -> Vec<identity::ApiKey> {
        Keys::new(self.channel.clone())
            .list_api_keys(authed(
                identity::ListApiKeysRequest {
                    parent: self.name(),
                    page_size: 100,
                    show_inactive: true,
                    ..Default::default()
                },
                &self.owner.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .api_keys
    }
}

/// A browser signed in as `email` and switched into `organization` (its id).
async fn signed_in(sandbox: &Sandbox, email: &str, organization: &str) -> Browser {
    let mut browser = Browser::new(sandbox);
    let csrf = browser.get("/console/sign-in").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", PASSWORD),
    ];
    let answer = browser.post("/console/sign-in", &form).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let csrf = browser.get("/console/").await.csrf();
    let name = format!("organizations/{organization}");
    let form = [("csrf", csrf.as_str()), ("organization", name.as_str())];
    let answer = browser.post("/console/switch", &form).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    browser
}

/// The hidden request id of the page's first form that has one.
pub(super) fn request_id(page: &Answer) -> String {
    let start = page
        .body
        .find(r#"name="request_id" value=""#)
        .expect("a create form")
        + 25;
    page.body[start..].split('"').next().unwrap().to_string()
}

/// The value of the read-only field `id` (a secret shown once).
fn field_value(page: &Answer, id: &str) -> Option<String> {
    let at = page.body.find(&format!(r#"id="{id}""#))?;
    let rest = &page.body[at..];
    let start = rest.find(r#"value=""#)? + 7;
    Some(rest[start..].split('"').next()?.to_string())
}

/// Creates a key named `name` through the console form; the answer page.
pub(super) async fn create_key(browser: &mut Browser, name: &str, permissions: &[&str]) -> Answer {
    let page = browser.get("/console/api-keys").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (csrf, id) = (page.csrf(), request_id(&page));
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("display_name", name),
        ("scope", ""),
        ("expires", "30"),
    ];
    form.extend(permissions.iter().map(|p| ("permissions", *p)));
    browser.post("/console/api-keys", &form).await
}

/// Exchanges a key's secret for a token and lists projects with it.
async fn projects_with(
    channel: &Channel,
    secret: &str,
    parent: &str,
) -> Result<usize, tonic::Code> {
    let token = Keys::new(channel.clone())
        .authenticate_api_key(identity::AuthenticateApiKeyRequest {
            secret: secret.into(),
        })
        .await
        .map_err(|s| s.code())?
        .into_inner()
        .access_token;
    let listed = Projects::new(channel.clone())
        .list_projects(authed(
            organization::ListProjectsRequest {
                parent: parent.into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .map_err(|s| s.code())?;
    Ok(listed.into_inner().projects.len())
}

/// The status of the gateway's REST list of projects with the key sent as
/// `X-Api-Key` (and no session).
async fn rest_with(org: &Org, secret: &str) -> StatusCode {
    let path = format!("/v1/{}/projects", org.name());
    let key = [(
        header::HeaderName::from_static("x-api-key"),
        secret.to_string(),
    )];
    let mut browser = Browser::new(&org.sandbox);
    browser
        .send(Method::GET, &path, Vec::new(), &key)
        .await
        .status
}

#[tokio::test]
async fn a_key_is_shown_once_works_and_stops_at_once_when_revoked() {
    let mut org = Org::start().await;
    let created = create_key(&mut org.ada, "ci", &["organization.read", "project.read"]).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let secret = field_value(&created, "new-secret").expect("the secret on the page");
    assert!(secret.starts_with("tnt_"), "{secret}");
    assert!(created.body.contains("shown only this once"));
    assert!(
        created.body.contains(SCRIPT_TAG),
        "the copy button's script"
    );
    assert!(
        created.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("no-store")
    );

    // The secret is a credential: exchanged over gRPC, or sent to the
    // gateway's REST API as `X-Api-Key`.
    assert_eq!(
        projects_with(&org.channel, &secret, &org.name()).await,
        Ok(1)
    );
    assert_eq!(rest_with(&org, &secret).await, StatusCode::OK);

    // The list shows the key, never the secret again.
    let list = org.ada.get("/console/api-keys").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("ci") && list.body.contains("project.read"));
    assert!(!list.body.contains(&secret));
    assert!(list.body.contains(r#"aria-label="Revoke ci""#));

    // Revoked: refused at once.
    let key = org.keys().await.remove(0);
    let csrf = list.csrf();
    let form = [("csrf", csrf.as_str()), ("name", key.name.as_str())];
    let revoked = org.ada.post("/console/api-keys/revoke", &form).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(
        projects_with(&org.channel, &secret, &org.name()).await,
        Err(tonic::Code::Unauthenticated)
    );
    // (The gateway may still hold the token it exchanged the key for; the
    // services refuse it then as if the organization were not there.)
    let after = rest_with(&org, &secret).await;
    assert!(
        matches!(after, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND),
        "{after}"
    );
    let shown = org.ada.get("/console/api-keys?show_inactive=on").await;
    assert!(shown.body.contains("Revoked"), "{}", shown.body);
}

#[tokio::test]
async fn the_script_is_served_at_its_hashed_path_and_the_policy_allows_only_it() {
    let mut org = Org::start().await;
    let page = org.ada.get("/console/api-keys").await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let created = create_key(&mut org.ada, "deploy", &["project.read"]).await;
    let tag = SCRIPT_TAG;
    let start = created.body.find(tag).expect("the script tag") + tag.len();
    let path = created.body[start..].split('"').next().unwrap().to_string();
    let script = org.ada.get(&path).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.body.contains("clipboard"));
    assert!(!created.body.contains("<script>"), "no inline script");
}

#[tokio::test]
async fn a_member_without_the_permission_is_refused_and_nothing_is_written() {
    let mut org = Org::start().await;
    let overview = org.bob.get("/console/").await;
    assert!(
        !overview.body.contains(r#"href="/console/api-keys""#),
        "no link for a member"
    );
    let page = org.bob.get("/console/api-keys").await;
    assert!(!page.body.contains("Create API key"), "{}", page.body);

    let csrf = overview.csrf();
    let id = uuid::Uuid::now_v7().to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("display_name", "sneaky"),
        ("permissions", "project.read"),
    ];
    let refused = org.bob.post("/console/api-keys", &form).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains(r#"role="alert""#), "{}", refused.body);
    assert!(
        refused.body.contains("organization.api_keys.create"),
        "{}",
        refused.body
    );
    assert!(org.keys().await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_key_without_permissions_is_refused_next_to_the_form() {
    let mut org = Org::start().await;
    let refused = create_key(&mut org.ada, "empty", &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains(r#"role="alert""#), "{}", refused.body);
    assert!(refused.body.contains("Create API key"), "the form again");
    assert!(
        refused.body.contains(r#"value="empty""#),
        "with what was sent"
    );
    assert!(!refused.body.contains("new-secret"));
    assert!(org.keys().await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_double_submit_creates_one_key_and_shows_no_second_secret() {
    let mut org = Org::start().await;
    let page = org.ada.get("/console/api-keys").await;
    let (csrf, id) = (page.csrf(), request_id(&page));
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("display_name", "twice"),
        ("permissions", "project.read"),
    ];
    let first = org.ada.post("/console/api-keys", &form).await;
    assert!(
        field_value(&first, "new-secret").is_some(),
        "{}",
        first.body
    );
    let second = org.ada.post("/console/api-keys", &form).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert!(field_value(&second, "new-secret").is_none());
    assert!(second.body.contains("earlier submit"), "{}", second.body);
    assert_eq!(org.keys().await.len(), 1, "one key");
}

/// The service accounts, as the platform administrator lists them.
async fn service_accounts(org: &Org) -> Vec<identity::ServiceAccount> {
    ServiceAccounts::new(org.channel.clone())
        .list_service_accounts(authed(
            identity::ListServiceAccountsRequest::default(),
            &org.owner.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .service_accounts
}

#[tokio::test]
async fn a_platform_administrator_makes_a_service_account_and_its_secret() {
    let mut org = Org::start_with(|config| {
        config.identity.platform_admins = vec!["ada@example.com".into()];
    })
    .await;
    let page = org.ada.get("/console/service-accounts").await;
    assert!(
        page.body.contains("No service accounts yet"),
        "{}",
        page.body
    );
    let (csrf, id) = (page.csrf(), request_id(&page));
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("display_name", "deployer"),
        ("description", "ships builds"),
    ];
    let created = org.ada.post("/console/service-accounts", &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let account = service_accounts(&org).await.remove(0);

    let list = org.ada.get("/console/service-accounts").await;
    let id = request_id(&list);
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("name", account.name.as_str()),
    ];
    let secret = org
        .ada
        .post("/console/service-accounts/secret", &form)
        .await;
    assert_eq!(secret.status, StatusCode::OK, "{}", secret.body);
    let client_secret = field_value(&secret, "new-client-secret").expect("the secret");
    let start = secret.body.find("Client id</dt><dd><code>").unwrap() + 24;
    let client_id = secret.body[start..].split('<').next().unwrap().to_string();
    let issued = ServiceAccounts::new(org.channel.clone())
        .issue_service_account_token(identity::IssueServiceAccountTokenRequest {
            client_id,
            client_secret,
            organization: String::new(),
        })
        .await;
    assert!(issued.is_ok(), "{issued:?}");

    let form = [("csrf", csrf.as_str()), ("name", account.name.as_str())];
    let deleted = org
        .ada
        .post("/console/service-accounts/delete", &form)
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert!(service_accounts(&org).await.is_empty());
}

#[tokio::test]
async fn service_accounts_are_for_platform_administrators_only() {
    let mut org = Org::start().await;
    let page = org.ada.get("/console/service-accounts").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("only platform administrators"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let id = uuid::Uuid::now_v7().to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("display_name", "sneaky"),
    ];
    let refused = org.ada.post("/console/service-accounts", &form).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains(r#"role="alert""#), "{}", refused.body);
}

/// A team of the organization (`organizations/…/teams/…`) led by the owner.
async fn team_led_by_owner(org: &Org, display_name: &str) -> String {
    let team = Teams::new(org.channel.clone())
        .create_team(authed(
            organization::CreateTeamRequest {
                parent: org.name(),
                team: Some(organization::Team {
                    display_name: display_name.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &org.owner.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .name;
    let lead = rbac::TeamMember {
        user: format!("users/{}", org.owner.id),
        role: authz::TeamRole::Lead as i32,
        ..Default::default()
    };
    TeamMembers::new(org.channel.clone())
        .add_team_member(authed(
            rbac::AddTeamMemberRequest {
                parent: team.clone(),
                team_member: Some(lead),
                request_id: String::new(),
            },
            &org.owner.token,
        ))
        .await
        .unwrap();
    team
}

#[tokio::test]
async fn a_team_key_is_listed_with_its_team_and_the_team_filter_narrows_the_list() {
    let mut org = Org::start().await;
    let team = team_led_by_owner(&org, "Platform").await;
    let org_key = create_key(&mut org.ada, "whole-org", &["project.read"]).await;
    assert_eq!(org_key.status, StatusCode::OK, "{}", org_key.body);

    let page = org.ada.get("/console/api-keys").await;
    assert!(
        page.body
            .contains(&format!(r#"<option value="{team}">Team Platform"#))
    );
    let (csrf, id) = (page.csrf(), request_id(&page));
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("display_name", "team-bot"),
        ("scope", team.as_str()),
        ("permissions", "team.read"),
        ("expires", ""),
    ];
    let created = org.ada.post("/console/api-keys", &form).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(field_value(&created, "new-secret").is_some());
    let keys = org.keys().await;
    let key = keys.iter().find(|k| k.display_name == "team-bot").unwrap();
    assert_eq!(key.team, team);
    assert!(key.expire_time.is_none());

    let all = org.ada.get("/console/api-keys").await;
    assert!(all.body.contains("<td>Team Platform</td>"), "{}", all.body);
    assert!(all.body.contains("<td>Organization</td>"));
    let query = serde_urlencoded_pairs(&[("team", &team)]);
    let only_team = org.ada.get(&format!("/console/api-keys?{query}")).await;
    assert!(only_team.body.contains("team-bot"));
    assert!(!only_team.body.contains("whole-org"), "{}", only_team.body);
}
