//! A forgotten password at the console: the sign-in page links to the
//! request, which answers the same for any address; the mailed link sets a
//! new password once; a bad link is refused in words and changes nothing.

use tenantry_testkit::people;

use super::*;

const NEW_PASSWORD: &str = "a fresh and rather long passphrase";

#[tokio::test]
async fn a_mailed_reset_link_sets_a_new_password_and_a_bad_one_changes_nothing() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let channel = sandbox.channel().await.unwrap();
    people::sign_up(&channel, "reset@example.com", "Reset").await;
    let mut browser = Browser::new(&sandbox);
    let sign_in = browser.get("/console/sign-in").await;
    assert!(sign_in.body.contains(r#"href="/console/forgot-password""#));

    let known = ask_for_a_link(&mut browser, "reset@example.com").await;
    let unknown = ask_for_a_link(&mut browser, "nobody@example.com").await;
    assert_eq!(
        known.replace("reset@example.com", "X"),
        unknown.replace("nobody@example.com", "X")
    );
    assert!(
        sandbox
            .mail_token("nobody@example.com", "reset_password")
            .is_none()
    );

    a_bad_token_is_refused_in_words(&mut browser).await;
    assert_eq!(
        sign_in_status("reset@example.com", PASSWORD, &sandbox).await,
        StatusCode::SEE_OTHER
    );

    let token = sandbox
        .mail_token("reset@example.com", "reset_password")
        .unwrap();
    let page = browser
        .get(&format!("/console/reset-password?token={}", encode(&token)))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"<label for="new_password">New password</label>"#)
    );
    let form = [
        ("csrf", page.csrf()),
        ("token", token.clone()),
        ("new_password", NEW_PASSWORD.into()),
    ];
    let done = browser.post("/console/reset-password", &pairs(&form)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Password changed"));

    assert_eq!(
        sign_in_status("reset@example.com", NEW_PASSWORD, &sandbox).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in_status("reset@example.com", PASSWORD, &sandbox).await,
        StatusCode::UNAUTHORIZED
    );
    let again = browser.post("/console/reset-password", &pairs(&form)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "the link works once");
}

/// Asks for a reset link for `email`; the page's words.
async fn ask_for_a_link(browser: &mut Browser, email: &str) -> String {
    let page = browser.get("/console/forgot-password").await;
    assert!(page.body.contains(r#"<label for="email">Email</label>"#));
    let csrf = page.csrf();
    let form = [("csrf", csrf.as_str()), ("email", email)];
    let answer = browser.post("/console/forgot-password", &form).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("Check your mail"));
    answer.body.split("<main").nth(1).unwrap().to_string()
}

async fn a_bad_token_is_refused_in_words(browser: &mut Browser) {
    let page = browser.get("/console/reset?token=not-a-token").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("token", "not-a-token"),
        ("new_password", NEW_PASSWORD),
    ];
    let refused = browser.post("/console/reset-password", &form).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("This reset link is not valid"),
        "{}",
        refused.body
    );
    let verify = browser.get("/console/verify-email?token=not-a-token").await;
    assert_eq!(
        verify.status,
        StatusCode::BAD_REQUEST,
        "the mail's path is served too"
    );
}

/// The status of a console sign-in with `password` in a new browser.
pub(super) async fn sign_in_status(email: &str, password: &str, sandbox: &Sandbox) -> StatusCode {
    let mut browser = Browser::new(sandbox);
    let csrf = browser.get("/console/sign-in").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", password),
    ];
    browser.post("/console/sign-in", &form).await.status
}

/// A form of owned values as the browser takes it.
pub(super) fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
