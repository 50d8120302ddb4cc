//! The edge gateway through its public contract: REST/JSON and gRPC-Web
//! against a server started by the test. The main journey runs over REST
//! (SQLite and Postgres) and over gRPC-Web; bad input answers the right
//! status and writes nothing; rate limits answer 429 and recover; API keys
//! are exchanged at the edge; OpenAPI describes every route.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::audit::v1 as audit_pb;
use tenantry_testkit::{Sandbox, authed, eventually, last_id as id, storages};
use tenantry_tests::rest::Rest;

const PASSWORD: &str = "correct horse battery staple";

struct SignedUp {
    id: String,
    token: String,
    organization: String,
}

async fn sign_up(rest: &Rest, email: &str, extra: Value) -> SignedUp {
    let mut body = json!({"email": email, "password": PASSWORD, "displayName": email});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let reply = rest.ok("POST", "/v1/auth/signup", None, Some(body)).await;
    SignedUp {
        id: id(reply["user"]["name"].as_str().unwrap()),
        token: reply["tokens"]["accessToken"].as_str().unwrap().to_string(),
        organization: reply["organization"].as_str().unwrap().to_string(),
    }
}

async fn start(
    storage: tenantry_testkit::Storage,
    change: impl FnOnce(&mut tenantry::config::Config) + Send + 'static,
) -> Sandbox {
    Sandbox::builder()
        .services(&ServiceKind::ALL)
        .storage(storage)
        .configure(|config| {
            config.identity.platform_admins = vec!["root@example.com".into()];
            // Tests sign many users up from one address.
            config.gateway.auth_per_address_per_minute = 10_000;
            change(config);
        })
        .start()
        .await
        .unwrap()
}

fn check_body(user: &str, org: &str, permission: &str, fresh: &Value) -> Value {
    json!({
        "resource": {"objectType": "organization", "objectId": org},
        "permission": permission,
        "subject": {"object": {"objectType": "user", "objectId": user}},
        "consistency": {"atLeastAsFresh": fresh},
    })
}

