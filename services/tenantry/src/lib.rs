//! The one Tenantry binary as a library: configuration, the service set, and
//! the server that runs any subset of the services. `main.rs` only parses
//! the command line; tests start servers through [`server::start`].

pub mod config;
pub mod server;
pub mod services;
