//! Logs, traces and metrics.
//!
//! - Logs: `tracing` with JSON (default) or text output.
//! - Traces: OpenTelemetry OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//!   set; W3C trace context is read from incoming gRPC metadata by
//!   [`GrpcTelemetryLayer`] and written into outgoing calls by
//!   [`inject_trace_context`].
//! - Metrics: the `metrics` facade with a Prometheus recorder; the binary
//!   serves [`Telemetry::render_metrics`] at `/metrics`. Every metric is in
//!   [`catalog`], which gives each its `# HELP`; process and runtime
//!   metrics are read at each scrape.

pub mod catalog;
pub mod spans;

use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogConfig, LogFormat, LogStream};

/// Handles to the installed telemetry pipelines.
#[derive(Clone)]
pub struct Telemetry {
    prometheus: PrometheusHandle,
    tracer_provider: SdkTracerProvider,
    exporting: bool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("otlp", &self.exporting)
            .finish()
    }
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();

/// Installs logging, tracing and metrics for the process. Calling it again
/// (several servers in one test process) returns the first installation.
pub fn init(log: &LogConfig) -> anyhow::Result<Telemetry> {
    // Several servers may start at once in one test process: the first
    // installs everything, the others wait and share it.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(telemetry) = TELEMETRY.get() {
        return Ok(telemetry.clone());
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_new(&log.level).map_err(|e| {
        anyhow::anyhow!("invalid configuration: `log.level` is not a tracing filter: {e}")
    })?;
    // Spans always carry OpenTelemetry context, exported or not: trace
    // context must flow from caller to callee, and audit records trace ids,
    // whether or not a collector is configured.
    let (tracer_provider, exporting) = tracer_provider()?;
    let otel_layer = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("tenantry"));
    let writer = match log.stream {
        LogStream::Stdout => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
        LogStream::Stderr => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let fmt_layer = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    // The log level filters log output only; spans feed OpenTelemetry at
    // INFO whatever the log level, so traces never go dark with quiet logs.
    // A second subscriber in the same process (tests) is not an error.
    // While traces are exported, each database statement becomes a span
    // too (sqlx describes its statements at DEBUG for this layer alone).
    let database_spans = exporting.then(|| {
        spans::DatabaseSpans::new(&tracer_provider).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::query", tracing::Level::DEBUG),
        )
    });
    let _ = tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(otel_layer.with_filter(LevelFilter::INFO))
        .with(database_spans)
        .try_init();

    let recorder = PrometheusBuilder::new()
        .set_buckets(&[
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .expect("buckets are not empty")
        .build_recorder();
    let prometheus = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        spawn_upkeep(prometheus.clone());
        catalog::describe_all();
    }

    let telemetry = Telemetry {
        prometheus,
        tracer_provider,
        exporting,
    };
    Ok(TELEMETRY.get_or_init(|| telemetry).clone())
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded samples into the histograms' buckets now and then. The
/// recorder queues every histogram sample until upkeep or a scrape drains
/// the queue: without this, a process nobody scrapes keeps eight bytes per
/// recorded call, forever. A thread rather than a task, so it runs whatever
/// runtime (or none) the process has.
fn spawn_upkeep(prometheus: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                prometheus.run_upkeep();
            }
        });
    match spawned {
        Ok(_) => UPKEEP.store(true, std::sync::atomic::Ordering::SeqCst),
        Err(error) => tracing::error!(%error, "cannot start the metrics upkeep thread"),
    }
}

/// Whether the upkeep thread runs in this process.
static UPKEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The tracer provider: exporting over OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, local-only otherwise.
fn tracer_provider() -> anyhow::Result<(SdkTracerProvider, bool)> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "tenantry".to_string()),
        )
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok((builder.build(), false));
    }
    // The exporter reads the endpoint, headers and timeout from the standard
    // OTEL_EXPORTER_OTLP_* variables itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the OTLP exporter: {e}"))?;
    Ok((builder.with_batch_exporter(exporter).build(), true))
}

impl Telemetry {
    /// The Prometheus text exposition of every metric recorded so far, with
    /// the process's and the async runtime's read now.
    pub fn render_metrics(&self) -> String {
        record_process_and_runtime();
        self.prometheus.render()
    }

    /// Flushes pending spans. Called once at shutdown.
    pub fn shutdown(&self) {
        if self.exporting
            && let Err(error) = self.tracer_provider.shutdown()
        {
            tracing::warn!(%error, "flushing traces at shutdown failed");
        }
    }
}

/// Records `tenantry_build_info` for this process: the release and the
/// source revision it was built from.
pub fn record_build_info(version: &'static str, commit: &'static str) {
    metrics::gauge!("tenantry_build_info", "version" => version, "commit" => commit).set(1.0);
}

/// Reads the process's CPU, memory, file descriptors and threads (the
/// names client_golang gives them) and the async runtime's workers and
/// queues, for a scrape.
fn record_process_and_runtime() {
    static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
    PROCESS
        .get_or_init(metrics_process::Collector::default)
        .collect();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let runtime = runtime.metrics();
        metrics::gauge!("tenantry_tokio_workers").set(runtime.num_workers() as f64);
        metrics::gauge!("tenantry_tokio_alive_tasks").set(runtime.num_alive_tasks() as f64);
        metrics::gauge!("tenantry_tokio_global_queue_depth")
            .set(runtime.global_queue_depth() as f64);
    }
}

