//! Where addresses are verified before sign-in: sign-up says "check your
//! mail", and the mailed token at /console/verify signs the user in.

use super::*;

#[tokio::test]
async fn the_mailed_token_verifies_and_signs_in_at_the_console() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |config| {
        config.identity.verify_before_sign_in = true;
    })
    .await;
    let mut browser = Browser::new(&sandbox);
    let csrf = browser.get("/console/sign-up").await.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("display_name", "Vera"),
        ("email", "vera@example.com"),
        ("password", PASSWORD),
    ];
    let answer = browser.post("/console/sign-up", &form).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("Check your mail"), "{}", answer.body);
    assert_eq!(browser.get("/console/").await.status, StatusCode::SEE_OTHER);

    let bad = browser.get("/console/verify?token=not-a-token").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains(r#"role="alert""#));

    let token = sandbox
        .mail_token("vera@example.com", "verify_email")
        .unwrap();
    let verified = browser
        .get(&format!("/console/verify?token={}", encode(&token)))
        .await;
    assert_eq!(verified.status, StatusCode::SEE_OTHER, "{}", verified.body);
    assert_eq!(verified.location(), "/console/");
    let overview = browser.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("vera@example.com"));
}
