//! The admin console through what a browser sends: its cookie, its
//! headers, its refusals. A small client keeps the session cookie as a
//! browser would; the journey in a real Chromium lives in
//! services/console/e2e.
//!
//! By concern: the cookie and the security headers, forged posts, where
//! signing in leads.

mod accept;
mod access;
mod account;
mod audit;
mod billing;
mod forged;
mod headers;
mod keys;
mod next;
mod organization;
mod recover;
mod teams;
mod verify;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tenantry::services::ServiceKind;
use tenantry_testkit::Sandbox;

const PASSWORD: &str = "correct horse battery staple";

async fn start(
    storage: tenantry_testkit::Storage,
    change: impl FnOnce(&mut tenantry::config::Config) + Send + 'static,
) -> Sandbox {
    Sandbox::builder()
        .services(&ServiceKind::ALL)
        .storage(storage)
        .configure(change)
        .start()
        .await
        .unwrap()
}

/// One answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        let start = self.body.find(r#"name="csrf" value=""#).expect("a form") + 19;
        self.body[start..].split('"').next().unwrap().to_string()
    }
}

/// A browser of the console: keeps the session cookie it is given.
struct Browser {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    cookie: Option<String>,
}

impl Browser {
    fn new(sandbox: &Sandbox) -> Browser {
        Browser {
            base: sandbox.http_url(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookie: None,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, Vec::new(), &[]).await
    }

    /// A form POST sent from this host's page (the `Origin` a browser sends).
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let origin = self.base.clone();
        self.post_from(path, form, Some(&origin)).await
    }

    async fn post_from(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Answer {
        let body = serde_urlencoded_pairs(form);
        let mut headers = vec![(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".to_string(),
        )];
        if let Some(origin) = origin {
            headers.push((header::ORIGIN, origin.to_string()));
        }
        self.send(Method::POST, path, body.into_bytes(), &headers)
            .await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        headers: &[(header::HeaderName, String)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        if let Some(set) = parts.headers.get(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            self.cookie = Some(pair.to_string());
        }
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Signs a new user up through the console; the session is theirs.
    async fn sign_up(&mut self, email: &str) {
        let csrf = self.get("/console/sign-up").await.csrf();
        let answer = self
            .post(
                "/console/sign-up",
                &[
                    ("csrf", &csrf),
                    ("display_name", "Ada"),
                    ("email", email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.location(), "/console/");
    }
}

fn serde_urlencoded_pairs(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Moves `organization` to the Starter plan (custom roles, 20 API keys),
/// paid by a new billing account, through billing's API as `token`.
async fn upgrade_to_starter(channel: tonic::transport::Channel, token: &str, organization: &str) {
    use tenantry_proto::tenantry::billing::v1 as billing;
    let request = billing::ChangePlanRequest {
        name: format!("{organization}/subscription"),
        plan: "plans/starter".into(),
        request_id: uuid::Uuid::now_v7().to_string(),
        new_billing_account: Some(billing::BillingAccount {
            display_name: "Acme billing".into(),
            currency_code: "USD".into(),
            billing_email: "billing@acme.example".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut client = tenantry_testkit::clients::Subscriptions::new(channel);
    let changed = client.change_plan(tenantry_testkit::authed(request, token));
    changed.await.unwrap();
}
