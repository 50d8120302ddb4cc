//! Compiles every `.proto` under `proto/tenantry` with protox (no system protoc)
//! and generates prost messages and tonic clients/servers from the result.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let mut files = Vec::new();
    collect_protos(&root.join("tenantry"), &mut files)?;
    files.sort();
    // The error details travel in every error's `grpc-status-details-bin`;
    // the gateway renders them as JSON, so their types must be in the set.
    files.push(root.join("google/rpc/error_details.proto"));
    println!("cargo:rerun-if-changed={}", root.display());

    // Encode the descriptor set straight from protox: re-encoding a parsed
    // `FileDescriptorSet` would drop extension options such as `google.api.http`,
    // which the gateway needs.
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    let encoded = compiler.encode_file_descriptor_set();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("tenantry_descriptor.bin"), &encoded)?;

    std::fs::write(out_dir.join("event_types.rs"), event_types(&encoded)?)?;

    let descriptors = compiler.file_descriptor_set();
    let mut config = tonic_prost_build::Config::new();
    // Type names let events travel as `google.protobuf.Any`.
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        // Every service can be mounted before it has business logic; an RPC
        // without an implementation answers UNIMPLEMENTED.
        .generate_default_stubs(true)
        .include_file("tenantry_protos.rs")
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}

/// Each event payload's type, from its `tenantry.events.v1.event_type`
/// option: an inherent `EVENT_TYPE` constant (usable in `match` patterns)
/// and the [`EventType`] impl that `NewEvent` takes the type from.
fn event_types(encoded: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    let pool = prost_reflect::DescriptorPool::decode(encoded)?;
    let option = pool
        .get_extension_by_name("tenantry.events.v1.event_type")
        .ok_or("proto/tenantry/events/v1/options.proto defines no event_type option")?;
    let mut out = String::new();
    let mut seen = std::collections::BTreeMap::new();
    for message in pool.all_messages() {
        if message.package_name() != "tenantry.events.v1" {
            continue;
        }
        let options = message.options();
        if !options.has_extension(&option) {
            continue;
        }
        let value = options.get_extension(&option);
        let event_type = value.as_str().ok_or("event_type is a string")?.to_string();
        if let Some(other) = seen.insert(event_type.clone(), message.name().to_string()) {
            return Err(format!(
                "`{event_type}` is the event type of both {other} and {}",
                message.name()
            )
            .into());
        }
        let path = format!("crate::tenantry::events::v1::{}", message.name());
        out.push_str(&format!(
            "impl {path} {{\n    /// The event type this message is the payload of.\n    pub const EVENT_TYPE: &'static str = {event_type:?};\n}}\n\n\
             impl crate::EventType for {path} {{\n    const EVENT_TYPE: &'static str = {event_type:?};\n}}\n\n"
        ));
    }
    Ok(out)
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
