//! Outgoing mail: the shared [`tenantry_mail`] crate, configured as
//! `[identity.mailer]`.

pub use tenantry_mail::*;
