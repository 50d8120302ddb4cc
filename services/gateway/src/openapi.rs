//! OpenAPI 3 from the same descriptors and rules the transcoder serves:
//! one operation per route, parameters from the path variables and the
//! remaining scalar fields (query), bodies and responses as schemas of the
//! messages in their proto3 JSON form, descriptions from the proto comments.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost_reflect::{
    DescriptorPool, EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
};
use serde_json::{Value, json};

use crate::routes::{BodyRule, Route, Routes};

/// The OpenAPI document of every route.
pub fn document(pool: &DescriptorPool, routes: &Routes) -> Value {
    let mut builder = Builder {
        comments: Comments::new(pool),
        schemas: BTreeMap::new(),
        pending: Vec::new(),
    };
    let mut paths: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    let mut operation_ids: HashMap<String, usize> = HashMap::new();
    for route in routes.all() {
        let service = route.method.parent_service();
        let base_id = format!("{}_{}", service.name(), route.method.name());
        let seen = operation_ids.entry(base_id.clone()).or_default();
        *seen += 1;
        let operation_id = if *seen == 1 {
            base_id
        } else {
            format!("{base_id}_{seen}")
        };
        let operation = builder.operation(route, operation_id);
        paths
            .entry(route.template.openapi_path().0)
            .or_default()
            .insert(route.http_method.as_str().to_ascii_lowercase(), operation);
    }
    for (path, operation) in crate::authzen::openapi::operations() {
        paths
            .entry(path.to_string())
            .or_default()
            .insert("post".into(), operation);
    }
    builder.drain();
    let mut schemas = serde_json::Map::new();
    schemas.insert("Error".into(), error_schema());
    for (name, schema) in builder.schemas {
        schemas.insert(name, schema);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Tenantry API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST/JSON for every Tenantry service, transcoded by the gateway from the gRPC contracts (proto3 JSON mapping: camelCase names, enums as strings, 64-bit integers as strings). Send `Authorization: Bearer <access token>` or an API key (`Authorization: Bearer tnt_…` or `X-Api-Key`).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
        "security": [{"bearerAuth": []}, {"apiKey": []}],
    })
}

struct Builder {
    comments: Comments,
    schemas: BTreeMap<String, Value>,
    pending: Vec<MessageDescriptor>,
}

