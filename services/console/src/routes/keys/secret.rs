//! The copy button of secrets shown once: the console's only script,
//! served like the stylesheet under a name that changes with its content.
//! Without it a secret is still selectable text in a read-only field.

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header;
use maud::{Markup, html};

use crate::routes::Console;

pub fn routes() -> Router<Arc<Console>> {
    Router::new().route(script_path(), get(script))
}

/// The copy buttons' script.
const SCRIPT: &str = include_str!("../../console.js");

/// The script's path, with its content's hash.
pub fn script_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(SCRIPT.as_bytes());
        format!("/console/static/console-{}.js", &hex::encode(hash)[..16])
    })
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// A secret shown once: read-only, selectable, with a copy button the
/// script reveals.
pub(super) fn secret_once(id: &str, label: &str, secret: &str) -> Markup {
    html! {
        div.field.secret {
            label for=(id) { (label) }
            input id=(id) type="text" readonly value=(secret) autocomplete="off" spellcheck="false";
            button.secondary type="button" data-copy=(id) hidden aria-label={ "Copy " (label) } { "Copy" }
            span.small role="status" aria-live="polite" data-copied=(id) {}
        }
        script src=(script_path()) {}
    }
}
