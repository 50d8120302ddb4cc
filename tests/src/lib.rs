//! End-to-end tests live in tests/tests/.

pub mod bench;
pub mod people;
pub mod rest;
