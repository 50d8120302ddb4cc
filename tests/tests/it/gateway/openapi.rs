//! OpenAPI describes every route; CORS answers allowed origins.

use super::*;

/// A server that allows one browser origin, app.example.com.
struct Docs {
    sandbox: Sandbox,
    rest: Rest,
}

impl Docs {
    async fn start(storage: tenantry_testkit::Storage) -> Docs {
        let sandbox = start(storage, |config| {
            config.gateway.cors_origins = vec!["https://app.example.com".into()];
        })
        .await;
        let rest = Rest::new(sandbox.http_url());
        Docs { sandbox, rest }
    }

    /// A browser's CORS preflight from `origin`, for a GET with a token.
    async fn preflight(&self, origin: &str) -> tenantry_tests::rest::Reply {
        let request = self
            .rest
            .request("OPTIONS", "/v1/me", None)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.rest.send(request).await
    }
}

#[tokio::test]
async fn openapi_describes_every_route_and_cors_answers_allowed_origins() {
    let d = Docs::start(tenantry_testkit::Storage::Sqlite).await;
    let spec = the_spec_names_bodies_methods_classes_and_streams(&d).await;
    every_reference_resolves_and_every_route_is_an_operation(&spec);
    the_docs_page_loads_nothing_from_elsewhere(&d).await;
    cors_answers_only_allowed_origins_and_request_ids_are_made(&d).await;
    d.sandbox.shutdown().await.unwrap();
}

/// The OpenAPI document.
async fn the_spec_names_bodies_methods_classes_and_streams(d: &Docs) -> Value {
    let spec = d.rest.ok("GET", "/openapi.json", None, None).await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    assert!(
        paths["/v1/organizations/{organizationId}/projects"]["post"]["requestBody"].is_object()
    );
    assert_eq!(
        paths["/v1/authz:check"]["post"]["x-grpc-method"],
        "/tenantry.authz.v1.AuthorizationService/CheckPermission"
    );
    assert_eq!(
        paths["/v1/authz:check"]["post"]["x-rate-limit-class"],
        "read"
    );
    assert_eq!(
        paths["/v1/organizations/{organizationId}/auditEvents:export"]["post"]["responses"]["200"]
            ["content"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap(),
        "application/x-ndjson"
    );
    spec
}

fn every_reference_resolves_and_every_route_is_an_operation(spec: &Value) {
    let paths = spec["paths"].as_object().unwrap();
    // Every reference resolves.
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let text = spec.to_string();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
    // The AuthZEN endpoints are there to try, besides the routes.
    let authzen = &paths["/access/v1/evaluations"]["post"];
    assert_eq!(authzen["tags"][0], "AuthZEN");
    assert!(
        authzen["requestBody"]["content"]["application/json"]["schema"]["properties"]["options"]
            .is_object()
    );
    // As many operations as the gateway has routes, and the five AuthZEN
    // endpoints.
    let gateway_routes = tenantry_gateway::routes::Routes::from_pool(
        &tenantry_gateway::routes::pool().unwrap(),
        &Default::default(),
        &Default::default(),
    )
    .unwrap()
    .all()
    .len();
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(operations, gateway_routes + 5);
}

async fn the_docs_page_loads_nothing_from_elsewhere(d: &Docs) {
    let page = d.rest.call("GET", "/docs", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/openapi.json"));
    // Its script and style come from the binary, under a policy that
    // allows no inline code and no other origin.
    let policy = page.header("content-security-policy").unwrap().to_string();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    for (asset, kind) in [
        ("/docs/docs.js", "text/javascript"),
        ("/docs/docs.css", "text/css"),
    ] {
        let reply = d.rest.call("GET", asset, None, None).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert!(reply.header("content-type").unwrap().starts_with(kind));
        assert!(
            !reply.text.contains("https://"),
            "{asset} loads nothing from elsewhere"
        );
    }
}

async fn cors_answers_only_allowed_origins_and_request_ids_are_made(d: &Docs) {
    // CORS: an allowed origin's preflight is answered; another is not.
    let allowed = d.preflight("https://app.example.com").await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let other = d.preflight("https://evil.example.com").await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // Request ids: generated when absent, echoed when sane.
    let reply = d.rest.call("GET", "/v1/auth/jwks", None, None).await;
    assert!(reply.header("x-request-id").is_some_and(|v| v.len() >= 32));
}
