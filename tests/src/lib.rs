//! End-to-end tests live in tests/tests/.

pub mod bench;
pub mod rest;
