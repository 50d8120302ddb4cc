//! Schema as code for Tenantry's registered resource types.
//!
//! A schema file (YAML) lists the types an internal service registers with
//! `SchemaService`: name, parent type, permissions and what grants them. A
//! test file names a schema file, the relationships of a small world, and
//! what must hold in it (checks and lookups). This crate:
//!
//! - reads both with the line and column of every problem ([`Diagnostic`]);
//! - validates a schema with the authorization engine's own rules (it
//!   registers the types into `tenantry_rbac::engine::Schema`, the code the
//!   server runs), plus the rules of the contract the engine leaves to the
//!   handler ([`validate`]);
//! - converts the types into `tenantry.authz.v1.ResourceType` messages
//!   ([`convert`]) and plans what registering them would change on a server
//!   that has some types already ([`plan`]);
//! - runs a test file against the engine itself, in memory, with no server
//!   ([`run`]).
//!
//! The command line (`tenantry schema …`) is a thin layer over it.

mod diagnostic;
mod file;
mod suite;

pub mod convert;
pub mod plan;
pub mod run;
pub mod validate;

pub use diagnostic::{Diagnostic, Diagnostics, Pos};
pub use file::{GrantSpec, PermissionSpec, SchemaFile, TypeSpec};
pub use suite::{Check, Lookup, LookupKind, ObjectRef, Relationship, Suite};
pub use validate::Schema;
