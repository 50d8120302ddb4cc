//! JSON ⇄ protobuf by the proto3 JSON mapping (camelCase names, enums as
//! strings, 64-bit integers as strings, well-known types in their JSON
//! forms), through prost-reflect.
//!
//! A request is assembled as one JSON object — the body (or the body field),
//! the query parameters, the path variables — and deserialized once, with
//! unknown fields refused: every error names the field it is about.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};

use crate::errors::ApiError;
use crate::routes::{BodyRule, Route};

/// Builds the request message of `route`.
pub fn request(
    route: &Route,
    bindings: Vec<(&[String], String)>,
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, ApiError> {
    let input = route.method.input();
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let mut json = match &route.body {
        BodyRule::Whole if blank => Map::new(),
        BodyRule::Whole => match parse_body(body)? {
            Value::Object(fields) => fields,
            _ => return Err(ApiError::invalid("body", "must be a JSON object")),
        },
        BodyRule::Field(field) => {
            let mut fields = Map::new();
            if !blank {
                fields.insert(field.json_name().to_string(), parse_body(body)?);
            }
            fields
        }
        BodyRule::None if blank => Map::new(),
        BodyRule::None => {
            return Err(ApiError::invalid(
                "body",
                "this method takes no body; send its fields as query parameters",
            ));
        }
    };
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        if matches!(route.body, BodyRule::Whole) {
            let name = query.split('&').next().unwrap_or_default();
            let name = name.split('=').next().unwrap_or_default();
            return Err(ApiError::invalid(
                decode_form(name).unwrap_or_default(),
                "this method takes every field in the body, not the query",
            ));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode_form(name)
                .ok_or_else(|| ApiError::invalid("query", "is not valid percent-encoded UTF-8"))?;
            let value = decode_form(value)
                .ok_or_else(|| ApiError::invalid(&name, "is not valid percent-encoded UTF-8"))?;
            set_query(&mut json, &input, &name, &value, &route.body)?;
        }
    }
    for (path, value) in bindings {
        set_path(&mut json, &input, path, value);
    }
    from_json(input, Value::Object(json))
}

/// A message of type `input` from its proto3 JSON, unknown fields refused;
/// an error names the field it is about.
pub fn from_json(input: MessageDescriptor, json: Value) -> Result<DynamicMessage, ApiError> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(json, &mut track);
    DynamicMessage::deserialize_with_options(input, deserializer, &options).map_err(|error| {
        let path = track.path().to_string();
        let message = error.to_string();
        // An unknown field is reported at its parent; name the field itself.
        let field = match unknown_field(&message) {
            Some(name) if path == "." => name.to_string(),
            Some(name) => format!("{path}.{name}"),
            None if path == "." => "body".to_string(),
            None => path,
        };
        ApiError::invalid(field, message)
    })
}

/// Renders a response (or its `response_body` field) as JSON.
pub fn response(route: &Route, message: &DynamicMessage) -> Result<Vec<u8>, ApiError> {
    let value = to_json(message)?;
    let value = match &route.response_body {
        Some(field) => match value {
            Value::Object(mut fields) => fields.remove(field.json_name()).unwrap_or(Value::Null),
            other => other,
        },
        None => value,
    };
    serde_json::to_vec(&value)
        .map_err(|e| ApiError::from_status(tonic::Status::internal(e.to_string())))
}

/// A message as proto3 JSON.
pub fn to_json(message: &DynamicMessage) -> Result<Value, ApiError> {
    message
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|e| {
            ApiError::from_status(tonic::Status::internal(format!(
                "cannot render the response as JSON: {e}"
            )))
        })
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("is not valid JSON: {e}")))
}

/// The name in prost-reflect's "unrecognized field name 'x'".
fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unrecognized field name '")?
        .split('\'')
        .next()
}

/// Sets a path variable, replacing whatever the body said for that field
/// (under either spelling): the path is what was authorized by URL.
fn set_path(
    json: &mut Map<String, Value>,
    input: &MessageDescriptor,
    path: &[String],
    value: String,
) {
    let mut object = json;
    let mut descriptor = input.clone();
    for (i, name) in path.iter().enumerate() {
        let Some(field) = descriptor.get_field_by_name(name) else {
            return;
        };
        if i + 1 == path.len() {
            object.remove(field.name());
            object.insert(field.json_name().to_string(), Value::String(value));
            return;
        }
        let Some(next) = field.kind().as_message().cloned() else {
            return;
        };
        let entry = object
            .entry(field.json_name().to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(inner) = entry else {
            return;
        };
        object = inner;
        descriptor = next;
    }
}

/// Sets one query parameter (`pageSize=10`, `filter.actor=users/x`,
/// repeated parameters for repeated fields).
fn set_query(
    json: &mut Map<String, Value>,
    input: &MessageDescriptor,
    name: &str,
    value: &str,
    body: &BodyRule,
) -> Result<(), ApiError> {
    let unknown = || ApiError::invalid(name, format!("unrecognized query parameter '{name}'"));
    let parts: Vec<&str> = name.split('.').collect();
    let mut object = json;
    let mut descriptor = input.clone();
    for (i, part) in parts.iter().enumerate() {
        let field = descriptor
            .get_field_by_name(part)
            .or_else(|| descriptor.get_field_by_json_name(part))
            .ok_or_else(unknown)?;
        if i == 0
            && let BodyRule::Field(body_field) = body
            && body_field.number() == field.number()
        {
            return Err(ApiError::invalid(name, "is sent in the body"));
        }
        let key = field.json_name().to_string();
        if i + 1 == parts.len() {
            let scalar = query_value(&field, value).ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("cannot be set from a query parameter to `{value}`"),
                )
            })?;
            if field.is_list() {
                let entry = object
                    .entry(key)
                    .or_insert_with(|| Value::Array(Vec::new()));
                match entry {
                    Value::Array(items) => items.push(scalar),
                    _ => return Err(unknown()),
                }
            } else if object.insert(key, scalar).is_some() {
                return Err(ApiError::invalid(name, "is given twice"));
            }
            return Ok(());
        }
        if field.is_list() || field.is_map() {
            return Err(unknown());
        }
        let Kind::Message(next) = field.kind() else {
            return Err(unknown());
        };
        let entry = object
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(inner) = entry else {
            return Err(unknown());
        };
        object = inner;
        descriptor = next;
    }
    Ok(())
}

/// A query string value as the JSON the field's type accepts: numbers and
/// enums as strings (proto3 JSON accepts both), booleans as booleans, and
/// the well-known types that have a string form.
fn query_value(field: &FieldDescriptor, value: &str) -> Option<Value> {
    if field.is_map() {
        return None;
    }
    match field.kind() {
        Kind::Bool => match value {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue" => Some(Value::String(value.to_string())),
            "google.protobuf.BoolValue" => match value {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            _ => None,
        },
        _ => Some(Value::String(value.to_string())),
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, so
/// it goes before the percent escapes, where `%2B` is a literal `+`).
pub fn decode_form(raw: &str) -> Option<String> {
    String::from_utf8(decode_form_bytes(raw)?).ok()
}

/// [`decode_form`] into bytes, which need not be UTF-8 (a binary message
/// in a Connect GET's query).
pub fn decode_form_bytes(raw: &str) -> Option<Vec<u8>> {
    crate::template::decode_bytes(&raw.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::decode_form;

    #[test]
    fn form_text_decodes_plus_before_escapes() {
        assert_eq!(decode_form("a+b%2B%20c").as_deref(), Some("a b+ c"));
        assert_eq!(decode_form("%zz"), None);
        assert_eq!(decode_form("%ff"), None);
    }
}
