//! `tenantry serve --ephemeral` and `tenantry schema …` from the outside:
//! the real binary, started the way a developer or a CI job starts it.

mod ephemeral;
mod offline;
mod process;
mod server;
