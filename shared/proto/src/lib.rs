//! Tenantry's protobuf contracts as Rust types, clients and servers.
//!
//! Everything here is generated at build time from `proto/` by protox and
//! tonic-prost-build; nothing is written by hand except this file. Modules
//! follow the proto packages: `tenantry::organization::v1`, `google::rpc`, ….

#![allow(clippy::all, missing_docs, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/tenantry_protos.rs"));

/// A domain event's payload message, which knows its event type (the
/// `tenantry.events.v1.event_type` option of the contract): producers take
/// the type from the payload, consumers match on `Payload::EVENT_TYPE`.
pub trait EventType: prost::Name {
    /// The stable dotted event type, such as `organization.created`.
    const EVENT_TYPE: &'static str;
}

include!(concat!(env!("OUT_DIR"), "/event_types.rs"));

/// The encoded `FileDescriptorSet` of every Tenantry proto and its imports,
/// with source info and options (including `google.api.http`) intact. Server
/// reflection and the gateway's transcoder read it.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tenantry_descriptor.bin"));
