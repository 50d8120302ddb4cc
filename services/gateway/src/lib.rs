//! The edge gateway: the HTTP side of Tenantry.
//!
//! - **REST/JSON**, transcoded from the contracts' `google.api.http` rules
//!   ([`routes`], [`transcode`]) and forwarded as gRPC ([`upstream`]);
//!   server streams answer newline-delimited JSON.
//! - **gRPC-Web and plain gRPC** passthrough ([`proxy`]).
//! - **Connect** (unary and server streams, JSON or protobuf, gzip) on
//!   the methods' gRPC paths ([`connect`]).
//! - **Authentication** at the edge ([`credentials`]): access tokens are
//!   verified, API keys exchanged through identity and cached.
//! - **Rate limits** per organization and endpoint class from the plan
//!   ([`limits`]), in memory or in Redis.
//! - **Refusals reported** ([`refusals`]): requests refused over an
//!   organization's rate limit, counted per caller and window for the
//!   organization's audit log.
//! - **AuthZEN** ([`authzen`]): the OpenID Authorization API 1.0
//!   (evaluation, evaluations, searches, metadata) over the authorization
//!   service.
//! - **OpenAPI** at `/openapi.json` and a page at `/docs` ([`openapi`]).
//! - **Hygiene** ([`edge`]): request ids, client address, trace context,
//!   access logs, CORS, body limits, timeouts.
//!
//! Operational endpoints are served by every process, gateway or not:
//! `/metrics`, `/healthz`, `/readyz`.

pub mod admit;
pub mod authzen;
pub mod connect;
pub mod credentials;
pub mod edge;
mod error;
pub mod errors;
pub mod limits;
pub mod openapi;
pub mod proxy;
pub mod refusals;
pub mod rest;
pub mod routes;
pub mod template;
pub mod transcode;
pub mod upstream;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tenantry_kit::auth::{Expectations, InternalKey, JwksCache};
use tenantry_kit::service::Peers;
use tenantry_kit::telemetry::Telemetry;

use crate::credentials::EdgeAuth;
use crate::limits::{LimitSettings, Limiter};
use crate::refusals::Refusals;
use crate::routes::Routes;
use crate::upstream::Upstreams;
use tenantry_kit::net::Cidr;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Options of the gateway (the `[gateway]` table of the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Origins allowed by CORS (`https://app.example.com`, or `*` for any,
    /// without credentials). Empty: no CORS headers, browsers on other
    /// origins are refused.
    pub cors_origins: Vec<String>,
    /// The largest REST request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// The deadline of a REST call, in seconds (504 after).
    pub timeout_secs: u64,
    /// The deadline of a streamed REST call (exports), in seconds.
    pub stream_timeout_secs: u64,
    /// Redis for rate-limit buckets shared by every gateway replica, such
    /// as `redis://127.0.0.1:6379`. Unset: each replica counts alone.
    pub redis_url: Option<String>,
    /// Prefix of the gateway's keys in Redis, to share one Redis between
    /// deployments.
    pub redis_key_prefix: String,
    /// Requests per minute by class for callers acting in no organization
    /// (anonymous callers count per client address).
    pub default_rate_limits_per_minute: BTreeMap<String, u64>,
    /// `auth` requests (sign-in, sign-up, recovery) per client address and
    /// minute, on top of the organization's limit.
    pub auth_per_address_per_minute: u64,
    /// How long an organization's plan limits are reused, in seconds.
    pub plan_cache_secs: u64,
    /// Proxies (CIDRs) in front of the gateway whose `X-Forwarded-For` is
    /// believed for the client address.
    pub trusted_proxies: Vec<String>,
    /// gRPC methods (`/package.Service/Method`) in the `expensive` class
    /// besides streams.
    pub expensive_methods: Vec<String>,
    /// The window, in seconds, over which requests refused over an
    /// organization's rate limit are counted per caller and class before
    /// the count goes to the organization's audit log as one event.
    pub rate_limit_audit_window_secs: u64,
    /// The URL clients reach the gateway at (`https://api.example.com`),
    /// for documents that name endpoints (AuthZEN metadata). Unset: the
    /// scheme `http` and the `Host` the request came with.
    pub public_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cors_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            timeout_secs: 30,
            stream_timeout_secs: 600,
            redis_url: None,
            redis_key_prefix: "tenantry:".into(),
            default_rate_limits_per_minute: [
                ("read", 600),
                ("write", 120),
                ("auth", 30),
                ("expensive", 10),
            ]
            .into_iter()
            .map(|(class, limit)| (class.to_string(), limit))
            .collect(),
            auth_per_address_per_minute: 30,
            plan_cache_secs: 60,
            trusted_proxies: Vec::new(),
            expensive_methods: vec!["/tenantry.audit.v1.AuditService/VerifyChain".into()],
            rate_limit_audit_window_secs: 60,
            public_url: None,
        }
    }
}

