//! Spans as the OpenTelemetry semantic conventions name them, so that any
//! tracing backend shows Tenantry's calls as it shows any gRPC system:
//!
//! - a server span per call, named `package.Service/Method`, with
//!   `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, and
//!   an error status for the codes that mean the server failed;
//! - a client span per outgoing call (to a peer service, or from the
//!   gateway to a backend), the parent of the callee's server span;
//! - a span per database statement, named by its operation and table,
//!   without its text or parameters (made from sqlx's statement events
//!   while traces are exported).

use std::future::Future;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::Context;

/// The service and method of a gRPC path (`/package.Service/Method`).
fn rpc_parts(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

/// The span of a call this process serves: `path` is the method's label
/// (`/package.Service/Method`, or `unknown`: a span name must not take
/// whatever path a client makes up).
pub fn server_span(path: &'static str) -> tracing::Span {
    let (service, method) = rpc_parts(path);
    tracing::info_span!(
        "grpc",
        otel.name = path.trim_start_matches('/'),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
    )
}

/// The span of a call this process makes to `path` (a method of a peer),
/// at `server` (its address; empty when the peer runs in this process).
pub fn client_span(path: &'static str, server: &str) -> tracing::Span {
    let (service, method) = rpc_parts(path);
    tracing::info_span!(
        "grpc client",
        otel.name = path.trim_start_matches('/'),
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        server.address = server,
    )
}

/// Records a finished call's status on its span. A server marks its span
/// failed only for the codes that mean it failed (a NOT_FOUND is an
/// answer); a client for any code but OK, as the conventions say.
pub fn record_status(span: &tracing::Span, code: Option<i64>, server: bool) {
    match code {
        Some(code) => {
            span.record("rpc.grpc.status_code", code);
            let failed = if server {
                // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
                // UNAVAILABLE, DATA_LOSS.
                matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
            } else {
                code != 0
            };
            if failed {
                span.record("otel.status_code", "ERROR");
            }
        }
        // No answer at all (the transport failed).
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The gRPC status of a response as far as its headers tell: a
/// trailers-only answer (every unary failure) carries it there; a success
/// carries it in trailers, after the body.
pub fn header_code(headers: &http::HeaderMap) -> i64 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens the client span of `request` (to `server`) and puts the span's
/// trace context in the request, so that the callee's span is its child.
/// The call then goes through [`traced`] with the span.
pub fn client_call<B>(request: &mut http::Request<B>, server: &str) -> tracing::Span {
    let span = client_span(super::method_label(request.uri().path()), server);
    span.in_scope(|| super::inject_headers(request.headers_mut()));
    span
}

/// Runs `call` in its client `span` and records the answer's status.
pub async fn traced<R, E>(
    span: tracing::Span,
    call: impl Future<Output = Result<http::Response<R>, E>>,
) -> Result<http::Response<R>, E> {
    let recorder = span.clone();
    let result = call.instrument(span).await;
    let code = result.as_ref().ok().map(|r| header_code(r.headers()));
    record_status(&recorder, code, false);
    result
}

/// A tower service making every call under a client span (the gateway's
/// channels to its backends).
#[derive(Debug, Clone)]
pub struct TracedClient<S> {
    inner: S,
    server: std::sync::Arc<str>,
}

impl<S> TracedClient<S> {
    /// `inner`, whose calls go to `server`.
    pub fn new(inner: S, server: &str) -> TracedClient<S> {
        TracedClient {
            inner,
            server: server.into(),
        }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for TracedClient<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let span = client_call(&mut request, &self.server);
        let call = self.inner.call(request);
        Box::pin(traced(span, call))
    }
}

/// The database spans: one per statement sqlx reports (its `sqlx::query`
/// event, at DEBUG), a child of the span the statement ran in, named by
/// the statement's operation and table. Installed only while traces are
/// exported: otherwise sqlx need not describe its statements at all.
pub(super) struct DatabaseSpans {
    tracer: opentelemetry_sdk::trace::SdkTracer,
}

impl DatabaseSpans {
    pub(super) fn new(provider: &opentelemetry_sdk::trace::SdkTracerProvider) -> DatabaseSpans {
        DatabaseSpans {
            tracer: provider.tracer("tenantry-db"),
        }
    }
}

/// The database system the process uses, as the conventions name it
/// (`postgresql`, `sqlite`), once it has connected.
static DATABASE_SYSTEM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Names the database system for the statement spans.
pub fn set_database_system(system: &'static str) {
    let _ = DATABASE_SYSTEM.set(system);
}

/// The fields of a statement event the span needs.
#[derive(Default)]
struct Statement {
    summary: String,
    elapsed_secs: f64,
}

impl tracing::field::Visit for Statement {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.summary = value.to_string();
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.summary = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

/// The operation (`SELECT`, `INSERT`, …) and table of a statement's summary
/// (its first words), never anything of its values.
fn operation_and_table(summary: &str) -> (String, Option<String>) {
    let words: Vec<&str> = summary.split_whitespace().collect();
    let operation = words
        .first()
        .map_or("QUERY".to_string(), |w| w.to_uppercase());
    let after = match operation.as_str() {
        "SELECT" | "DELETE" => "FROM",
        "INSERT" => "INTO",
        "UPDATE" => "UPDATE",
        _ => return (operation, None),
    };
    let table = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case(after))
        .and_then(|i| words.get(i + 1))
        .map(|t| {
            t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .to_string()
        })
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    (operation, table)
}

impl<S> tracing_subscriber::Layer<S> for DatabaseSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut statement = Statement::default();
        event.record(&mut statement);
        let (operation, table) = operation_and_table(&statement.summary);
        let name = match &table {
            Some(table) => format!("{operation} {table}"),
            None => operation.clone(),
        };
        let end = std::time::SystemTime::now();
        let start = end - std::time::Duration::from_secs_f64(statement.elapsed_secs.max(0.0));
        let mut attributes = vec![
            KeyValue::new(
                "db.system.name",
                DATABASE_SYSTEM.get().copied().unwrap_or("other_sql"),
            ),
            KeyValue::new("db.operation.name", operation),
        ];
        if let Some(table) = table {
            attributes.push(KeyValue::new("db.collection.name", table));
        }
        let parent = tracing::Span::current().context();
        let mut span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        span.end_with_timestamp(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_named_by_its_operation_and_table_only() {
        let named = |s: &str| operation_and_table(s);
        assert_eq!(
            named("SELECT id, name FROM org_organizations WHERE …"),
            ("SELECT".into(), Some("org_organizations".into()))
        );
        assert_eq!(
            named("insert into tenantry_outbox (service, …"),
            ("INSERT".into(), Some("tenantry_outbox".into()))
        );
        assert_eq!(
            named("UPDATE identity_users SET …"),
            ("UPDATE".into(), Some("identity_users".into()))
        );
        assert_eq!(named("BEGIN"), ("BEGIN".into(), None));
        assert_eq!(named("SELECT 1"), ("SELECT".into(), None));
        assert_eq!(
            rpc_parts("/tenantry.authz.v1.AuthorizationService/CheckPermission"),
            ("tenantry.authz.v1.AuthorizationService", "CheckPermission")
        );
        assert_eq!(rpc_parts("unknown"), ("unknown", ""));
    }
}
