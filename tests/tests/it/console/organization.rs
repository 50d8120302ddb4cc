//! The organization itself at the console: its settings (changed by an
//! administrator, read-only to a member, a member's forged form refused by
//! the service), its tree (sub-organizations, departments, teams), soft
//! deletion and undeletion, and handing its ownership over.

use tenantry_testkit::people::{self, User};
use tonic::transport::Channel;

use super::*;

/// Someone with a browser signed in to the console.
pub(super) struct Person {
    pub browser: Browser,
    pub user: User,
    pub email: String,
}

/// A user who signed up (and so owns a new organization, its id returned)
/// and signed in at the console, which acts in that organization.
pub(super) async fn founder(sandbox: &Sandbox, channel: &Channel, email: &str) -> (Person, String) {
    let (user, organization) = people::sign_up(channel, email, "Founder").await;
    let mut browser = Browser::new(sandbox);
    sign_in(&mut browser, email).await;
    let person = Person {
        browser,
        user,
        email: email.into(),
    };
    (person, organization)
}

/// A user brought into `organization` (an id) with `role` by the founder's
/// invitation, signed in at the console and switched into it.
pub(super) async fn joiner(
    sandbox: &Sandbox,
    channel: &Channel,
    founder: &Person,
    organization: &str,
    email: &str,
    role: &str,
) -> Person {
    let (user, _) = people::sign_up(channel, email, "Joiner").await;
    tenantry_tests::people::join(
        sandbox,
        channel,
        &founder.user.token,
        organization,
        &user.token,
        &[role],
    )
    .await;
    let mut browser = Browser::new(sandbox);
    sign_in(&mut browser, email).await;
    let csrf = browser.get("/console/").await.csrf();
    let name = format!("organizations/{organization}");
    let switched = browser
        .post(
            "/console/switch",
            &[("csrf", &csrf), ("organization", &name)],
        )
        .await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER, "{}", switched.body);
    Person {
        browser,
        user,
        email: email.into(),
    }
}

async fn sign_in(browser: &mut Browser, email: &str) {
    let csrf = browser.get("/console/sign-in").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", PASSWORD),
    ];
    let answer = browser.post("/console/sign-in", &form).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
}

impl Person {
    /// Posts `form` with the CSRF token of the page at `from`.
    pub(super) async fn submit(&mut self, from: &str, to: &str, form: &[(&str, &str)]) -> Answer {
        let csrf = self.browser.get(from).await.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.browser.post(to, &fields).await
    }
}

/// A server on Postgres when one is configured, else on SQLite: the
/// console only calls the services, so one storage is enough for its pages.
pub(super) async fn world() -> (Sandbox, Channel) {
    let storage = tenantry_testkit::storages().pop().unwrap();
    let sandbox = start(storage, |_| {}).await;
    let channel = sandbox.channel().await.unwrap();
    (sandbox, channel)
}

/// The settings form with every field, departments on or off.
fn settings<'a>(name: &'a str, domains: &'a str, departments: bool) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("display_name", name),
        ("allowed_email_domains", domains),
        ("project_visibility", "granted"),
    ];
    if departments {
        form.push(("departments_enabled", "on"));
    }
    form
}