impl Options {
    /// Checks the options; the error names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        for class in self.default_rate_limits_per_minute.keys() {
            if !routes::Class::ALL.iter().any(|c| c.as_str() == class) {
                anyhow::bail!(
                    "invalid configuration: `gateway.default_rate_limits_per_minute`: unknown class `{class}` (expected read, write, auth or expensive)"
                );
            }
        }
        if !(1..=3600).contains(&self.rate_limit_audit_window_secs) {
            anyhow::bail!(
                "invalid configuration: `gateway.rate_limit_audit_window_secs` must be from 1 to 3600"
            );
        }
        if self.max_body_bytes == 0 {
            anyhow::bail!("invalid configuration: `gateway.max_body_bytes` must be positive");
        }
        if self.timeout_secs == 0 || self.stream_timeout_secs == 0 {
            anyhow::bail!(
                "invalid configuration: `gateway.timeout_secs` and `gateway.stream_timeout_secs` must be positive"
            );
        }
        for proxy in &self.trusted_proxies {
            Cidr::parse(proxy).map_err(|e| {
                anyhow::anyhow!("invalid configuration: `gateway.trusted_proxies`: {e}")
            })?;
        }
        for origin in &self.cors_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                anyhow::bail!("invalid configuration: `gateway.cors_origins`: `{origin}`");
            }
        }
        if let Some(url) = &self.public_url
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(['?', '#']))
        {
            anyhow::bail!(
                "invalid configuration: `gateway.public_url` must be an http:// or https:// URL without query or fragment"
            );
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            anyhow::bail!(
                "invalid configuration: `gateway.redis_url` must start with redis:// or rediss://"
            );
        }
        Ok(())
    }
}

/// Whether the process is ready for traffic: set once every service is
/// built, cleared when shutdown begins so load balancers drain it first.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the gateway needs from the process hosting it.
#[derive(Debug, Clone)]
pub struct Deps {
    /// Where the services answer.
    pub peers: Peers,
    /// Identity's keys, to verify tokens at the edge.
    pub jwks: Arc<JwksCache>,
    /// What a token must say (issuer, audience).
    pub expectations: Expectations,
    /// gRPC paths callable without credentials.
    pub public_methods: Vec<String>,
    /// The edge key, with which the gateway reports refused requests to
    /// the audit service; `None`: they are counted in metrics only.
    pub edge_key: Option<InternalKey>,
    /// Stops the gateway's background work (the last reports go then).
    pub stop: CancellationToken,
    /// Where the gateway's background work runs, so shutdown waits for it.
    pub tasks: TaskTracker,
}

/// A built gateway (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.inner.routes.all().len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    pool: prost_reflect::DescriptorPool,
    routes: Routes,
    upstreams: Upstreams,
    auth: EdgeAuth,
    limiter: Limiter,
    options: Options,
    openapi: bytes::Bytes,
    trusted_proxies: Vec<Cidr>,
    /// Refusals counted for the audit log; `None` without an edge key (no
    /// one would drain the counts).
    refusals: Option<Arc<Refusals>>,
}

