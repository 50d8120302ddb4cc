//! Access through the console: a project granted to a member is the only
//! one they see (and revoking hides it), a granted project is not deleted,
//! custom roles show in the permission matrix and a plain member may make
//! neither a role nor an invitation, a double-submitted form creates one
//! project, and a resend keeps one pending invitation.

use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::clients::{Identity, Invitations, Orgs, Projects, Teams};
use tenantry_testkit::{authed, people};
use tonic::transport::Channel;

use super::*;

/// Ada's organization, made by signing up at the console: her browser,
/// her token and the organization's name for reading back over gRPC.
struct Acme {
    sandbox: Sandbox,
    channel: Channel,
    ada: Browser,
    /// Ada's user id and token.
    id: String,
    token: String,
    org: String,
}

impl Acme {
    async fn start(
        storage: tenantry_testkit::Storage,
        change: impl FnOnce(&mut tenantry::config::Config) + Send + 'static,
    ) -> Acme {
        let sandbox = start(storage, change).await;
        let channel = sandbox.channel().await.unwrap();
        let mut ada = Browser::new(&sandbox);
        ada.sign_up("ada@example.com").await;
        let people::User { id, token } = people::log_in(&channel, "ada@example.com").await;
        let mine = Orgs::new(channel.clone())
            .list_my_organizations(authed(
                organization::ListMyOrganizationsRequest::default(),
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        let org = mine.organizations[0].organization.clone().unwrap().name;
        Acme {
            sandbox,
            channel,
            ada,
            id,
            token,
            org,
        }
    }

    /// Someone invited at the console as a member, who accepted: their
    /// browser (signed in, acting in Acme) and their user name.
    async fn member(&mut self, email: &str) -> (Browser, String) {
        let csrf = self.ada.get("/console/invitations").await.csrf();
        let form = [
            ("csrf", csrf.as_str()),
            ("email", email),
            ("role", "roles/member"),
        ];
        let sent = self.ada.post("/console/invitations", &form).await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        // Signing up with the mailed token accepts it (and verifies the
        // address it was mailed to).
        let token = self.sandbox.mail_token(email, "invitation").unwrap();
        let signed_up = Identity::new(self.channel.clone())
            .sign_up(identity::SignUpRequest {
                email: email.into(),
                password: PASSWORD.into(),
                display_name: "Bob".into(),
                invitation_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let user = signed_up.user.unwrap().name;
        let mut browser = Browser::new(&self.sandbox);
        let csrf = browser.get("/console/sign-in").await.csrf();
        let form = [
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", PASSWORD),
            ("next", "/console/"),
        ];
        let signed_in = browser.post("/console/sign-in", &form).await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.body
        );
        let csrf = browser.get("/console/").await.csrf();
        let form = [("csrf", csrf.as_str()), ("organization", self.org.as_str())];
        let switched = browser.post("/console/switch", &form).await;
        assert_eq!(switched.status, StatusCode::SEE_OTHER, "{}", switched.body);
        (browser, user)
    }

    /// Creates a project at the console; its id.
    async fn project(&mut self, name: &str) -> String {
        let page = self.ada.get("/console/projects").await;
        let form = [
            ("csrf", page.csrf()),
            ("display_name", name.to_string()),
            ("request_id", uuid()),
        ];
        let created = self.ada.post("/console/projects", &pairs(&form)).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        let found = self
            .projects()
            .await
            .into_iter()
            .find(|p| p.display_name == name);
        found.unwrap().name.rsplit('/').next().unwrap().to_string()
    }

    async fn has_project(&self, name: &str) -> bool {
        self.projects().await.iter().any(|p| p.display_name == name)
    }

    /// The organization's projects, as Ada reads them over gRPC.
    async fn projects(&self) -> Vec<organization::Project> {
        let request = organization::ListProjectsRequest {
            parent: self.org.clone(),
            page_size: 100,
            ..Default::default()
        };
        let mut client = Projects::new(self.channel.clone());
        let listed = client.list_projects(authed(request, &self.token));
        listed.await.unwrap().into_inner().projects
    }

    /// Members see only the projects granted to them.
    async fn granted_only(&self) {
        let request = organization::UpdateOrganizationRequest {
            organization: Some(organization::Organization {
                name: self.org.clone(),
                settings: Some(organization::OrganizationSettings {
                    project_visibility: organization::ProjectVisibility::Granted as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["settings.project_visibility".into()],
            }),
        };
        let mut client = Orgs::new(self.channel.clone());
        let updated = client.update_organization(authed(request, &self.token));
        updated.await.unwrap();
    }

    /// Custom roles need a paid plan: Starter, paid by a new account.
    async fn upgrade(&self) {
        upgrade_to_starter(self.channel.clone(), &self.token, &self.org).await;
    }
}

fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The resource names in a page's hidden `name` fields that contain
/// `part` (`/grants/`: the grants a project page shows), in order.
fn hidden_names(body: &str, part: &str) -> Vec<String> {
    body.match_indices(r#"name="name" value=""#)
        .map(|(at, m)| body[at + m.len()..].split('"').next().unwrap().to_string())
        .filter(|name| name.contains(part))
        .fold(Vec::new(), |mut names, name| {
            // A row's forms (change, revoke) name it once each.
            if !names.contains(&name) {
                names.push(name);
            }
            names
        })
}

#[tokio::test]
async fn a_granted_project_is_the_members_only_one_until_revoked() {
    for storage in tenantry_testkit::storages() {
        let mut a = Acme::start(storage, |_| {}).await;
        a.granted_only().await;
        let granted = a.project("Granted").await;
        a.project("Hidden").await;
        let (mut bob, bob_user) = a.member("bob@example.com").await;
        let page = format!("/console/projects/{granted}");

        let shown = ada_grants_bob_one_project(&mut a, &page, &bob_user).await;
        let listed = bob.get("/console/projects").await.body;
        assert!(listed.contains("Granted"), "{listed}");
        assert!(!listed.contains("Hidden"), "{listed}");
        a_granted_project_is_not_deleted(&mut a, &page, &shown, &granted).await;
        the_level_changes_and_bob_only_reads(&mut a, &mut bob, &page, &shown).await;
        revoking_hides_it_and_lets_it_go(&mut a, &mut bob, &page, &shown).await;
        a.sandbox.shutdown().await.unwrap();
    }
}

/// Ada grants Bob viewer access on one project at its page; the page.
async fn ada_grants_bob_one_project(a: &mut Acme, page: &str, bob_user: &str) -> String {
    let csrf = a.ada.get(page).await.csrf();
    let form = [
        ("csrf", csrf),
        ("subject", format!("user:{bob_user}")),
        ("level", "PROJECT_ACCESS_LEVEL_VIEWER".into()),
        ("request_id", uuid()),
    ];
    let grant = a.ada.post(&format!("{page}/grants"), &pairs(&form)).await;
    assert_eq!(grant.status, StatusCode::SEE_OTHER, "{}", grant.body);
    let shown = a.ada.get(page).await.body;
    assert!(
        shown.contains("bob@example.com") && shown.contains("Viewer"),
        "{shown}"
    );
    assert!(shown.contains(r#"aria-label="Revoke access of bob@example.com""#));
    shown
}

/// While anyone holds a grant the project is not deleted: the button is
/// disabled with the reason, and a forced post (from its page or the
/// list) is refused with the project still there.
async fn a_granted_project_is_not_deleted(a: &mut Acme, page: &str, shown: &str, id: &str) {
    assert!(shown.contains("cannot be deleted while anyone holds a grant"));
    let csrf = a.ada.get(page).await.csrf();
    let delete = [("csrf", csrf.as_str())];
    let refused = a.ada.post(&format!("{page}/delete"), &delete).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("still has grants"),
        "{}",
        refused.body
    );
    let forced = [
        ("csrf", csrf.clone()),
        ("name", format!("{}/projects/{id}", a.org)),
    ];
    let refused = a
        .ada
        .post("/console/projects/delete", &pairs(&forced))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(a.has_project("Granted").await);
}

/// Ada makes Bob a contributor; Bob reads the page without its forms.
async fn the_level_changes_and_bob_only_reads(
    a: &mut Acme,
    bob: &mut Browser,
    page: &str,
    shown: &str,
) {
    let grant = hidden_names(shown, "/grants/").remove(0);
    let csrf = a.ada.get(page).await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("name", grant.as_str()),
        ("level", "PROJECT_ACCESS_LEVEL_CONTRIBUTOR"),
    ];
    let changed = a.ada.post(&format!("{page}/grants/level"), &form).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    let shown = a.ada.get(page).await.body;
    assert!(
        shown.contains(r#"value="PROJECT_ACCESS_LEVEL_CONTRIBUTOR" selected"#),
        "{shown}"
    );
    let seen = bob.get(page).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert!(seen.body.contains("Contributor") && seen.body.contains("Granted"));
    for hidden in [
        ">Grant access<",
        ">Delete project<",
        ">Revoke<",
        ">Add environment<",
    ] {
        assert!(!seen.body.contains(hidden), "{hidden}: {}", seen.body);
    }
}

/// Revoked, Bob sees no project; then the project may go.
async fn revoking_hides_it_and_lets_it_go(
    a: &mut Acme,
    bob: &mut Browser,
    page: &str,
    shown: &str,
) {
    let names = hidden_names(shown, "/grants/");
    assert_eq!(names.len(), 1, "{shown}");
    let csrf = a.ada.get(page).await.csrf();
    let revoke = [("csrf", csrf.as_str()), ("name", names[0].as_str())];
    let revoked = a.ada.post(&format!("{page}/grants/revoke"), &revoke).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    let listed = bob.get("/console/projects").await.body;
    assert!(
        !listed.contains("Granted") && !listed.contains("Hidden"),
        "{listed}"
    );
    let empty = a.ada.get(page).await.body;
    assert!(
        empty.contains("Nobody has been granted this project yet"),
        "{empty}"
    );
    let deleted = a
        .ada
        .post(&format!("{page}/delete"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert!(!a.has_project("Granted").await);
}

#[tokio::test]
async fn members_roles_change_and_the_owner_stays() {
    let mut a = Acme::start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let (_, bob_user) = a.member("bob@example.com").await;
    let bob = format!(
        "{}/memberships/{}",
        a.org,
        bob_user.trim_start_matches("users/")
    );
    let ada = format!("{}/memberships/{}", a.org, a.id);
    let page = a.ada.get("/console/members").await;
    assert!(
        page.body
            .contains(r#"aria-label="Save roles of bob@example.com""#)
    );
    assert!(
        page.body
            .contains("roles change only by transferring the ownership")
    );
    let csrf = page.csrf();

    // Bob gets Member and Finance.
    let form = [
        ("csrf", csrf.as_str()),
        ("name", bob.as_str()),
        ("role", "roles/member"),
        ("role", "roles/finance"),
    ];
    let changed = a.ada.post("/console/members/roles", &form).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert!(
        a.ada
            .get("/console/members")
            .await
            .body
            .contains("Member, Finance")
    );

    // No role at all is refused, and Bob keeps both.
    let none = [("csrf", csrf.as_str()), ("name", bob.as_str())];
    let refused = a.ada.post("/console/members/roles", &none).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        a.ada
            .get("/console/members")
            .await
            .body
            .contains("Member, Finance")
    );

    // The owner cannot leave: the service's words, and Ada stays.
    let leave = [("csrf", csrf.as_str()), ("name", ada.as_str())];
    let refused = a.ada.post("/console/members/remove", &leave).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("transfer the ownership first"),
        "{}",
        refused.body
    );
    assert!(
        a.ada
            .get("/console/members")
            .await
            .body
            .contains("ada@example.com")
    );

    let remove = [("csrf", csrf.as_str()), ("name", bob.as_str())];
    let removed = a.ada.post("/console/members/remove", &remove).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    assert!(
        !a.ada
            .get("/console/members")
            .await
            .body
            .contains("bob@example.com")
    );
    a.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_custom_role_shows_in_the_matrix_and_a_member_makes_none() {
    let mut a = Acme::start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let (mut bob, _) = a.member("bob@example.com").await;
    let role = |csrf: String| {
        [
            ("csrf", csrf),
            ("display_name", "Auditor".to_string()),
            ("description", "Reads the log".to_string()),
            ("permission", "audit.read".to_string()),
            ("permission", "project.read".to_string()),
            ("request_id", uuid()),
        ]
    };

    // On the free plan the service refuses in its own words.
    let csrf = a.ada.get("/console/roles").await.csrf();
    let free = a
        .ada
        .post("/console/roles", &pairs(&role(csrf.clone())))
        .await;
    assert_eq!(free.status, StatusCode::BAD_REQUEST, "{}", free.body);
    assert!(
        free.body.contains("does not include custom roles"),
        "{}",
        free.body
    );

    a.upgrade().await;
    let made = a.ada.post("/console/roles", &pairs(&role(csrf))).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let matrix = a.ada.get("/console/roles").await.body;
    for cell in [
        "Auditor has audit.read",
        "Auditor has project.read",
        "Auditor lacks billing.read",
    ] {
        assert!(matrix.contains(cell), "{cell}: {matrix}");
    }
    assert!(matrix.contains("Owner has organization.delete"), "{matrix}");
    a_custom_role_is_edited_then_deleted(&mut a).await;

    // Bob, a plain member, sees no create form; posting it anyway, and an
    // invitation, is refused and writes nothing.
    let page = bob.get("/console/roles").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Create role"), "{}", page.body);
    let mut forged = role(page.csrf());
    forged[1].1 = "Sneaky".into();
    let refused = bob.post("/console/roles", &pairs(&forged)).await;
    assert!(refused.status.is_client_error(), "{}", refused.body);
    let invite = [
        ("csrf", page.csrf()),
        ("email", "eve@example.com".into()),
        ("request_id", uuid()),
    ];
    let refused = bob.post("/console/invitations", &pairs(&invite)).await;
    assert!(refused.status.is_client_error(), "{}", refused.body);
    assert!(!a.ada.get("/console/roles").await.body.contains("Sneaky"));
    assert!(
        !a.ada
            .get("/console/invitations")
            .await
            .body
            .contains("eve@example.com")
    );
    a.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_double_submit_creates_one_project_and_a_resend_keeps_one_invitation() {
    // Resends wait a minute by default; this test resends at once.
    let mut a = Acme::start(tenantry_testkit::Storage::Sqlite, |config| {
        config.rbac.resend_interval_secs = 0;
    })
    .await;
    let csrf = a.ada.get("/console/projects").await.csrf();
    let form = [
        ("csrf", csrf.clone()),
        ("display_name", "Twice".into()),
        ("request_id", uuid()),
    ];
    for _ in 0..2 {
        let created = a.ada.post("/console/projects", &pairs(&form)).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    }
    let twice = a
        .projects()
        .await
        .into_iter()
        .filter(|p| p.display_name == "Twice");
    assert_eq!(twice.count(), 1);

    let form = [
        ("csrf", csrf.clone()),
        ("email", "carol@example.com".into()),
        ("role", "roles/member".into()),
        ("role", "roles/finance".into()),
        ("request_id", uuid()),
    ];
    let sent = a.ada.post("/console/invitations", &pairs(&form)).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let pending = a.ada.get("/console/invitations").await.body;
    assert!(pending.contains("Member, Finance"), "{pending}");
    let name = hidden_names(&pending, "/invitations/").remove(0);
    let resend = [("csrf", csrf.as_str()), ("name", name.as_str())];
    let resent = a.ada.post("/console/invitations/resend", &resend).await;
    assert_eq!(resent.status, StatusCode::SEE_OTHER, "{}", resent.body);
    assert!(
        a.ada
            .get("/console/invitations")
            .await
            .body
            .contains("2 time(s)")
    );
    let request = rbac::ListInvitationsRequest {
        parent: a.org.clone(),
        state: rbac::invitation::State::Pending as i32,
        ..Default::default()
    };
    let mut client = Invitations::new(a.channel.clone());
    let listed = client.list_invitations(authed(request, &a.token));
    let listed = listed.await.unwrap().into_inner().invitations;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].email, "carol@example.com");
    an_external_user_is_invited_to_one_project(&mut a).await;
    an_invitation_brings_its_team(&mut a).await;
    a.sandbox.shutdown().await.unwrap();
}

/// From a project's page, an outsider is invited to that project only:
/// the pending invitation is marked external and gives no role.
async fn an_external_user_is_invited_to_one_project(a: &mut Acme) {
    let id = a.project("Shared").await;
    let page = format!("/console/projects/{id}");
    let csrf = a.ada.get(&page).await.csrf();
    let form = [
        ("csrf", csrf),
        ("email", "guest@client.example".into()),
        ("level", "PROJECT_ACCESS_LEVEL_VIEWER".into()),
        ("request_id", uuid()),
    ];
    let invited = a.ada.post(&format!("{page}/external"), &pairs(&form)).await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER, "{}", invited.body);
    let pending = a.ada.get("/console/invitations").await.body;
    let row = &pending[pending.find("guest@client.example").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(">external<") && row.contains("1 project"),
        "{row}"
    );
}

/// Auditor loses project.read by an edit, then goes (nobody holds it).
async fn a_custom_role_is_edited_then_deleted(a: &mut Acme) {
    let page = a.ada.get("/console/roles").await;
    let name = hidden_names(&page.body, "/roles/").remove(0);
    let csrf = page.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("name", name.as_str()),
        ("display_name", "Auditor"),
        ("permission", "audit.read"),
    ];
    let edited = a.ada.post("/console/roles/edit", &form).await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    let matrix = a.ada.get("/console/roles").await.body;
    assert!(matrix.contains("Auditor lacks project.read"), "{matrix}");
    let form = [
        ("csrf", csrf.as_str()),
        ("name", name.as_str()),
        ("reassign_to", ""),
    ];
    let deleted = a.ada.post("/console/roles/delete", &form).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert!(!a.ada.get("/console/roles").await.body.contains("Auditor"));
}

/// A team ticked on the invitation form is in the invitation.
async fn an_invitation_brings_its_team(a: &mut Acme) {
    let request = organization::CreateTeamRequest {
        parent: a.org.clone(),
        team: Some(organization::Team {
            display_name: "Ops".into(),
            ..Default::default()
        }),
        request_id: uuid(),
    };
    let mut teams = Teams::new(a.channel.clone());
    let created = teams.create_team(authed(request, &a.token)).await.unwrap();
    let team = created.into_inner().team.unwrap().name;
    let page = a.ada.get("/console/invitations").await;
    assert!(
        page.body.contains(&format!(r#"value="{team}""#)),
        "{}",
        page.body
    );
    let form = [
        ("csrf", page.csrf()),
        ("email", "dave@example.com".into()),
        ("team", team.clone()),
        ("request_id", uuid()),
    ];
    let sent = a.ada.post("/console/invitations", &pairs(&form)).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let request = rbac::ListInvitationsRequest {
        parent: a.org.clone(),
        ..Default::default()
    };
    let mut client = Invitations::new(a.channel.clone());
    let listed = client.list_invitations(authed(request, &a.token));
    let listed = listed.await.unwrap().into_inner().invitations;
    let dave = listed
        .iter()
        .find(|i| i.email == "dave@example.com")
        .unwrap();
    assert_eq!(dave.teams.len(), 1, "{dave:?}");
    assert_eq!(dave.teams[0].team, team);
    assert_eq!(dave.roles, ["roles/member"]);
}
