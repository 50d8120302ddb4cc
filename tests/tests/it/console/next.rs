//! A page of a signed-out browser leads to sign-in and back; `next` stays
//! inside the console.

use super::*;

#[tokio::test]
async fn a_signed_out_page_leads_to_sign_in_and_back() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let mut browser = Browser::new(&sandbox);
    browser.sign_up("back@example.com").await;
    let mut stranger = Browser::new(&sandbox);
    let page = stranger.get("/console/invitations").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/console/sign-in?next=%2Fconsole%2Finvitations"
    );

    let form = stranger.get(page.location()).await;
    assert!(
        form.body
            .contains(r#"name="next" value="/console/invitations""#)
    );
    let signed_in = stranger
        .post(
            "/console/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "back@example.com"),
                ("password", PASSWORD),
                ("next", "/console/invitations"),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/console/invitations");
    assert_eq!(
        stranger.get("/console/invitations").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_next_outside_the_console_is_ignored() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    Browser::new(&sandbox).sign_up("next@example.com").await;
    for next in [
        "https://evil.example/",
        "//evil.example/console/",
        "/console//evil.example",
    ] {
        let mut browser = Browser::new(&sandbox);
        let form = browser
            .get(&format!("/console/sign-in?next={}", encode(next)))
            .await;
        assert!(!form.body.contains("evil.example"), "{next}");
        let answer = browser
            .post(
                "/console/sign-in",
                &[
                    ("csrf", &form.csrf()),
                    ("email", "next@example.com"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.location(), "/console/", "{next}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_in_words() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    Browser::new(&sandbox).sign_up("words@example.com").await;
    let mut browser = Browser::new(&sandbox);
    let csrf = browser.get("/console/sign-in").await.csrf();
    let answer = browser
        .post(
            "/console/sign-in",
            &[
                ("csrf", &csrf),
                ("email", "words@example.com"),
                ("password", "nope"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body.contains(r#"role="alert""#), "{}", answer.body);
    assert!(
        !answer.body.contains("session has ended"),
        "{}",
        answer.body
    );
    assert_eq!(browser.get("/console/").await.status, StatusCode::SEE_OTHER);
}

/// A form sent from a session that was ended elsewhere ("sign out
/// everywhere" in another browser) creates nothing and leads to sign-in,
/// and back to the page the form was on.
#[tokio::test]
async fn a_form_of_an_ended_session_leads_to_sign_in_and_back_to_its_page() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let mut laptop = Browser::new(&sandbox);
    laptop.sign_up("ended@example.com").await;
    let projects = laptop.get("/console/projects").await;
    let csrf = projects.csrf();

    let mut phone = Browser::new(&sandbox);
    let form = phone.get("/console/sign-in").await;
    let signed_in = phone
        .post(
            "/console/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "ended@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let overview = phone.get("/console/").await;
    let ended = phone
        .post(
            "/console/sign-out-everywhere",
            &[("csrf", &overview.csrf())],
        )
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);

    let body = serde_urlencoded_pairs(&[("csrf", &csrf), ("display_name", "Too late")]);
    let headers = [
        (
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".to_string(),
        ),
        (header::ORIGIN, laptop.base.clone()),
        (header::REFERER, format!("{}/console/projects", laptop.base)),
    ];
    let refused = laptop
        .send(
            Method::POST,
            "/console/projects",
            body.into_bytes(),
            &headers,
        )
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER, "{}", refused.body);
    assert_eq!(
        refused.location(),
        "/console/sign-in?next=%2Fconsole%2Fprojects"
    );
    let listed = projects_after_signing_in_again(&mut laptop).await;
    assert!(!listed.contains("Too late"), "nothing was created");
}

/// The projects page after signing in again: what the organization holds.
async fn projects_after_signing_in_again(browser: &mut Browser) -> String {
    let form = browser.get("/console/sign-in").await;
    let csrf = form.csrf();
    let again = browser
        .post(
            "/console/sign-in",
            &[
                ("csrf", csrf.as_str()),
                ("email", "ended@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    browser.get("/console/projects").await.body
}
