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
