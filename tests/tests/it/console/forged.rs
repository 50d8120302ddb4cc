//! A POST without this session's CSRF token, or from another site, is
//! refused with 403 and changes nothing.

use super::*;

#[tokio::test]
async fn forged_posts_are_refused_and_write_nothing() {
    for storage in tenantry_testkit::storages() {
        let sandbox = start(storage, |_| {}).await;
        let mut browser = Browser::new(&sandbox);
        browser.sign_up("forged@example.com").await;
        let csrf = browser.get("/console/projects").await.csrf();

        let no_token = browser
            .post("/console/projects", &[("display_name", "No token")])
            .await;
        let wrong = [
            ("csrf", "0".repeat(64)),
            ("display_name", "Wrong token".into()),
        ];
        let wrong = browser.post("/console/projects", &pairs(&wrong)).await;
        let foreign = [("csrf", csrf.clone()), ("display_name", "Foreign".into())];
        let foreign = browser
            .post_from(
                "/console/projects",
                &pairs(&foreign),
                Some("https://evil.example"),
            )
            .await;
        let no_origin = browser
            .post_from("/console/projects", &pairs(&foreign_less(&csrf)), None)
            .await;
        for answer in [&no_token, &wrong, &foreign, &no_origin] {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
        }
        let listed = browser.get("/console/projects").await.body;
        for name in ["No token", "Wrong token", "Foreign", "No origin"] {
            assert!(!listed.contains(name), "{name} was created");
        }

        // The same form with the session's token, from this host, works.
        let good = [("csrf", csrf), ("display_name", "Genuine".into())];
        let created = browser.post("/console/projects", &pairs(&good)).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        assert!(
            browser
                .get("/console/projects")
                .await
                .body
                .contains("Genuine")
        );
    }
}

fn foreign_less(csrf: &str) -> [(&'static str, String); 2] {
    [
        ("csrf", csrf.to_string()),
        ("display_name", "No origin".into()),
    ]
}

fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