impl Builder {
    fn operation(&mut self, route: &Route, operation_id: String) -> Value {
        let method = &route.method;
        let comment = self
            .comments
            .get(&method.parent_file(), method.path())
            .unwrap_or_default();
        let summary = comment
            .split(". ")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut parameters = Vec::new();
        let mut bound: HashSet<String> = HashSet::new();
        for var in route.template.variables() {
            bound.insert(var.field_path[0].clone());
        }
        for (name, field) in route.template.openapi_path().1 {
            let pattern = route
                .template
                .variables()
                .iter()
                .find(|v| v.field_path.join(".") == field)
                .map(|v| route.template.pattern_of(v))
                .unwrap_or_default();
            parameters.push(json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": format!("Part of `{field}` (`{pattern}`)."),
                "schema": {"type": "string"},
            }));
        }
        let input = method.input();
        let body_field = match &route.body {
            BodyRule::Field(field) => Some(field.name().to_string()),
            _ => None,
        };
        if !matches!(route.body, BodyRule::Whole) {
            for field in input.fields() {
                if bound.contains(field.name()) || body_field.as_deref() == Some(field.name()) {
                    continue;
                }
                if let Some(schema) = self.query_schema(&field) {
                    let mut parameter = json!({
                        "name": field.json_name(),
                        "in": "query",
                        "schema": schema,
                    });
                    if let Some(text) = self.comments.get(&field.parent_file(), field.path()) {
                        parameter["description"] = Value::String(text);
                    }
                    if field.is_list() {
                        parameter["explode"] = Value::Bool(true);
                    }
                    parameters.push(parameter);
                }
            }
        }
        let mut operation = json!({
            "operationId": operation_id,
            "tags": [method.parent_service().name()],
            "summary": summary,
            "description": comment,
            "parameters": parameters,
            "x-grpc-method": route.grpc_path,
            "x-rate-limit-class": route.class.as_str(),
        });
        let body_schema = match &route.body {
            BodyRule::None => None,
            BodyRule::Whole => Some(self.message_ref(&input)),
            BodyRule::Field(field) => Some(self.field_schema(field)),
        };
        if let Some(schema) = body_schema {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
        }
        let output = method.output();
        let response_schema = match &route.response_body {
            Some(field) => self.field_schema(field),
            None => self.message_ref(&output),
        };
        let content_type = if method.is_server_streaming() {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        operation["responses"] = json!({
            "200": {
                "description": if method.is_server_streaming() {
                    "One JSON object per line, one per streamed message."
                } else {
                    "Success."
                },
                "content": {content_type: {"schema": response_schema}},
            },
            "default": {
                "description": "An error, with google.rpc details.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        });
        if route.public {
            operation["security"] = json!([{}, {"bearerAuth": []}]);
        }
        operation
    }

    /// The schema of a field usable as a query parameter, or `None`.
    fn query_schema(&mut self, field: &FieldDescriptor) -> Option<Value> {
        if field.is_map() {
            return None;
        }
        let scalar = match field.kind() {
            Kind::Message(message) => string_form(&message)?,
            _ => self.kind_schema(field),
        };
        Some(if field.is_list() {
            json!({"type": "array", "items": scalar})
        } else {
            scalar
        })
    }

    fn field_schema(&mut self, field: &FieldDescriptor) -> Value {
        let mut schema = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return json!({});
            };
            let value = entry.map_entry_value_field();
            json!({"type": "object", "additionalProperties": self.kind_schema(&value)})
        } else if field.is_list() {
            json!({"type": "array", "items": self.kind_schema(field)})
        } else {
            self.kind_schema(field)
        };
        if let Some(text) = self.comments.get(&field.parent_file(), field.path())
            && let Value::Object(fields) = &mut schema
            && !fields.contains_key("$ref")
        {
            fields.insert("description".into(), Value::String(text));
        }
        schema
    }

    fn kind_schema(&mut self, field: &FieldDescriptor) -> Value {
        match field.kind() {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
                json!({"type": "string", "format": "int64"})
            }
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte"}),
            Kind::Enum(descriptor) => enum_schema(&descriptor),
            Kind::Message(message) => self.message_ref(&message),
        }
    }

    /// A reference to a message's schema (well-known types inline).
    fn message_ref(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let name = message.full_name().to_string();
        if !self.schemas.contains_key(&name) {
            self.schemas.insert(name.clone(), Value::Null);
            self.pending.push(message.clone());
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// Builds the schema of every referenced message.
    fn drain(&mut self) {
        while let Some(message) = self.pending.pop() {
            let mut properties = serde_json::Map::new();
            for field in message.fields() {
                properties.insert(field.json_name().to_string(), self.field_schema(&field));
            }
            let mut schema = json!({"type": "object", "properties": properties});
            if let Some(text) = self.comments.get(&message.parent_file(), message.path()) {
                schema["description"] = Value::String(text);
            }
            self.schemas.insert(message.full_name().to_string(), schema);
        }
    }
}

fn enum_schema(descriptor: &EnumDescriptor) -> Value {
    let values: Vec<String> = descriptor.values().map(|v| v.name().to_string()).collect();
    json!({"type": "string", "enum": values})
}

/// The JSON form of the well-known types.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "Comma-separated camelCase field paths."})
        }
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Any" => {
            json!({"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true})
        }
        _ => return wrapper(message),
    })
}

/// The schema of a well-known type written as a string, for query use.
fn string_form(message: &MessageDescriptor) -> Option<Value> {
    match message.full_name() {
        "google.protobuf.Timestamp" => Some(json!({"type": "string", "format": "date-time"})),
        "google.protobuf.Duration" | "google.protobuf.FieldMask" => Some(json!({"type": "string"})),
        _ => wrapper(message),
    }
}

fn wrapper(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.StringValue" => json!({"type": "string"}),
        "google.protobuf.BytesValue" => json!({"type": "string", "format": "byte"}),
        "google.protobuf.BoolValue" => json!({"type": "boolean"}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({"type": "integer"}),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": "string", "format": "int64"})
        }
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({"type": "number"}),
        _ => return None,
    })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status."},
                    "status": {"type": "string", "description": "The gRPC code name, such as NOT_FOUND."},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "description": "google.rpc details: ErrorInfo (reason, domain, metadata), BadRequest (field violations), RetryInfo, …",
                        "items": {"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true},
                    },
                },
            },
        },
    })
}

/// Leading comments of every element, by file and source path.
struct Comments(HashMap<(String, Vec<i32>), String>);

impl Comments {
    fn new(pool: &DescriptorPool) -> Comments {
        let mut map = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            for location in &info.location {
                if let Some(text) = &location.leading_comments {
                    let text = text
                        .lines()
                        .map(str::trim)
                        .collect::<Vec<_>>()
                        .join(" ")
                        .trim()
                        .to_string();
                    if !text.is_empty() {
                        map.insert((file.name().to_string(), location.path.clone()), text);
                    }
                }
            }
        }
        Comments(map)
    }

    fn get(&self, file: &FileDescriptor, path: &[i32]) -> Option<String> {
        self.0
            .get(&(file.name().to_string(), path.to_vec()))
            .cloned()
    }
}

/// The human page: renders `/openapi.json` in the browser, no external
/// assets.
pub const DOCS_PAGE: &str = include_str!("docs.html");
/// The page's script: the operations, the credential, "Try it".
pub const DOCS_SCRIPT: &str = include_str!("docs/docs.js");
/// The page's style sheet.
pub const DOCS_STYLE: &str = include_str!("docs/docs.css");
