//! The edge gateway: the HTTP side of Tenantry.
//!
//! Today it serves the operational endpoints every deployment needs:
//! `/metrics` (Prometheus), `/healthz` (the process is alive) and `/readyz`
//! (the process accepts traffic). REST/JSON transcoding from the contracts'
//! `google.api.http` rules, gRPC-Web, edge authentication and rate limits
//! arrive with issue 8, behind the same [`router`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tenantry_kit::telemetry::Telemetry;

/// Options of the gateway (the `[gateway]` table of the config file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {}

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

#[derive(Clone)]
struct GatewayState {
    telemetry: Telemetry,
    readiness: Readiness,
}

/// The gateway's HTTP routes.
pub fn router(_options: &Options, telemetry: Telemetry, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(GatewayState {
            telemetry,
            readiness,
        })
}

async fn metrics(State(state): State<GatewayState>) -> String {
    state.telemetry.render_metrics()
}

async fn ready(State(state): State<GatewayState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
