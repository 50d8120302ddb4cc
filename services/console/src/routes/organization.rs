//! Stub: filled in by the organization area.

use std::sync::Arc;

use axum::Router;

use super::Console;

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
}