/// Reads W3C trace context (`traceparent`, `tracestate`) from HTTP headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes W3C trace context into gRPC metadata.
struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// A tonic interceptor for outgoing calls: carries the current span's trace
/// context to the next service.
pub fn inject_trace_context(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    inject_metadata(request.metadata_mut());
    Ok(request)
}

/// The W3C trace context a request's headers carry, to parent its span on.
pub fn parent_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Writes the current span's trace context into outgoing HTTP headers.
pub fn inject_headers(headers: &mut http::HeaderMap) {
    struct HeaderInjector<'a>(&'a mut http::HeaderMap);
    impl Injector for HeaderInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(key.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// The trace id of the current span as 32 hex digits, or `None` outside a
/// sampled trace. Audit events record it.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// A tower layer for gRPC servers: one span per call, parented on the
/// caller's W3C trace context, and Prometheus metrics per method
/// (`tenantry_grpc_requests_total`, `tenantry_grpc_request_duration_seconds`).
#[derive(Debug, Clone, Default)]
pub struct GrpcTelemetryLayer;

impl<S> tower::Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry { inner }
    }
}

/// The service made by [`GrpcTelemetryLayer`].
#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcTelemetry<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let parent = parent_context(request.headers());
        let span = spans::server_span(method);
        let _ = span.set_parent(parent);
        let recorder = span.clone();
        // Take the service that was driven to readiness; leave a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        Box::pin(
            async move {
                let result = inner.call(request).await;
                // Unary failures travel as trailers-only responses, so the
                // status is in the headers; a success carries it in trailers.
                let code = match &result {
                    Ok(response) => status_label(response.headers().get("grpc-status")),
                    Err(_) => "transport",
                };
                spans::record_status(&recorder, code.parse().ok(), true);
                metrics::counter!(
                    "tenantry_grpc_requests_total",
                    "method" => method,
                    "code" => code
                )
                .increment(1);
                metrics::histogram!("tenantry_grpc_request_duration_seconds", "method" => method)
                    .record(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}

/// The `method` label (and span field) of a call: its path when it names a
/// method of a Tenantry service, health or reflection; `unknown` otherwise.
/// A label taken from any path would let every client add series (memory
/// held until the process ends) by calling made-up methods.
pub fn method_label(path: &str) -> &'static str {
    static KNOWN: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut known: std::collections::HashSet<&'static str> = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .into_iter()
        .collect();
        let files = <prost_types::FileDescriptorSet as prost::Message>::decode(
            tenantry_proto::FILE_DESCRIPTOR_SET,
        )
        .expect("the embedded descriptor set decodes");
        for file in files.file {
            for service in &file.service {
                for method in &service.method {
                    // Built once per process from a fixed set: leaking is
                    // how the labels get their `'static` lifetime.
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    known.insert(Box::leak(path.into_boxed_str()));
                }
            }
        }
        known
    });
    known.get(path).copied().unwrap_or("unknown")
}

/// The `code` label of a finished call: the numeric gRPC status (absent
/// means OK, the status then travels in trailers).
fn status_label(status: Option<&http::HeaderValue>) -> &'static str {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    match status {
        None => "0",
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .and_then(|code| CODES.get(code).copied())
            .unwrap_or("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// A server behind the layer sees the caller's trace, and a call it makes
    /// carries the same trace onwards.
    #[tokio::test]
    async fn trace_context_flows_in_and_out() {
        init(&LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            stream: LogStream::Stdout,
        })
        .unwrap();
        let handler = tower::service_fn(|_request: http::Request<()>| async {
            let seen = current_trace_id();
            let outgoing = inject_trace_context(tonic::Request::new(())).unwrap();
            let forwarded = outgoing
                .metadata()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok::<_, Infallible>(http::Response::new((seen, forwarded)))
        });
        let mut service = GrpcTelemetryLayer.layer(handler);
        let request = http::Request::builder()
            .uri("/tenantry.test.v1.TestService/Call")
            .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
            .body(())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        let (seen, forwarded) = response.into_body();
        assert_eq!(seen.as_deref(), Some(TRACE_ID));
        let forwarded = forwarded.expect("traceparent forwarded");
        assert!(forwarded.contains(TRACE_ID), "{forwarded}");
    }

    #[test]
    fn only_defined_methods_become_labels() {
        for path in [
            "/tenantry.authz.v1.AuthorizationService/CheckPermission",
            "/tenantry.identity.v1.IdentityService/SignUp",
            "/grpc.health.v1.Health/Check",
        ] {
            assert_eq!(method_label(path), path);
        }
        for path in [
            "/tenantry.authz.v1.AuthorizationService/CheckPermission2",
            "/made.up.Service/Method-1",
            "",
            "/",
        ] {
            assert_eq!(method_label(path), "unknown", "{path}");
        }
    }

    #[test]
    fn status_labels_are_the_closed_set_of_codes() {
        let value = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(status_label(None), "0");
        assert_eq!(status_label(Some(&value("7"))), "7");
        assert_eq!(status_label(Some(&value("16"))), "16");
        for bad in ["17", "-1", "abc", "99999999999999999999"] {
            assert_eq!(status_label(Some(&value(bad))), "unknown", "{bad}");
        }
    }

    /// The recorder queues histogram samples until upkeep drains them; the
    /// process runs upkeep itself, so the queue does not grow with the calls
    /// it serves when nothing scrapes `/metrics`.
    #[test]
    fn the_installed_recorder_is_kept_up() {
        init(&LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            stream: LogStream::Stdout,
        })
        .unwrap();
        assert!(
            UPKEEP.load(std::sync::atomic::Ordering::SeqCst),
            "no metrics-upkeep thread"
        );
    }
}
