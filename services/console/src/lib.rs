//! The admin console: HTML pages served under `/console` by the gateway's
//! HTTP port, rendered on the server, with plain forms (POST, then a
//! redirect) and no JavaScript.
//!
//! The console has no back door: every page calls the services through
//! their public gRPC contracts with the signed-in user's own access token,
//! through the same authentication and tenancy layers as any client. What
//! it keeps is the user's tokens, sealed in a cookie under the console key
//! (see [`session`]), so any replica serves any user and no session lives
//! in memory.

mod calls;
mod pages;
mod routes;
pub mod session;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http::header;
use serde::{Deserialize, Serialize};
use tenantry_kit::peer::PeerDirectory;

/// Options of the console (the `[console]` table of the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Serve the console at `/console` on the HTTP port. Default: true.
    pub enabled: bool,
    /// 64 hex digits sealing the console's session cookies; every gateway
    /// replica must share it. Unset: generated once and kept in
    /// `data_dir`.
    pub key: Option<String>,
    /// The URL users reach the console at (`https://admin.example.com`).
    /// When it is `https`, cookies are `Secure` with the `__Secure-`
    /// prefix. Unset: cookies follow the scheme the request says it came
    /// over (`X-Forwarded-Proto`).
    pub public_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            enabled: true,
            key: None,
            public_url: None,
        }
    }
}

/// What the console needs from the process that serves it.
pub struct Deps {
    /// The key sealing session cookies (32 bytes).
    pub key: [u8; 32],
    /// Where the services answer (in this process or over the network).
    pub peers: PeerDirectory,
}

/// The console's routes, to be merged into the HTTP router (they all
/// start with `/console`).
pub fn router(options: &Options, deps: Deps) -> anyhow::Result<axum::Router> {
    let console = Arc::new(routes::Console::new(options, deps)?);
    Ok(axum::Router::new()
        .merge(routes::router(console))
        .route("/console/{*rest}", axum::routing::any(routes::not_found))
        .layer(axum::middleware::from_fn(security_headers)))
}

/// Content security policy of every console answer: nothing but the
/// console's own stylesheet, images and script (the copy button of secrets
/// shown once; never inline), forms posting only to the console, never
/// framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
