//! Bad input is refused with the right status and writes nothing.

use super::*;

/// A 400 whose BadRequest names `field`.
fn assert_refused(reply: &tenantry_tests::rest::Reply, field: &str) {
    assert_eq!(
        (reply.status, reply.violation().as_deref()),
        (400, Some(field)),
        "{}",
        reply.text
    );
}

/// Ada and Eve, each with the organization they signed up with, and how
/// many projects each had before any bad input.
struct Edge {
    sandbox: Sandbox,
    rest: Rest,
    ada: SignedUp,
    eve: SignedUp,
    org: String,
    before: usize,
    eve_before: usize,
    create: String,
}

impl Edge {
    async fn start() -> Edge {
        let sandbox = start(tenantry_testkit::Storage::Sqlite, |config| {
            config.gateway.max_body_bytes = 64 * 1024;
        })
        .await;
        let rest = Rest::new(sandbox.http_url());
        let ada = sign_up(&rest, "ada@example.com", json!({})).await;
        let eve = sign_up(&rest, "eve@example.com", json!({})).await;
        let org = ada.organization.clone();
        let before = count_projects(&rest, &org, &ada.token).await;
        let eve_before = count_projects(&rest, &eve.organization, &eve.token).await;
        let create = format!("/v1/{org}/projects");
        Edge {
            sandbox,
            rest,
            ada,
            eve,
            org,
            before,
            eve_before,
            create,
        }
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_the_right_status_and_writes_nothing() {
    let e = Edge::start().await;
    malformed_bodies_are_400_naming_the_field(&e).await;
    huge_bodies_are_413_declared_or_not(&e).await;
    path_tricks_are_refused(&e).await;
    missing_malformed_and_forged_tokens_are_401(&e).await;
    api_keys_are_exchanged_cached_and_bound_to_their_organization(&e).await;
    nothing_was_written(&e).await;
    e.sandbox.shutdown().await.unwrap();
}

async fn malformed_bodies_are_400_naming_the_field(e: &Edge) {
    let Edge {
        rest, ada, create, ..
    } = e;
    // Malformed JSON, wrong types, unknown fields: 400 naming the field.
    let bad = rest
        .send(
            rest.request("POST", create, Some(&ada.token))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"displayName\": ")))
                .unwrap(),
        )
        .await;
    assert_refused(&bad, "body");
    let bad = rest
        .call(
            "POST",
            create,
            Some(&ada.token),
            Some(json!({"displayName": 5})),
        )
        .await;
    assert_refused(&bad, "project.displayName");
    let bad = rest
        .call(
            "POST",
            create,
            Some(&ada.token),
            Some(json!({"displayName": "x", "colour": "red"})),
        )
        .await;
    assert_refused(&bad, "project.colour");
    assert!(bad.text.contains("colour"));
    let bad = rest
        .call(
            "GET",
            &format!("{create}?pageSize=ten"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_refused(&bad, "pageSize");
    let bad = rest
        .call(
            "GET",
            &format!("{create}?shoeSize=10"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_refused(&bad, "shoeSize");
    let bad = rest
        .send(
            rest.request("POST", create, Some(&ada.token))
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await;
    assert_eq!(bad.status, 415);
}

async fn huge_bodies_are_413_declared_or_not(e: &Edge) {
    let Edge {
        rest, ada, create, ..
    } = e;
    // Huge bodies: 413, whether the length is declared or not.
    let huge = format!("{{\"displayName\": \"{}\"}}", "x".repeat(100 * 1024));
    let bad = rest
        .send(
            rest.request("POST", create, Some(&ada.token))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(huge.clone())))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (bad.status, bad.reason().as_deref()),
        (413, Some("BODY_TOO_LARGE"))
    );
    let chunks = futures::stream::iter(
        huge.into_bytes()
            .chunks(4096)
            .map(|c| {
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::copy_from_slice(
                    c,
                )))
            })
            .collect::<Vec<_>>(),
    );
    let streaming = Client::builder(TokioExecutor::new())
        .build_http::<http_body_util::StreamBody<_>>()
        .request(
            http::Request::post(format!("{}{create}", rest.base))
                .header("authorization", format!("Bearer {}", ada.token))
                .header("content-type", "application/json")
                .body(http_body_util::StreamBody::new(chunks))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(streaming.status(), 413);
}

async fn path_tricks_are_refused(e: &Edge) {
    let Edge { rest, ada, org, .. } = e;
    // Traversal and encoding tricks in path parameters.
    for path in [
        format!("/v1/{org}/projects/..").replace("/projects/..", "/projects/.."),
        format!("/v1/{org}/projects/%2e%2e"),
        format!("/v1/{org}/projects/a%2Fb"),
        format!("/v1/{org}/projects/a%00b"),
        "/v1/organizations/%ZZ/projects".to_string(),
    ] {
        let bad = rest.call("GET", &path, Some(&ada.token), None).await;
        assert_eq!(bad.status, 400, "{path}: {}", bad.text);
    }
    let bad = rest
        .call("GET", "/v1/nothing/here", Some(&ada.token), None)
        .await;
    assert_eq!(
        (bad.status, bad.reason().as_deref()),
        (404, Some("NO_ROUTE"))
    );
    let bad = rest
        .call("PUT", "/v1/organizations", Some(&ada.token), None)
        .await;
    assert_eq!(bad.status, 405);
    assert!(bad.header("allow").unwrap().contains("POST"));
}

async fn missing_malformed_and_forged_tokens_are_401(e: &Edge) {
    let Edge {
        rest,
        ada,
        org,
        create,
        ..
    } = e;
    // Missing, malformed and forged tokens: 401 at the edge.
    let bad = rest
        .call("POST", create, None, Some(json!({"displayName": "x"})))
        .await;
    assert_eq!(bad.status, 401);
    let bad = rest
        .call(
            "POST",
            create,
            Some("not-a-jwt"),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(bad.status, 401);
    let forged = {
        use tenantry_kit::auth::{Claims, PrincipalKind, SigningKey};
        let now = chrono::Utc::now().timestamp();
        SigningKey::generate().sign(&Claims {
            iss: "tenantry".into(),
            aud: "tenantry".into(),
            sub: ada.id.clone(),
            sid: None,
            org: Some(id(org)),
            iat: now,
            exp: now + 600,
            nbf: None,
            jti: "forged".into(),
            amr: vec!["pwd".into()],
            kind: PrincipalKind::User,
            perms: None,
            team: None,
            mfa_pending: false,
            name: None,
        })
    };
    let bad = rest
        .call(
            "POST",
            create,
            Some(&forged),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(bad.status, 401, "{}", bad.text);
    let two = rest
        .send(
            rest.request("GET", create, Some(&ada.token))
                .header("x-api-key", "tnt_x")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(two.status, 401, "two credentials are refused");
}

async fn api_keys_are_exchanged_cached_and_bound_to_their_organization(e: &Edge) {
    let Edge {
        rest,
        ada,
        eve,
        org,
        create,
        ..
    } = e;
    // API keys: exchanged at the edge, cached, bound to their organization.
    let key = rest
        .until_ok(
            "POST",
            &format!("/v1/{org}/apiKeys"),
            Some(&ada.token),
            Some(json!({"displayName": "ci", "permissions": ["organization.read"]})),
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        let listed = rest
            .send(
                rest.request("GET", create, None)
                    .header("x-api-key", &key)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(listed.status, 200, "{}", listed.text);
    }
    let listed = rest.call("GET", create, Some(&key), None).await;
    assert_eq!(listed.status, 200, "an API key as a bearer credential");
    let other = rest
        .call(
            "GET",
            &format!("/v1/{}/projects", eve.organization),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        other.status, 404,
        "an API key for another organization: {}",
        other.text
    );
    let wrote = rest
        .call(
            "POST",
            &format!("/v1/{}/projects", eve.organization),
            Some(&key),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(wrote.status, 404, "{}", wrote.text);
    let bad = rest.call("GET", create, Some("tnt_forged_key"), None).await;
    assert_eq!(bad.status, 401);
    let metrics = rest.call("GET", "/metrics", None, None).await.text;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("tenantry_gateway_api_key_exchanges_total") && l.contains("cached")
        ),
        "the key was exchanged once and then served from the cache"
    );
}

async fn nothing_was_written(e: &Edge) {
    let Edge {
        rest,
        ada,
        eve,
        org,
        before,
        eve_before,
        ..
    } = e;
    // Nothing was written by any of it.
    assert_eq!(count_projects(rest, org, &ada.token).await, *before);
    assert_eq!(
        count_projects(rest, &eve.organization, &eve.token).await,
        *eve_before
    );
}