#[tokio::test]
async fn the_journey_runs_over_rest() {
    for storage in storages() {
        let sandbox = start(storage, |_| {}).await;
        let rest = Rest::new(sandbox.http_url());
        let ada = sign_up(&rest, "ada@example.com", json!({})).await;

        // An organization and a project.
        let org = rest
            .ok(
                "POST",
                "/v1/organizations",
                Some(&ada.token),
                Some(json!({"displayName": "Acme"})),
            )
            .await["organization"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let org_id = id(&org);
        // The request id the client picks reaches the audit log; an
        // X-Forwarded-For from a peer that is no trusted proxy does not.
        let create_project = || {
            rest.request("POST", &format!("/v1/{org}/projects"), Some(&ada.token))
                .header("content-type", "application/json")
                .header("x-request-id", "journey-project-1")
                .header("x-forwarded-for", "203.0.113.66")
                .body(Full::new(Bytes::from(
                    json!({"displayName": "Rocket"}).to_string(),
                )))
                .unwrap()
        };
        // The creator's next call sees the organization: no retry.
        let created = rest.send(create_project()).await;
        assert_eq!(created.status, 200, "{}", created.text);
        assert_eq!(created.header("x-request-id"), Some("journey-project-1"));
        let project = created.body["project"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(project.starts_with(&format!("{org}/projects/")));

        // Invite Bob, who signs up with the invitation.
        let invitation = rest
            .ok(
                "POST",
                &format!("/v1/{org}/invitations"),
                Some(&ada.token),
                Some(json!({"email": "bob@example.com", "roles": ["roles/member"]})),
            )
            .await;
        assert_eq!(invitation["invitation"]["state"], "STATE_PENDING");
        assert_eq!(
            invitation["invitation"]["inviterDisplayName"],
            "ada@example.com"
        );
        let token = sandbox
            .mail_token("bob@example.com", "invitation")
            .expect("the invitation was mailed");
        let bob = sign_up(&rest, "bob@example.com", json!({"invitationToken": token})).await;
        assert_eq!(bob.organization, org);
        let membership = format!("{org}/memberships/{}", bob.id);

        // A role makes Bob able to create projects; removing it stops him.
        let written = rest
            .ok(
                "PATCH",
                &format!("/v1/{membership}?updateMask=roles"),
                Some(&ada.token),
                Some(json!({"roles": ["roles/member", "roles/admin"]})),
            )
            .await["writtenAt"]
            .clone();
        let answer = rest
            .ok(
                "POST",
                "/v1/authz:check",
                Some(&bob.token),
                Some(check_body(&bob.id, &org_id, "project.create", &written)),
            )
            .await;
        assert_eq!(
            answer["permissionship"], "PERMISSIONSHIP_ALLOWED",
            "{answer}"
        );
        let written = rest
            .ok(
                "PATCH",
                &format!("/v1/{membership}?updateMask=roles"),
                Some(&ada.token),
                Some(json!({"roles": ["roles/member"]})),
            )
            .await["writtenAt"]
            .clone();
        let answer = rest
            .ok(
                "POST",
                "/v1/authz:check",
                Some(&bob.token),
                Some(check_body(&bob.id, &org_id, "project.create", &written)),
            )
            .await;
        assert_eq!(
            answer["permissionship"], "PERMISSIONSHIP_DENIED",
            "{answer}"
        );

        // The audit log tells the story, with the client's request id.
        let mut events = Vec::new();
        for _ in 0..400 {
            let page = rest
                .ok(
                    "GET",
                    &format!("/v1/{org}/auditEvents?pageSize=100"),
                    Some(&ada.token),
                    None,
                )
                .await;
            events = page["auditEvents"].as_array().cloned().unwrap_or_default();
            let updates = events
                .iter()
                .filter(|e| e["action"] == "organization.member.updated")
                .count();
            if updates >= 2 && events.iter().any(|e| e["action"] == "project.created") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let project_created = events
            .iter()
            .find(|e| e["action"] == "project.created")
            .expect("project.created is audited");
        assert_eq!(
            project_created["requestId"], "journey-project-1",
            "{project_created}"
        );
        assert_eq!(
            project_created["clientAddress"], "127.0.0.1",
            "{project_created}"
        );
        assert!(
            events
                .iter()
                .any(|e| e["action"] == "organization.member.invitation_accepted")
        );
        // Membership changes are found by the member (a nested filter in
        // the query string).
        let about_bob = rest
            .ok(
                "GET",
                &format!(
                    "/v1/{org}/auditEvents?filter.targetType=user&filter.targetId={}",
                    bob.id
                ),
                Some(&ada.token),
                None,
            )
            .await;
        let actions: Vec<&str> = about_bob["auditEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert!(
            actions.contains(&"organization.member.added")
                && actions.contains(&"organization.member.updated"),
            "{actions:?}"
        );
        // 64-bit integers travel as strings in proto3 JSON.
        assert!(project_created["sequence"].is_string(), "{project_created}");

        // A server stream arrives as newline-delimited JSON.
        let export = rest
            .call(
                "POST",
                &format!("/v1/{org}/auditEvents:export"),
                Some(&ada.token),
                Some(json!({"format": "EXPORT_FORMAT_JSONL"})),
            )
            .await;
        assert_eq!(export.status, 200, "{}", export.text);
        assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
        let lines: Vec<Value> = export
            .text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.get("error").is_none()),
            "{}",
            export.text
        );

        // Identity's keys, at the well-known places.
        let jwks = rest.ok("GET", "/.well-known/jwks.json", None, None).await;
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        let discovery = rest
            .ok("GET", "/.well-known/openid-configuration", None, None)
            .await;
        assert!(
            discovery["jwks_uri"]
                .as_str()
                .unwrap()
                .ends_with("/.well-known/jwks.json")
        );
        // The token endpoint is where tokens are refreshed.
        assert!(
            discovery["token_endpoint"]
                .as_str()
                .unwrap()
                .ends_with("/v1/auth/refresh"),
            "{discovery}"
        );

        sandbox.shutdown().await.unwrap();
    }
}

/// The gRPC clients generated from the contracts, over gRPC-Web (HTTP/1.1)
/// through the gateway, and over plain gRPC through its port.
#[tokio::test]
async fn the_journey_runs_over_grpc_web() {
    use tenantry_proto::tenantry::authz::v1 as authz;
    use tenantry_proto::tenantry::identity::v1 as identity;
    use tenantry_proto::tenantry::organization::v1 as org_pb;
    use tenantry_proto::tenantry::rbac::v1 as rbac;

    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let http = Client::builder(TokioExecutor::new()).build_http();
    let web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http);
    let origin: http::Uri = sandbox.http_url().parse().unwrap();

    let mut accounts = identity::identity_service_client::IdentityServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    let signed = accounts
        .sign_up(identity::SignUpRequest {
            email: "ada@example.com".into(),
            password: PASSWORD.into(),
            display_name: "Ada".into(),
            ..Default::default()
        })
        .await
        .expect("sign-up over gRPC-Web")
        .into_inner();
    let ada = signed.tokens.unwrap().access_token;
    let ada_id = id(&signed.user.unwrap().name);
    let org = signed.organization;

    let mut projects = org_pb::project_service_client::ProjectServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    let mut project = None;
    for _ in 0..400 {
        match projects
            .create_project(authed(
                org_pb::CreateProjectRequest {
                    parent: org.clone(),
                    project: Some(org_pb::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada,
            ))
            .await
        {
            Ok(created) => {
                project = created.into_inner().project;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert!(project.is_some(), "CreateProject over gRPC-Web");

    let mut invitations = rbac::invitation_service_client::InvitationServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    invitations
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: org.clone(),
                invitation: Some(rbac::Invitation {
                    email: "bob@example.com".into(),
                    roles: vec!["roles/member".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada,
        ))
        .await
        .unwrap();
    let token = sandbox.mail_token("bob@example.com", "invitation").unwrap();
    let bob = accounts
        .sign_up(identity::SignUpRequest {
            email: "bob@example.com".into(),
            password: PASSWORD.into(),
            display_name: "Bob".into(),
            invitation_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let bob_token = bob.tokens.unwrap().access_token;
    let bob_id = id(&bob.user.unwrap().name);

    // Plain gRPC through the gateway's port (HTTP/2 without TLS).
    let channel = tonic::transport::Endpoint::from_shared(sandbox.http_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut members = rbac::membership_service_client::MembershipServiceClient::new(channel);
    let set_roles = |roles: Vec<&str>| rbac::UpdateMembershipRequest {
        membership: Some(rbac::Membership {
            name: format!("{org}/memberships/{bob_id}"),
            roles: roles.into_iter().map(str::to_string).collect(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["roles".into()],
        }),
    };
    let mut checks = authz::authorization_service_client::AuthorizationServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    for (roles, expected) in [
        (
            vec!["roles/member", "roles/admin"],
            authz::Permissionship::Allowed,
        ),
        (vec!["roles/member"], authz::Permissionship::Denied),
    ] {
        let written = members
            .update_membership(authed(set_roles(roles), &ada))
            .await
            .unwrap()
            .into_inner()
            .written_at;
        let answer = checks
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    consistency: Some(authz::Consistency {
                        requirement: written.map(authz::consistency::Requirement::AtLeastAsFresh),
                    }),
                    resource: Some(authz::ObjectReference {
                        object_type: "organization".into(),
                        object_id: id(&org),
                    }),
                    permission: "project.create".into(),
                    subject: Some(authz::SubjectReference {
                        object: Some(authz::ObjectReference {
                            object_type: "user".into(),
                            object_id: bob_id.clone(),
                        }),
                        ..Default::default()
                    }),
                    with_tracing: false,
                },
                &bob_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.permissionship(), expected);
    }
    // Unauthenticated calls stop at the edge, with a gRPC status.
    let refused = checks
        .check_permission(authz::CheckPermissionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let _ = ada_id;
    sandbox.shutdown().await.unwrap();
}

/// A 400 whose BadRequest names `field`.
fn assert_refused(reply: &tenantry_tests::rest::Reply, field: &str) {
    assert_eq!(
        (reply.status, reply.violation().as_deref()),
        (400, Some(field)),
        "{}",
        reply.text
    );
}

async fn count_projects(rest: &Rest, org: &str, token: &str) -> usize {
    rest.until_ok("GET", &format!("/v1/{org}/projects"), Some(token), None)
        .await["projects"]
        .as_array()
        .map_or(0, |p| p.len())
}

#[tokio::test]
async fn bad_input_is_refused_with_the_right_status_and_writes_nothing() {
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

    // Malformed JSON, wrong types, unknown fields: 400 naming the field.
    let bad = rest
        .send(
            rest.request("POST", &create, Some(&ada.token))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"displayName\": ")))
                .unwrap(),
        )
        .await;
    assert_refused(&bad, "body");
    let bad = rest
        .call(
            "POST",
            &create,
            Some(&ada.token),
            Some(json!({"displayName": 5})),
        )
        .await;
    assert_refused(&bad, "project.displayName");
    let bad = rest
        .call(
            "POST",
            &create,
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
            rest.request("POST", &create, Some(&ada.token))
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await;
    assert_eq!(bad.status, 415);

    // Huge bodies: 413, whether the length is declared or not.
    let huge = format!("{{\"displayName\": \"{}\"}}", "x".repeat(100 * 1024));
    let bad = rest
        .send(
            rest.request("POST", &create, Some(&ada.token))
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

    // Missing, malformed and forged tokens: 401 at the edge.
    let bad = rest
        .call("POST", &create, None, Some(json!({"displayName": "x"})))
        .await;
    assert_eq!(bad.status, 401);
    let bad = rest
        .call(
            "POST",
            &create,
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
            org: Some(id(&org)),
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
            &create,
            Some(&forged),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(bad.status, 401, "{}", bad.text);
    let two = rest
        .send(
            rest.request("GET", &create, Some(&ada.token))
                .header("x-api-key", "tnt_x")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(two.status, 401, "two credentials are refused");

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
                rest.request("GET", &create, None)
                    .header("x-api-key", &key)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(listed.status, 200, "{}", listed.text);
    }
    let listed = rest.call("GET", &create, Some(&key), None).await;
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
    let bad = rest
        .call("GET", &create, Some("tnt_forged_key"), None)
        .await;
    assert_eq!(bad.status, 401);
    let metrics = rest.call("GET", "/metrics", None, None).await.text;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("tenantry_gateway_api_key_exchanges_total") && l.contains("cached")
        ),
        "the key was exchanged once and then served from the cache"
    );

    // Nothing was written by any of it.
    assert_eq!(count_projects(&rest, &org, &ada.token).await, before);
    assert_eq!(
        count_projects(&rest, &eve.organization, &eve.token).await,
        eve_before
    );
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn rate_limits_follow_the_plan_answer_429_and_recover() {
    // A FREE plan with a read limit of 30 a minute.
    let catalog = tempfile::tempdir().unwrap();
    let path = catalog.path().join("plans.toml");
    std::fs::write(
        &path,
        "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n\
         [plans.free.limits.rate_limits_per_minute]\nread = 30\nwrite = 600\nauth = 600\nexpensive = 60\n",
    )
    .unwrap();
    let sandbox = start(tenantry_testkit::Storage::Sqlite, move |config| {
        config.gateway.auth_per_address_per_minute = 6;
        config.billing.catalog_file = Some(path);
    })
    .await;
    let rest = Rest::new(sandbox.http_url());
    let ada = sign_up(&rest, "ada@example.com", json!({})).await;
    let bob = sign_up(&rest, "bob@example.com", json!({})).await;
    // The plan reaches billing with the organization's event.
    let limits = format!("/v1/{}/rateLimits", ada.organization);
    let mut read = Value::Null;
    for _ in 0..200 {
        let reply = rest.call("GET", &limits, Some(&bob.token), None).await;
        assert_eq!(
            reply.status, 404,
            "a stranger does not see another organization's limits"
        );
        let reply = rest.call("GET", &limits, Some(&ada.token), None).await;
        if reply.status == 200 {
            read = reply.body["rateLimitsPerMinute"]["read"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read, "30");
    // Let the reads spent above (at most 2 a 100 ms) come back.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut denied = None;
    for sent in 1..=40 {
        let reply = rest.call("GET", "/v1/me", Some(&ada.token), None).await;
        if reply.status == 429 {
            denied = Some((sent, reply));
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.header("ratelimit-limit"), Some("30"));
        let remaining: u64 = reply
            .header("ratelimit-remaining")
            .unwrap()
            .parse()
            .unwrap();
        assert!(remaining < 30, "{remaining}");
    }
    let (sent, reply) = denied.expect("a read over the limit is refused");
    assert!(sent <= 31, "refused after {sent} reads");
    assert_eq!(reply.body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(reply.reason().as_deref(), Some("RATE_LIMITED"));
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=2).contains(&retry),
        "one read every two seconds: {retry}"
    );
    assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
    assert!(
        reply.body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
    );

    // Bob's organization has its own budget.
    assert_eq!(
        rest.call("GET", "/v1/me", Some(&bob.token), None)
            .await
            .status,
        200
    );

    // After Retry-After, Ada reads again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        rest.call("GET", "/v1/me", Some(&ada.token), None)
            .await
            .status,
        200
    );

    // Sign-in is limited per client address too (two sign-ups so far).
    let mut refused = false;
    for _ in 0..10 {
        let login = rest
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": "ada@example.com", "password": "wrong password"})),
            )
            .await;
        if login.status == 429 {
            assert!(login.header("retry-after").is_some());
            refused = true;
            break;
        }
        assert_eq!(login.status, 401, "{}", login.text);
    }
    assert!(refused, "a burst of sign-ins from one address is cut off");
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_invitation_is_previewed_without_signing_in_and_guesses_are_limited() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |config| {
        config.gateway.auth_per_address_per_minute = 4;
        config.rbac.mailer.link_base_url = "https://console.example.com".into();
    })
    .await;
    let rest = Rest::new(sandbox.http_url());
    let ada = sign_up(&rest, "ada@example.com", json!({})).await; // 1 of 4
    rest.ok(
        "POST",
        &format!("/v1/{}/invitations", ada.organization),
        Some(&ada.token),
        Some(json!({"email": "bob@example.com"})),
    )
    .await;

    // The mail carries a link to the console's page, and says who invites
    // to what.
    let mail = std::fs::read_dir(sandbox.database.dir().join("mail"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains("invitation"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .find(|text| text.contains("To: bob@example.com"))
        .expect("the invitation mail");
    let token = sandbox.mail_token("bob@example.com", "invitation").unwrap();
    assert!(
        mail.contains(&format!(
            "https://console.example.com/invitations/accept?token={token}"
        )),
        "{mail}"
    );
    assert!(mail.contains("ada@example.com invited you"), "{mail}");

    // Anyone holding the token sees what it is for, without signing in.
    let preview = rest
        .ok(
            "POST",
            "/v1/invitations:lookup",
            None,
            Some(json!({"token": token})),
        )
        .await; // 2 of 4
    assert_eq!(
        preview["preview"]["organization"],
        ada.organization.as_str()
    );
    assert_eq!(preview["preview"]["email"], "bob@example.com");
    assert_eq!(preview["preview"]["inviterDisplayName"], "ada@example.com");

    // Guesses are NOT_FOUND, and limited per client address.
    let statuses: Vec<u16> = futures::future::join_all((0..3).map(|_| {
        rest.call(
            "POST",
            "/v1/invitations:lookup",
            None,
            Some(json!({"token": "guess"})),
        )
    }))
    .await
    .iter()
    .map(|reply| reply.status)
    .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, vec![404, 404, 429], "{statuses:?}");
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plan_limit_answers_402_in_words_not_429() {
    let catalog = tempfile::tempdir().unwrap();
    let path = catalog.path().join("plans.toml");
    std::fs::write(
        &path,
        "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n\
         [plans.free.limits]\nprojects = 2\n",
    )
    .unwrap();
    let sandbox = start(tenantry_testkit::Storage::Sqlite, move |config| {
        config.billing.catalog_file = Some(path);
    })
    .await;
    let rest = Rest::new(sandbox.http_url());
    let ada = sign_up(&rest, "ada@example.com", json!({})).await;
    let create = format!("/v1/{}/projects", ada.organization);
    // The first organization's default project is one of the two.
    rest.ok(
        "POST",
        &create,
        Some(&ada.token),
        Some(json!({"displayName": "Two"})),
    )
    .await;
    let refused = rest
        .call(
            "POST",
            &create,
            Some(&ada.token),
            Some(json!({"displayName": "Three"})),
        )
        .await;
    assert_eq!(refused.status, 402, "{}", refused.text);
    assert_eq!(refused.reason().as_deref(), Some("QUOTA_EXCEEDED"));
    assert_eq!(refused.body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        refused.body["error"]["message"],
        "the plan allows 2 projects; 2 are in use: upgrade the plan or free one first"
    );
    assert!(
        refused.header("retry-after").is_none(),
        "waiting does not help"
    );
    assert_eq!(
        count_projects(&rest, &ada.organization, &ada.token).await,
        2
    );
    sandbox.shutdown().await.unwrap();
}

/// Two gateways sharing Redis share one budget. Runs when
/// TENANTRY_TEST_REDIS_URL is set (CI sets it).
#[tokio::test]
async fn replicas_share_limits_through_redis() {
    let Ok(redis_url) = std::env::var("TENANTRY_TEST_REDIS_URL") else {
        eprintln!("TENANTRY_TEST_REDIS_URL is not set; skipping the Redis test");
        return;
    };
    let prefix = format!("test-{}:", uuid::Uuid::now_v7());
    let configure = {
        let redis_url = redis_url.clone();
        let prefix = prefix.clone();
        move |config: &mut tenantry::config::Config| {
            config.gateway.redis_url = Some(redis_url);
            config.gateway.redis_key_prefix = prefix;
            config.gateway.auth_per_address_per_minute = 4;
        }
    };
    let first = start(tenantry_testkit::Storage::Sqlite, configure.clone()).await;
    let grpc = format!("http://{}", first.server.grpc_addr);
    let second = Sandbox::builder()
        .services(&[ServiceKind::Gateway])
        .configure(move |config| {
            configure(config);
            config.peers.identity = Some(grpc.clone());
            config.peers.organization = Some(grpc.clone());
            config.peers.rbac = Some(grpc.clone());
            config.peers.billing = Some(grpc.clone());
            config.peers.audit = Some(grpc);
        })
        .start()
        .await
        .unwrap();
    let (a, b) = (Rest::new(first.http_url()), Rest::new(second.http_url()));
    let login = json!({"email": "nobody@example.com", "password": "wrong password"});
    let mut statuses = Vec::new();
    for rest in [&a, &b, &a, &b, &a] {
        statuses.push(
            rest.call("POST", "/v1/auth/login", None, Some(login.clone()))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        vec![401, 401, 401, 401, 429],
        "one budget of four across both replicas"
    );
    second.shutdown().await.unwrap();
    first.shutdown().await.unwrap();
}

#[tokio::test]
async fn openapi_describes_every_route_and_cors_answers_allowed_origins() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |config| {
        config.gateway.cors_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let rest = Rest::new(sandbox.http_url());
    let spec = rest.ok("GET", "/openapi.json", None, None).await;
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
    // Every reference resolves.
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let text = spec.to_string();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
    // As many operations as the gateway has routes.
    let gateway_routes = tenantry_gateway::routes::Routes::from_pool(
        &tenantry_gateway::routes::pool().unwrap(),
        &Default::default(),
        &Default::default(),
    )
    .unwrap()
    .all()
    .len();
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(operations, gateway_routes);
    let page = rest.call("GET", "/docs", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/openapi.json"));

    // CORS: an allowed origin's preflight is answered; another is not.
    let preflight = |origin: &str| {
        rest.request("OPTIONS", "/v1/me", None)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let allowed = rest.send(preflight("https://app.example.com")).await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let other = rest.send(preflight("https://evil.example.com")).await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // Request ids: generated when absent, echoed when sane.
    let reply = rest.call("GET", "/v1/auth/jwks", None, None).await;
    assert!(reply.header("x-request-id").is_some_and(|v| v.len() >= 32));
    sandbox.shutdown().await.unwrap();
}

/// StrictOps, over REST as its customers' tools call it: the admin signs
/// up (the organization comes with it), sees the tiers and starts on FREE;
/// a customer joins by invitation and may not create projects; custom
/// roles wait for a paid tier, which one call reaches; every answer carries
/// its rate limit; and the audit log holds each step, refusals included.
#[tokio::test]
async fn strictops_signs_up_picks_a_tier_and_audits_everything() {
    for storage in storages() {
        let sandbox = start(storage, |_| {}).await;
        let rest = Rest::new(sandbox.http_url());
        let admin = sign_up(&rest, "admin@strictops.example", json!({})).await;
        let org = admin.organization.clone();

        // The tiers, and the one the organization starts on.
        let plans = rest.ok("GET", "/v1/plans", Some(&admin.token), None).await;
        let tiers: Vec<&str> = plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["tier"].as_str())
            .collect();
        for tier in [
            "PLAN_TIER_FREE",
            "PLAN_TIER_STARTER",
            "PLAN_TIER_PROFESSIONAL",
            "PLAN_TIER_ENTERPRISE",
        ] {
            assert!(tiers.contains(&tier), "{tier} in {tiers:?}");
        }
        let subscription = rest
            .ok(
                "GET",
                &format!("/v1/{org}/subscription"),
                Some(&admin.token),
                None,
            )
            .await;
        assert_eq!(subscription["subscription"]["plan"], "plans/free");

        // A customer joins by invitation; customers do not create projects.
        rest.ok(
            "POST",
            &format!("/v1/{org}/invitations"),
            Some(&admin.token),
            Some(json!({"email": "customer@client.example", "roles": ["roles/member"]})),
        )
        .await;
        let token = sandbox
            .mail_token("customer@client.example", "invitation")
            .expect("the invitation was mailed");
        let customer = sign_up(
            &rest,
            "customer@client.example",
            json!({"invitationToken": token}),
        )
        .await;
        assert_eq!(customer.organization, org);
        let refused = rest
            .call(
                "POST",
                &format!("/v1/{org}/projects"),
                Some(&customer.token),
                Some(json!({"displayName": "Mine"})),
            )
            .await;
        assert_eq!(refused.status, 403, "{}", refused.text);
        assert_eq!(count_projects(&rest, &org, &admin.token).await, 1);

        // Custom roles wait for a paid tier; one call upgrades.
        let role =
            json!({"displayName": "Auditor", "permissions": ["organization.read", "audit.read"]});
        let on_free = rest
            .call(
                "POST",
                &format!("/v1/{org}/roles"),
                Some(&admin.token),
                Some(role.clone()),
            )
            .await;
        assert_eq!(on_free.status, 400, "{}", on_free.text);
        assert_eq!(on_free.reason().as_deref(), Some("FEATURE_NOT_INCLUDED"));
        let upgraded = rest
            .ok(
                "POST",
                &format!("/v1/{org}/subscription:changePlan"),
                Some(&admin.token),
                Some(json!({
                    "plan": "plans/starter",
                    "newBillingAccount": {
                        "displayName": "StrictOps billing",
                        "currencyCode": "USD",
                        "billingEmail": "billing@strictops.example",
                    },
                })),
            )
            .await;
        assert_eq!(upgraded["subscription"]["plan"], "plans/starter");
        let created = rest
            .call(
                "POST",
                &format!("/v1/{org}/roles"),
                Some(&admin.token),
                Some(role),
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.text);
        // Every answer says where the caller stands against its limit.
        assert!(created.header("ratelimit-limit").is_some());
        assert!(created.header("ratelimit-remaining").is_some());

        // The audit log holds every step, the customer's refusal included.
        let wanted = [
            "organization.created",
            "organization.member.invited",
            "organization.member.invitation_accepted",
            "organization.request.denied",
            "billing.subscription.changed",
            "role.created",
        ];
        let mut actions: Vec<String> = Vec::new();
        for _ in 0..400 {
            let page = rest
                .ok(
                    "GET",
                    &format!("/v1/{org}/auditEvents?pageSize=200"),
                    Some(&admin.token),
                    None,
                )
                .await;
            actions = page["auditEvents"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e["action"].as_str().map(str::to_string))
                .collect();
            if wanted.iter().all(|w| actions.iter().any(|a| a == w)) {
                break;
            }
            // The log is fed by the event bus: it is allowed to be late.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        for action in wanted {
            assert!(
                actions.iter().any(|a| a == action),
                "{action} in {actions:?}"
            );
        }
        sandbox.shutdown().await.unwrap();
    }
}

/// A field of an audit event's metadata, as text (64-bit numbers are JSON
/// strings).
fn metadata_field(event: &audit_pb::AuditEvent, field: &str) -> String {
    use prost_types::value::Kind;
    match event
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get(field))
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::StringValue(text)) => text.clone(),
        Some(Kind::NumberValue(n)) => n.to_string(),
        other => panic!("metadata `{field}`: {other:?}"),
    }
}

#[tokio::test]
async fn rate_limited_bursts_reach_the_organization_audit_log_counted_not_row_by_row() {
    let catalog = tempfile::tempdir().unwrap();
    let path = catalog.path().join("plans.toml");
    std::fs::write(
        &path,
        "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n\
         [plans.free.limits.rate_limits_per_minute]\nread = 5\nwrite = 600\nauth = 600\nexpensive = 60\n",
    )
    .unwrap();
    let sandbox = start(tenantry_testkit::Storage::Sqlite, move |config| {
        config.billing.catalog_file = Some(path);
        config.gateway.rate_limit_audit_window_secs = 1;
    })
    .await;
    let rest = Rest::new(sandbox.http_url());
    let ada = sign_up(&rest, "ada@example.com", json!({})).await;
    let bob = sign_up(&rest, "bob@example.com", json!({})).await;

    // A burst of reads: five pass, the rest are refused.
    let mut refused = 0u64;
    for _ in 0..12 {
        let reply = rest.call("GET", "/v1/me", Some(&ada.token), None).await;
        match reply.status {
            200 => {}
            429 => refused += 1,
            other => panic!("{other}: {}", reply.text),
        }
    }
    assert!(refused >= 7, "{refused} refused");

    // The log says so in a row or two (a window may close mid-burst), not
    // a row per request; read over gRPC so reading spends no budget.
    let audit =
        audit_pb::audit_service_client::AuditServiceClient::new(sandbox.channel().await.unwrap());
    let filter = audit_pb::AuditEventFilter {
        action: "gateway.requests.rate_limited".into(),
        ..Default::default()
    };
    let list = |token: String, parent: String| {
        let mut audit = audit.clone();
        let filter = filter.clone();
        async move {
            audit
                .list_audit_events(authed(
                    audit_pb::ListAuditEventsRequest {
                        parent,
                        page_size: 100,
                        filter: Some(filter),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner()
                .audit_events
        }
    };
    // Counts go out when their window closes (a second here) and reach
    // the log through the event pipeline: both later by design.
    let counted = |rows: &[audit_pb::AuditEvent]| -> u64 {
        rows.iter()
            .map(|e| metadata_field(e, "count").parse::<u64>().unwrap())
            .sum()
    };
    let rows = eventually("every refusal counted in the log", || async {
        let rows = list(ada.token.clone(), ada.organization.clone()).await;
        assert!(
            counted(&rows) <= refused,
            "counted more than {refused} refused"
        );
        (counted(&rows) == refused).then_some(rows)
    })
    .await;
    assert!((1..=2).contains(&rows.len()), "{} rows", rows.len());
    for row in &rows {
        let actor = row.actor.as_ref().unwrap();
        assert_eq!(actor.id, ada.id);
        assert_eq!(actor.display_name, "ada@example.com");
        assert_eq!(row.outcome, audit_pb::Outcome::Denied as i32);
        assert_eq!(metadata_field(row, "class"), "read");
        assert_eq!(metadata_field(row, "limitPerMinute"), "5");
        assert!(
            row.targets
                .iter()
                .any(|t| format!("organizations/{}", t.id) == ada.organization),
            "{:?}",
            row.targets
        );
    }
    assert!(
        list(bob.token.clone(), bob.organization.clone())
            .await
            .is_empty(),
        "another organization's log holds none of it"
    );

    // Only the gateway reports: a member's call is refused and writes
    // nothing, a made-up edge credential is no credential.
    let mut edge = audit_pb::edge_report_service_client::EdgeReportServiceClient::new(
        sandbox.channel().await.unwrap(),
    );
    let now = prost_types::Timestamp {
        seconds: 1_800_000_000,
        nanos: 0,
    };
    let forged_burst = audit_pb::RateLimitedBurst {
        id: "forged".into(),
        organization_id: id(&bob.organization),
        actor: rows[0]
            .actor
            .clone()
            .map(|a| tenantry_proto::tenantry::events::v1::Actor {
                kind: a.kind,
                id: a.id,
                display_name: a.display_name,
            }),
        class: "read".into(),
        count: 1000,
        limit_per_minute: 5,
        window_start_time: Some(now),
        window_end_time: Some(now),
        ..Default::default()
    };
    let report = audit_pb::ReportRateLimitedRequest {
        bursts: vec![forged_burst],
    };
    let denied = edge
        .report_rate_limited(authed(report.clone(), &ada.token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 30;
    let mut made_up = tonic::Request::new(report);
    made_up.metadata_mut().insert(
        tenantry_kit::auth::internal::HEADER,
        format!("gateway.{expiry}.{}", "00".repeat(32))
            .parse()
            .unwrap(),
    );
    let unauthenticated = edge.report_rate_limited(made_up).await.unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    assert!(
        list(bob.token.clone(), bob.organization.clone())
            .await
            .is_empty(),
        "nothing was written"
    );
    sandbox.shutdown().await.unwrap();
}
