//! Tenantry's integration tests, one binary: each module tests one part
//! through the public contracts, against servers the tests start. One
//! binary links the whole stack once instead of once per file.
//!
//! Run one part with a filter: `cargo test -p tenantry-tests --test it
//! gateway::`.

mod audit;
mod authzen;
mod billing;
mod bulk;
mod cli;
mod client;
mod consistency;
mod console;
mod deployment;
mod errors_doc;
mod gateway;
mod hostile;
mod identity;
mod identity_directory;
mod organization;
mod outage;
mod outbox;
mod rbac;
mod serve;
