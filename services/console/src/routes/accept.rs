//! TODO
use std::sync::Arc;

use super::Console;

pub fn routes() -> axum::Router<Arc<Console>> {
    axum::Router::new()
}
