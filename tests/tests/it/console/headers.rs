//! The session cookie's flags and the security headers of every page.

use super::*;

#[tokio::test]
async fn the_cookie_is_http_only_lax_and_scoped_to_the_console() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let mut browser = Browser::new(&sandbox);
    let page = browser.get("/console/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("tenantry-console="), "{cookie}");
    for flag in ["; Path=/console", "; HttpOnly", "; SameSite=Lax"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_eq!(
        page.headers[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.headers[header::REFERRER_POLICY], "same-origin");
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_with_the_secure_prefix() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |config| {
        config.console.public_url = Some("https://admin.example.com".into());
    })
    .await;
    let page = Browser::new(&sandbox).get("/console/sign-in").await;
    let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("__Secure-tenantry-console="), "{cookie}");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn the_stylesheet_is_immutable_and_unknown_pages_are_not_found() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let mut browser = Browser::new(&sandbox);
    let page = browser.get("/console/sign-in").await;
    let start = page.body.find("/console/static/").unwrap();
    let path = page.body[start..].split('"').next().unwrap().to_string();
    let style = browser.get(&path).await;
    assert_eq!(style.status, StatusCode::OK);
    assert!(
        style.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(
        browser.get("/console/static/console-0.css").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser.get("/console/nowhere").await.status,
        StatusCode::NOT_FOUND
    );
}