#[tokio::test]
async fn an_administrator_changes_the_settings_and_a_bad_domain_changes_nothing() {
    let (sandbox, channel) = world().await;
    let (mut owner, _) = founder(&sandbox, &channel, "owner@settings.example").await;
    let page = owner.browser.get("/console/").await;
    assert!(
        page.body.contains(r#"action="/console/settings""#),
        "{}",
        page.body
    );

    let form = settings("Settled Co", "example.com\nexample.org", false);
    let saved = owner.submit("/console/", "/console/settings", &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let page = owner.browser.get("/console/").await.body;
    assert!(page.contains("Settled Co"));
    assert!(page.contains("example.com\nexample.org"), "{page}");
    assert!(!page.contains(r#"name="departments_enabled" value="on" checked"#));
    assert!(page.contains(r#"value="granted" checked"#));

    let bad = settings("Renamed Co", "bad_domain!", true);
    let refused = owner.submit("/console/", "/console/settings", &bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains(r#"role="alert""#));
    assert!(
        refused.body.contains(r#"class="field-error""#),
        "{}",
        refused.body
    );
    let page = owner.browser.get("/console/").await.body;
    assert!(page.contains("Settled Co") && !page.contains("Renamed Co"));
}

#[tokio::test]
async fn a_member_reads_the_settings_and_their_forged_form_is_refused() {
    let (sandbox, channel) = world().await;
    let (mut owner, org) = founder(&sandbox, &channel, "owner@readonly.example").await;
    let mut member = joiner(
        &sandbox,
        &channel,
        &owner,
        &org,
        "member@readonly.example",
        "roles/member",
    )
    .await;
    let page = member.browser.get("/console/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains(r#"action="/console/settings""#));
    assert!(
        page.body
            .contains("Only an administrator may change these.")
    );

    let forged = settings("Hijacked", "evil.example", false);
    let refused = member
        .submit("/console/", "/console/settings", &forged)
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    let page = owner.browser.get("/console/").await.body;
    assert!(!page.contains("Hijacked") && !page.contains("evil.example"));
    assert!(page.contains(r#"name="departments_enabled" value="on" checked"#));
}

#[tokio::test]
async fn sub_organizations_departments_and_teams_appear_in_the_tree() {
    let (sandbox, channel) = world().await;
    let (mut owner, org) = founder(&sandbox, &channel, "owner@tree.example").await;
    let tree = "/console/organization";
    for (to, kind, name) in [
        (
            "/console/organization/children",
            "organization",
            "Subsidiary",
        ),
        ("/console/organization/children", "department", "Research"),
        ("/console/organization/teams", "", "Platform"),
    ] {
        let form = [("display_name", name), ("kind", kind), ("request_id", "")];
        let created = owner.submit(tree, to, &form).await;
        assert_eq!(
            created.status,
            StatusCode::SEE_OTHER,
            "{name}: {}",
            created.body
        );
    }
    let page = owner.browser.get(tree).await.body;
    assert!(page.contains(r#"<ul class="tree""#), "{page}");
    assert!(page.contains("Subsidiary"));
    assert!(page.contains("(sub-organization)"));
    assert!(page.contains("Research") && page.contains("(department)"));
    assert!(page.contains(r#"href="/console/teams/"#) && page.contains("Platform"));
    // The founder owns what they created, so may switch into it.
    assert!(
        page.contains(r#"aria-label="Switch to Subsidiary""#),
        "{page}"
    );

    // A sub-organization deleted from inside leaves its parent's tree
    // (ListOrganizations answers a user no deleted organization, even with
    // show_deleted: their read is checked on the deleted one itself).
    let subsidiary = switch_target(&page, "Subsidiary");
    let to_subsidiary = [("organization", subsidiary.as_str())];
    let switched = owner.submit(tree, "/console/switch", &to_subsidiary).await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER, "{}", switched.body);
    assert!(
        owner
            .browser
            .get("/console/")
            .await
            .body
            .contains("Sub-organization")
    );
    let deleted = owner
        .submit("/console/", "/console/organization/delete", &[])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    let parent = format!("organizations/{org}");
    owner
        .submit("/console/", "/console/switch", &[("organization", &parent)])
        .await;
    let page = owner.browser.get(tree).await.body;
    assert!(
        page.contains("Research") && !page.contains("Subsidiary"),
        "{page}"
    );

    // A nameless team: refused next to its form, nothing created.
    let nameless = [("display_name", ""), ("request_id", "")];
    let refused = owner
        .submit(tree, "/console/organization/teams", &nameless)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let page = owner.browser.get(tree).await.body;
    assert_eq!(page.matches(r#"href="/console/teams/"#).count(), 1);
}

#[tokio::test]
async fn a_sub_organization_stops_inheriting_access_from_its_parent() {
    let (sandbox, channel) = world().await;
    let (mut owner, _) = founder(&sandbox, &channel, "owner@inherit.example").await;
    let tree = "/console/organization";
    let form = [("display_name", "Branch"), ("kind", "organization")];
    owner
        .submit(tree, "/console/organization/children", &form)
        .await;
    let branch = switch_target(&owner.browser.get(tree).await.body, "Branch");
    owner
        .submit(tree, "/console/switch", &[("organization", &branch)])
        .await;
    let checked = r#"name="inherit_access" value="on" checked"#;
    assert!(owner.browser.get("/console/").await.body.contains(checked));

    let mut form = settings("Branch", "", true);
    form.push(("child", "on"));
    let saved = owner.submit("/console/", "/console/settings", &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let page = owner.browser.get("/console/").await.body;
    assert!(
        page.contains(r#"name="inherit_access""#) && !page.contains(checked),
        "{page}"
    );
}

#[tokio::test]
async fn with_departments_off_their_form_is_hidden_and_the_service_refuses_one() {
    let (sandbox, channel) = world().await;
    let (mut owner, _) = founder(&sandbox, &channel, "owner@nodept.example").await;
    let tree = "/console/organization";
    assert!(
        owner
            .browser
            .get(tree)
            .await
            .body
            .contains("Create department")
    );
    let off = settings("No Departments", "", false);
    let saved = owner.submit("/console/", "/console/settings", &off).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);

    let page = owner.browser.get(tree).await.body;
    assert!(!page.contains("Create department"), "{page}");
    assert!(page.contains("Departments are switched off"));
    let form = [("display_name", "Sneaky"), ("kind", "department")];
    let refused = owner
        .submit(tree, "/console/organization/children", &form)
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    assert!(!owner.browser.get(tree).await.body.contains("Sneaky"));
}

#[tokio::test]
async fn an_owner_deletes_the_organization_and_undeletes_it() {
    let (sandbox, channel) = world().await;
    let (mut owner, _) = founder(&sandbox, &channel, "owner@delete.example").await;
    let page = owner.browser.get("/console/").await.body;
    assert!(page.contains("Delete organization"), "{page}");

    let deleted = owner
        .submit(
            "/console/",
            "/console/organization/delete",
            &[("force", "on")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    let page = owner.browser.get("/console/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("This organization was deleted on"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Undelete organization"));
    assert!(!page.body.contains(r#"action="/console/settings""#));

    let restored = owner
        .submit("/console/", "/console/organization/undelete", &[])
        .await;
    assert_eq!(restored.status, StatusCode::SEE_OTHER, "{}", restored.body);
    let page = owner.browser.get("/console/").await.body;
    assert!(!page.contains("Undelete organization"), "{page}");
    assert!(page.contains("Delete organization"));
}

#[tokio::test]
async fn ownership_passes_to_a_member_who_accepts_with_the_mailed_token() {
    let (sandbox, channel) = world().await;
    let (mut owner, org) = founder(&sandbox, &channel, "owner@handover.example").await;
    let heir_email = "heir@handover.example";
    let mut heir = joiner(&sandbox, &channel, &owner, &org, heir_email, "roles/member").await;
    let page = owner.browser.get("/console/").await.body;
    assert!(
        page.contains("Start transfer") && page.contains(heir_email),
        "{page}"
    );

    let target = format!("users/{}", heir.user.id);
    let form = [("new_owner", target.as_str()), ("request_id", "")];
    let started = owner
        .submit("/console/", "/console/ownership/transfer", &form)
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let shown = owner.browser.get(started.location()).await.body;
    assert!(
        shown.contains("Pending") && shown.contains("Cancel transfer"),
        "{shown}"
    );
    let transfer = decode(started.location().split("transfer=").nth(1).unwrap());

    // A wrong token: refused, nothing changes hands.
    let wrong = [("name", transfer.as_str()), ("token", "not-the-token")];
    let refused = heir
        .submit("/console/", "/console/ownership/accept", &wrong)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        !heir
            .browser
            .get("/console/")
            .await
            .body
            .contains("Start transfer")
    );

    let token = sandbox
        .mail_token(heir_email, "ownership_transfer")
        .unwrap();
    let right = [("name", transfer.as_str()), ("token", token.as_str())];
    let accepted = heir
        .submit("/console/", "/console/ownership/accept", &right)
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    let page = heir.browser.get("/console/").await.body;
    assert!(
        page.contains("Start transfer"),
        "the heir owns it now: {page}"
    );
    let page = owner.browser.get("/console/").await.body;
    assert!(!page.contains("Start transfer"), "{page}");
    assert!(page.contains(heir_email));
}

#[tokio::test]
async fn a_cancelled_transfer_cannot_be_accepted() {
    let (sandbox, channel) = world().await;
    let (mut owner, org) = founder(&sandbox, &channel, "owner@cancel.example").await;
    let heir_email = "heir@cancel.example";
    let mut heir = joiner(&sandbox, &channel, &owner, &org, heir_email, "roles/member").await;
    let target = format!("users/{}", heir.user.id);
    let form = [("new_owner", target.as_str()), ("request_id", "")];
    let started = owner
        .submit("/console/", "/console/ownership/transfer", &form)
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let shown = started.location().to_string();
    let transfer = decode(shown.split("transfer=").nth(1).unwrap());

    let cancel = [("name", transfer.as_str())];
    let cancelled = owner
        .submit(&shown, "/console/ownership/cancel", &cancel)
        .await;
    assert_eq!(
        cancelled.status,
        StatusCode::SEE_OTHER,
        "{}",
        cancelled.body
    );
    let page = owner.browser.get(&shown).await.body;
    assert!(
        page.contains("Cancelled") && !page.contains("Cancel transfer"),
        "{page}"
    );

    let token = sandbox
        .mail_token(heir_email, "ownership_transfer")
        .unwrap();
    let accept = [("name", transfer.as_str()), ("token", token.as_str())];
    let refused = heir
        .submit("/console/", "/console/ownership/accept", &accept)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let page = heir.browser.get("/console/").await.body;
    assert!(!page.contains("You own this organization"), "{page}");
    assert!(
        owner
            .browser
            .get("/console/")
            .await
            .body
            .contains("You own this organization")
    );
}

/// The organization the tree's switch button for `name` switches to.
fn switch_target(tree: &str, name: &str) -> String {
    let button = tree
        .find(&format!(r#"aria-label="Switch to {name}""#))
        .unwrap();
    let start = tree[..button]
        .rfind(r#"name="organization" value=""#)
        .unwrap()
        + 27;
    tree[start..].split('"').next().unwrap().to_string()
}

/// A percent-decoded query value.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
