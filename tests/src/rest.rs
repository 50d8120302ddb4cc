//! A JSON-over-HTTP client for tests and benchmarks of the gateway.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A JSON-over-HTTP client for the gateway.
pub struct Rest {
    client: Client<HttpConnector, Full<Bytes>>,
    /// The gateway's base URL.
    pub base: String,
}

/// An answer: status, headers, the body as JSON (null when it is not) and
/// as text.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body as JSON, or null.
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The field named by the first BadRequest violation.
    pub fn violation(&self) -> Option<String> {
        self.body["error"]["details"]
            .as_array()?
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
            .and_then(|d| d["fieldViolations"][0]["field"].as_str())
            .map(str::to_string)
    }

    /// The reason of the ErrorInfo detail.
    pub fn reason(&self) -> Option<String> {
        self.body["error"]["details"]
            .as_array()?
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
            .and_then(|d| d["reason"].as_str())
            .map(str::to_string)
    }
}

impl Rest {
    /// A client of the gateway at `base` (`http://host:port`).
    pub fn new(base: String) -> Rest {
        Rest {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base,
        }
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> Reply {
        let response = self
            .client
            .request(request)
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// A request builder for `path`, with a bearer token when given.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> http::request::Builder {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder
    }

    /// Sends `body` (JSON) to `path`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let builder = self.request(method, path, token);
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string()))),
            None => builder.body(Full::new(Bytes::new())),
        };
        self.send(request.unwrap()).await
    }

    /// As [`call`](Self::call), asserting a 200 and returning the body.
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let reply = self.call(method, path, token, body).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text);
        reply.body
    }

    /// Calls until the answer is 200 (changes travel as events), pacing
    /// itself by the rate limit's Retry-After.
    pub async fn until_ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut last = None;
        for _ in 0..200 {
            let reply = self.call(method, path, token, body.clone()).await;
            if reply.status == 200 {
                return reply.body;
            }
            if reply.status == 429 {
                let wait: u64 = reply
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            last = Some(reply.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{method} {path} never answered 200: {last:?}");
    }
}
