//! Shared plumbing of every Tenantry service.
//!
//! - [`cache`]: the bounded, expiring cache every request path uses.
//! - [`consistency`]: consistency tokens and the layer that carries them.
//! - [`config`]: layered configuration (defaults, TOML, `TENANTRY_*` env, flags).
//! - [`tenancy`]: the tenant scope Postgres row-level security enforces.
//! - [`telemetry`]: JSON logs, OTLP traces, W3C trace context, Prometheus metrics.
//! - [`db`]: SQLite and Postgres pools, per-service embedded migrations.
//! - [`error`]: the one error type and its mapping to `tonic::Status`.
//! - [`id`]: UUIDv7 ids and AIP-122 resource names; [`names`]: the typed names.
//! - [`page_token`]: opaque, tamper-checked page tokens.
//! - [`permission`]: the built-in permissions, named once for every service.
//! - [`outbox`] and [`bus`]: transactional outbox, relay, durable event bus.
//! - [`secret`]: opaque single-use tokens, stored hashed.
//! - [`request`]: the actor and request context of domain events.
//! - [`write`] and [`index`]: one owner per write (transaction, outbox,
//!   commit) and the hand-over of its events to the authorization index.

pub mod access;
pub mod admins;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod config;
pub mod consistency;
pub mod db;
pub mod error;
pub mod follow;
pub mod id;
pub mod index;
pub mod names;
pub mod net;
pub mod outbox;
pub mod page_token;
pub mod peer;
pub mod permission;
pub mod quota;
pub mod request;
pub mod row;
pub mod seal;
pub mod secret;
pub mod startup;
pub mod telemetry;
pub mod tenancy;
pub mod write;

pub use error::{Code, Error, Result};
pub mod service;
