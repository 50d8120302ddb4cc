//! Shared plumbing of every Tenantry service.
//!
//! - [`cache`]: the bounded, expiring cache every request path uses.
//! - [`config`]: layered configuration (defaults, TOML, `TENANTRY_*` env, flags).
//! - [`telemetry`]: JSON logs, OTLP traces, W3C trace context, Prometheus metrics.
//! - [`db`]: SQLite and Postgres pools, per-service embedded migrations.
//! - [`error`]: the one error type and its mapping to `tonic::Status`.
//! - [`id`]: UUIDv7 ids and AIP-122 resource names.
//! - [`page_token`]: opaque, tamper-checked page tokens.
//! - [`outbox`] and [`bus`]: transactional outbox, relay, durable event bus.
//! - [`secret`]: opaque single-use tokens, stored hashed.
//! - [`request`]: the actor and request context of domain events.

pub mod access;
pub mod admins;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod id;
pub mod net;
pub mod outbox;
pub mod page_token;
pub mod quota;
pub mod request;
pub mod secret;
pub mod telemetry;

pub use error::{Code, Error, Result};
pub mod service;