impl Gateway {
    /// Reads the contracts and connects (lazily) to the services.
    pub async fn build(options: &Options, deps: Deps) -> anyhow::Result<Gateway> {
        options.validate()?;
        let pool = routes::pool()?;
        let public: HashSet<String> = deps.public_methods.into_iter().collect();
        let expensive: HashSet<String> = options.expensive_methods.iter().cloned().collect();
        let routes = Routes::from_pool(&pool, &public, &expensive)?;
        let upstreams = Upstreams::new(&deps.peers)?;
        let auth = EdgeAuth::new(deps.jwks.clone(), deps.expectations, upstreams.identity());
        let limiter = Limiter::new(
            LimitSettings {
                defaults: options.default_rate_limits_per_minute.clone(),
                auth_per_address: options.auth_per_address_per_minute,
                plan_ttl: Duration::from_secs(options.plan_cache_secs),
                key_prefix: options.redis_key_prefix.clone(),
            },
            options.redis_url.as_deref(),
            upstreams.billing(),
        )
        .await?;
        let refusals = match deps.edge_key {
            Some(key) => {
                let refusals = Arc::new(Refusals::new(Duration::from_secs(
                    options.rate_limit_audit_window_secs,
                )));
                deps.tasks.spawn(refusals::report(
                    refusals.clone(),
                    upstreams.audit(),
                    key,
                    deps.stop,
                ));
                Some(refusals)
            }
            None => {
                tracing::warn!(
                    "no `edge_key`: requests refused over a rate limit are counted in metrics, not in the audit log"
                );
                None
            }
        };
        let openapi = serde_json::to_vec(&openapi::document(&pool, &routes))?.into();
        let trusted_proxies = options
            .trusted_proxies
            .iter()
            .map(|p| Cidr::parse(p).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        tracing::info!(
            routes = routes.all().len(),
            redis = options.redis_url.is_some(),
            "gateway routes read from the contracts"
        );
        Ok(Gateway {
            inner: Arc::new(Inner {
                pool,
                routes,
                upstreams,
                auth,
                limiter,
                options: options.clone(),
                openapi,
                trusted_proxies,
                refusals,
            }),
        })
    }

    /// The REST routes.
    pub fn routes(&self) -> &Routes {
        &self.inner.routes
    }
}

#[derive(Clone)]
struct OpsState {
    telemetry: Telemetry,
    readiness: Readiness,
    /// The process's copy of identity's keys: a process without them would
    /// refuse every token, so it is not ready until it has them.
    keys: Arc<JwksCache>,
}

/// The operational HTTP routes every process serves from the moment it
/// binds its port (`/metrics`, `/healthz`, `/readyz`). `keys` are the
/// process's copy of identity's keys, which readiness waits for.
pub fn ops_router(telemetry: Telemetry, readiness: Readiness, keys: Arc<JwksCache>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(OpsState {
            telemetry,
            readiness,
            keys,
        })
}

/// The API routes of the gateway: REST/JSON, gRPC and gRPC-Web, the
/// OpenAPI document and its page.
pub fn api_router(gateway: Gateway) -> Router {
    let cors = cors_layer(&gateway.inner.options.cors_origins);
    let api = Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .route(
            "/docs/docs.js",
            get(|| async { docs_asset("text/javascript; charset=utf-8", openapi::DOCS_SCRIPT) }),
        )
        .route(
            "/docs/docs.css",
            get(|| async { docs_asset("text/css; charset=utf-8", openapi::DOCS_STYLE) }),
        )
        .merge(authzen::router())
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            edge::middleware,
        ))
        .with_state(gateway);
    let api = edge::with_request_ids(api);
    match cors {
        Some(cors) => api.layer(cors),
        None => api,
    }
}

/// gRPC and gRPC-Web by content type; other calls to a method's gRPC path
/// (`/package.Service/Method`) are Connect; everything else is REST (whose
/// paths start with a version, never with a package).
async fn dispatch(State(gateway): State<Gateway>, request: Request) -> Response {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        proxy::handle(gateway, request).await
    } else if connect::is_method_path(&gateway, request.uri().path()) {
        connect::handle(gateway, request).await
    } else {
        rest::handle(gateway, request).await
    }
}

async fn openapi_json(State(gateway): State<Gateway>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        gateway.inner.openapi.clone(),
    )
        .into_response()
}

/// The API page's policy: its own script and style only, no inline code,
/// requests to this origin only, never framed.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn docs() -> Response {
    docs_asset("text/html; charset=utf-8", openapi::DOCS_PAGE)
}

fn docs_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, content_type),
            (http::header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let header = |name: &'static str| http::HeaderName::from_static(name);
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PUT,
                http::Method::PATCH,
                http::Method::DELETE,
            ])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                header("x-api-key"),
                header("x-request-id"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("connect-protocol-version"),
                header("connect-timeout-ms"),
                header("connect-content-encoding"),
                header("connect-accept-encoding"),
                http::header::CONTENT_ENCODING,
                header("traceparent"),
                header("tracestate"),
                header(tenantry_kit::consistency::HEADER),
            ])
            .expose_headers([
                header("x-request-id"),
                header(tenantry_kit::consistency::HEADER),
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("connect-content-encoding"),
                http::header::CONTENT_ENCODING,
                header("retry-after"),
                header("ratelimit-limit"),
                header("ratelimit-remaining"),
                header("ratelimit-reset"),
                header("ratelimit-policy"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

async fn metrics(State(state): State<OpsState>) -> String {
    state.telemetry.render_metrics()
}

async fn ready(State(state): State<OpsState>) -> (StatusCode, &'static str) {
    if !state.readiness.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    } else if state.keys.current().is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for identity's signing keys",
        )
    } else {
        (StatusCode::OK, "ready")
    }
}
