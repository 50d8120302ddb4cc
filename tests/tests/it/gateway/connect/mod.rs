//! Connect through the gateway's HTTP port with a plain HTTP client:
//! unary calls in JSON and protobuf (gzip both ways), reads with GET, server streams with
//! their end-of-stream message, and errors in Connect's form with the
//! services' reasons; bad calls write nothing.

mod calls;
mod errors;

use super::*;
use http_body_util::BodyExt as _;
use tenantry_gateway::connect::wire::Compression;

/// An answer with its body as bytes.
struct Raw {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The envelopes of a streamed answer: (flags, payload).
    fn envelopes(&self) -> Vec<(u8, Bytes)> {
        let mut rest = self.body.clone();
        let mut out = Vec::new();
        while rest.len() >= 5 {
            let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            out.push((rest[0], rest.slice(5..5 + length)));
            rest = rest.slice(5 + length..);
        }
        assert!(rest.is_empty(), "trailing bytes in the stream");
        out
    }
}

/// Ada and Eve signed up, each with an organization.
struct Fixture {
    sandbox: Sandbox,
    rest: Rest,
    ada: SignedUp,
    eve: SignedUp,
}

impl Fixture {
    async fn start(storage: tenantry_testkit::Storage) -> Fixture {
        let sandbox = start(storage, |_| {}).await;
        let rest = Rest::new(sandbox.http_url());
        let ada = sign_up(&rest, "ada@connect.example", json!({})).await;
        let eve = sign_up(&rest, "eve@connect.example", json!({})).await;
        Fixture {
            sandbox,
            rest,
            ada,
            eve,
        }
    }

    /// A Connect call: `POST /{method}` with `headers` and `body`.
    async fn call(
        &self,
        method: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Raw {
        self.send("POST", &format!("/{method}"), token, headers, body)
            .await
    }

    /// A Connect GET: `/{method}?{query}`, the message in the query.
    async fn get(
        &self,
        method: &str,
        query: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Raw {
        let path = format!("/{method}?{query}");
        self.send("GET", &path, token, headers, Vec::new()).await
    }

    async fn send(
        &self,
        verb: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Raw {
        let mut request = self.rest.request(verb, path, token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = client.request(request).await.expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Raw {
            status,
            headers,
            body,
        }
    }

    /// A unary JSON call.
    async fn json(&self, method: &str, token: Option<&str>, body: Value) -> Raw {
        let headers = [
            ("content-type", "application/json"),
            ("connect-protocol-version", "1"),
        ];
        self.call(method, token, &headers, body.to_string().into_bytes())
            .await
    }
}

const CREATE_PROJECT: &str = "tenantry.organization.v1.ProjectService/CreateProject";
const LIST_PROJECTS: &str = "tenantry.organization.v1.ProjectService/ListProjects";
const CHECK: &str = "tenantry.authz.v1.AuthorizationService/CheckPermission";
const EXPORT: &str = "tenantry.audit.v1.AuditService/ExportAuditEvents";
const GET_ORGANIZATION: &str = "tenantry.organization.v1.OrganizationService/GetOrganization";

#[tokio::test]
async fn connect_calls_go_through_the_gateway() {
    for storage in storages() {
        let f = Fixture::start(storage).await;
        let written = calls::unary_json_creates_and_checks(&f).await;
        calls::unary_proto_with_gzip_both_ways(&f).await;
        calls::a_server_stream_ends_with_its_end_of_stream_message(&f, &written).await;
        calls::reads_also_take_get_with_the_message_in_the_query(&f, &written).await;
        let before = calls::projects_of(&f, &f.ada).await;
        errors::errors_carry_connect_codes_and_reasons(&f).await;
        errors::bad_calls_are_refused_and_write_nothing(&f, before).await;
        f.sandbox.shutdown().await.unwrap();
    }
}
