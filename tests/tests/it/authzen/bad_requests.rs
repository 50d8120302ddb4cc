//! Bad requests: the specification's statuses with a message, and
//! decisions unchanged afterwards.

use super::*;

pub(super) async fn bad_requests_get_the_specifications_errors(f: &Fixture) {
    let Fixture { ada, eve, .. } = f;
    let good = json!({"subject": user(ada), "resource": project(&ada.projects[0]), "action": {"name": "project.read"}});
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let with = |pointer: &str, value: Value| {
        let mut body = good.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let cases = [
        ("evaluation", without("subject"), "`subject` is required"),
        ("evaluation", without("action"), "`action` is required"),
        (
            "evaluation",
            with("/resource/id", json!(7)),
            "`resource.id` must be a string",
        ),
        (
            "evaluation",
            with("/subject/type", json!("")),
            "`subject.type` is required",
        ),
        (
            "evaluation",
            with("/action", json!("read")),
            "`action` must be an object",
        ),
        ("evaluation", json!([1]), "JSON object"),
        (
            "evaluations",
            json!({"evaluations": {}}),
            "`evaluations` must be an array",
        ),
        (
            "evaluations",
            json!({"evaluations": [{"resource": project("p")}]}),
            "evaluations[0]: `subject` is required",
        ),
        (
            "evaluations",
            json!({"options": {"evaluations_semantic": "some"}, "evaluations": []}),
            "evaluations_semantic",
        ),
        (
            "search/subject",
            json!({"subject": {"id": "x"}, "action": {"name": "project.read"}, "resource": project("p")}),
            "`subject.type` is required",
        ),
        (
            "search/resource",
            json!({"subject": user(ada), "resource": {"type": "project"}}),
            "`action` is required",
        ),
        (
            "search/resource",
            json!({"subject": user(ada), "action": {"name": "project.read"}, "resource": {"type": "project"}, "page": {"limit": -2}}),
            "page.limit",
        ),
        (
            "search/action",
            json!({"subject": user(ada), "resource": {"type": "project"}}),
            "`resource.id` is required",
        ),
    ];
    for (endpoint, body, message) in cases {
        let reply = f.post(endpoint, Some(&ada.token), body).await;
        assert_eq!(reply.status, 400, "{endpoint}: {}", reply.text);
        assert!(
            reply.text.contains(message),
            "{endpoint}: {} lacks {message}",
            reply.text
        );
    }
    // Not JSON, the wrong media type, no or a bad credential.
    let raw = |content_type: &'static str, body: &'static str| {
        f.rest
            .request("POST", "/access/v1/evaluation", Some(&ada.token))
            .header("content-type", content_type)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
    };
    let malformed = f.rest.send(raw("application/json", "{\"subject\": ")).await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    assert_eq!(f.rest.send(raw("text/plain", "{}")).await.status, 415);
    let anonymous = f.post("evaluation", None, good.clone()).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(
        f.post("evaluation", Some("not-a-token"), good.clone())
            .await
            .status,
        401
    );
    // Ada may not ask about Eve: 403.
    let about_eve = with("/subject", user(eve));
    let forbidden = f.post("evaluation", Some(&ada.token), about_eve).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    let get = f
        .rest
        .call("GET", "/access/v1/evaluation", Some(&ada.token), None)
        .await;
    assert_eq!(get.status, 405);
    // Nothing changed: the decision is what it was.
    assert_eq!(f.ok("evaluation", good).await["decision"], true);
}
