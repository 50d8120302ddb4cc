//! The edge gateway through its public contract: REST/JSON and gRPC-Web
//! against a server started by the test. The main journey runs over REST
//! (SQLite and Postgres) and over gRPC-Web; bad input answers the right
//! status and writes nothing; rate limits answer 429 and recover; API keys
//! are exchanged at the edge; OpenAPI describes every route.
//!
//! By concern: the journey over REST and gRPC-Web, bad input, limits,
//! OpenAPI and CORS, and what reaches the audit log.

mod audited;
mod bad_input;
mod connect;
mod journey;
mod limits;
mod openapi;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;
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

async fn count_projects(rest: &Rest, org: &str, token: &str) -> usize {
    rest.until_ok("GET", &format!("/v1/{org}/projects"), Some(token), None)
        .await["projects"]
        .as_array()
        .map_or(0, |p| p.len())
}
