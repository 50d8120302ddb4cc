//! The AuthZEN endpoints as OpenAPI operations, so that the API page lists
//! them beside the transcoded routes and a reader can try them.

use serde_json::{Value, json};

use super::Endpoint;
use super::model::Target;

/// `(path, operation)` for every AuthZEN endpoint.
pub fn operations() -> Vec<(&'static str, Value)> {
    Endpoint::ALL
        .iter()
        .map(|(endpoint, path, _)| {
            let (summary, rpc, body) = match endpoint {
                Endpoint::Evaluation => (
                    "Access Evaluation: may the subject perform the action on the resource?",
                    "CheckPermission",
                    request(&["subject", "action", "resource", "context"], false),
                ),
                Endpoint::Evaluations => (
                    "Access Evaluations: many decisions at one revision; items take the top-level subject, action, resource and context they lack",
                    "CheckBulkPermissions",
                    request(&["subject", "action", "resource", "context", "evaluations", "options"], false),
                ),
                Endpoint::Search(Target::Subject) => (
                    "Subject Search: the subjects of `subject.type` with the action on the resource",
                    "LookupSubjects",
                    request(&["subject", "action", "resource", "context", "page"], true),
                ),
                Endpoint::Search(Target::Resource) => (
                    "Resource Search: the resources of `resource.type` on which the subject has the action",
                    "LookupResources",
                    request(&["subject", "action", "resource", "context", "page"], true),
                ),
                Endpoint::Search(Target::Action) => (
                    "Action Search: the permissions the subject has on the resource",
                    "GetResourceType + CheckBulkPermissions",
                    request(&["subject", "resource", "context", "page"], true),
                ),
            };
            let operation = json!({
                "operationId": format!("AuthZen_{}", path.rsplit('/').take(2).collect::<Vec<_>>().join("_")),
                "tags": ["AuthZEN"],
                "summary": summary,
                "description": format!("{summary}. OpenID AuthZEN Authorization API 1.0; errors are the HTTP status with the message as text (docs/authzen.md)."),
                "parameters": [],
                "x-grpc-method": format!("/tenantry.authz.v1.AuthorizationService ({rpc})"),
                "x-rate-limit-class": "read",
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "The decision or the results.", "content": {"application/json": {"schema": {"type": "object"}}}}},
            });
            (*path, operation)
        })
        .collect()
}

/// A request body schema with the named members.
fn request(members: &[&str], search: bool) -> Value {
    let entity = json!({"type": "object", "properties": {
        "type": {"type": "string"}, "id": {"type": "string"}, "properties": {"type": "object"},
    }});
    let mut properties = serde_json::Map::new();
    for member in members {
        let schema = match *member {
            "subject" | "resource" => entity.clone(),
            "action" => json!({"type": "object", "properties": {"name": {"type": "string"}}}),
            // Free-form; Tenantry reads `consistency` ("fully_consistent", …).
            "context" => json!({"type": "object"}),
            "evaluations" => json!({"type": "array", "items": {"type": "object"}}),
            "options" => json!({"type": "object", "properties": {"evaluations_semantic": {
                "type": "string", "enum": ["execute_all", "deny_on_first_deny", "permit_on_first_permit"],
            }}}),
            _ if search => json!({"type": "object", "properties": {
                "limit": {"type": "integer"}, "token": {"type": "string"},
            }}),
            _ => json!({"type": "object"}),
        };
        properties.insert((*member).to_string(), schema);
    }
    json!({"type": "object", "properties": properties})
}
