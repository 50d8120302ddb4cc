//! The one Tenantry binary as a library: configuration, the service set, and
//! the server that runs any subset of the services, and the command line
//! ([`cli`]); tests start servers through [`server::start`], or the whole
//! program as a process.

pub mod cli;
pub mod config;
pub mod ephemeral;
pub mod explain;
mod handover;
mod late;
mod secrets;
pub mod server;
pub mod services;
