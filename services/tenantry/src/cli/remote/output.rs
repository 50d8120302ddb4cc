//! `--output table|json|yaml`: answers as a table for people, or as the
//! contract's canonical proto3 JSON (and the same in YAML) for scripts.
//!
//! Messages become JSON through their descriptors (`prost-reflect`), as
//! grpcurl and the gateway show them: camelCase names, enums by name,
//! timestamps in RFC 3339, 64-bit integers as strings.

use std::sync::OnceLock;

use clap::ValueEnum;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;

/// How answers are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns of the most useful fields.
    #[default]
    Table,
    /// The answer as proto3 JSON (one document per answer; one line per
    /// item for streams).
    Json,
    /// The answer as YAML.
    Yaml,
}

/// Tenantry's contracts, for messages as JSON.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(tenantry_proto::FILE_DESCRIPTOR_SET)
            .expect("the built-in descriptor set decodes")
    })
}

/// A message as proto3 JSON.
pub fn json<M: prost::Message + prost::Name>(message: &M) -> Value {
    let Some(descriptor) = pool().get_message_by_name(&M::full_name()) else {
        return Value::Null;
    };
    let Ok(dynamic) = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()) else {
        return Value::Null;
    };
    let options = SerializeOptions::new().skip_default_fields(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or(Value::Null)
}

/// Prints one document in `format` (a table shows `columns` of `value`, or
/// of each of its elements when it is a list).
pub fn print(format: Format, value: &Value, columns: &[&str]) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Yaml => print!("{}", yaml(value)),
        Format::Table => {
            let rows = match value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            print_table(&rows, columns);
        }
    }
}

/// One item of a stream: a JSON line, a YAML document, or a table row
/// (without a header, so rows follow each other as they come).
pub fn print_item(format: Format, value: &Value, columns: &[&str]) {
    match format {
        Format::Json => println!("{value}"),
        Format::Yaml => print!("---\n{}", yaml(value)),
        Format::Table => {
            let cells: Vec<String> = columns.iter().map(|c| cell(value, c)).collect();
            println!("{}", cells.join("  "));
        }
    }
}

fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}

fn print_table(rows: &[Value], columns: &[&str]) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(columns.iter().map(|c| header(c)));
    for row in rows {
        table.add_row(columns.iter().map(|c| cell(row, c)));
    }
    println!(
        "{}",
        table
            .to_string()
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `displayName` → `DISPLAY NAME`; a dotted path shows its last part.
fn header(column: &str) -> String {
    let last = column.rsplit('.').next().unwrap_or(column);
    let mut out = String::new();
    for c in last.chars() {
        if c.is_uppercase() {
            out.push(' ');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// The text of a dotted path (`actor.id`) in `value`; lists are joined
/// with commas.
pub fn cell(value: &Value, column: &str) -> String {
    let mut current = value;
    for part in column.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    text(current)
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_proto3_json() {
        let reference = tenantry_proto::tenantry::authz::v1::ObjectReference {
            object_type: "project".into(),
            object_id: "p1".into(),
        };
        let value = json(&reference);
        assert_eq!(value["objectType"], "project");
        assert_eq!(cell(&value, "objectId"), "p1");
        assert_eq!(header("displayName"), "DISPLAY NAME");
        assert_eq!(header("actor.id"), "ID");
    }
}
