//! AuthZEN requests read into Tenantry's terms: subjects and resources
//! (`type`, `id`, `properties`), actions (`name`), the context (of which
//! Tenantry reads `consistency`), batches with their defaults and
//! semantics, searches with their pages. Unknown members are ignored, as
//! the specification requires; a missing or malformed required member is a
//! [`BadRequest`] naming it. Pure functions, no IO.

use serde_json::{Map, Value};
use tenantry_proto::tenantry::authz::v1 as pb;

/// A request the specification calls bad (400), with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

fn bad(message: impl Into<String>) -> BadRequest {
    BadRequest(message.into())
}

/// A subject or a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// `type`: a Tenantry object type (`user`, `project`, a registered one).
    pub kind: String,
    /// `id`: the object id; empty in a search for this entity.
    pub id: String,
    /// `properties`; Tenantry reads `relation` (a subject set's relation)
    /// on subjects and `organization` on a resource search.
    pub properties: Map<String, Value>,
}

impl Entity {
    /// The authorization reference to this object.
    pub fn object(&self) -> pb::ObjectReference {
        pb::ObjectReference {
            object_type: self.kind.clone(),
            object_id: self.id.clone(),
        }
    }

    /// The subject reference, with `properties.relation` when given.
    pub fn subject(&self) -> pb::SubjectReference {
        pb::SubjectReference {
            object: Some(self.object()),
            optional_relation: self.property("relation").unwrap_or_default().to_string(),
        }
    }

    /// A string property.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
}

/// One access evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Who.
    pub subject: Entity,
    /// The permission, such as `project.read`.
    pub action: String,
    /// On what.
    pub resource: Entity,
    /// The environment.
    pub context: Map<String, Value>,
}

/// How a batch answers (`options.evaluations_semantic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// Every evaluation, in order (the default).
    ExecuteAll,
    /// Up to and including the first denial or failure.
    DenyOnFirstDeny,
    /// Up to and including the first permit.
    PermitOnFirstPermit,
}

impl Semantic {
    /// The name in `options.evaluations_semantic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Semantic::ExecuteAll => "execute_all",
            Semantic::DenyOnFirstDeny => "deny_on_first_deny",
            Semantic::PermitOnFirstPermit => "permit_on_first_permit",
        }
    }
}

/// An Access Evaluations request.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The evaluations with the defaults filled in; one when the request
    /// had no `evaluations` (it is then a single evaluation).
    pub items: Vec<Evaluation>,
    /// Whether `evaluations` was absent or empty: answer as one evaluation.
    pub single: bool,
    /// How to answer.
    pub semantic: Semantic,
    /// How fresh the answers must be (all are given at one revision).
    pub consistency: Option<pb::Consistency>,
}

/// A search's page request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// `token`: the `next_token` of the previous page.
    pub token: String,
    /// `limit`: at most this many results (0: the server's default).
    pub limit: i32,
}

/// A search: the entity searched for has a type and no id.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// The subject (without id in a subject search).
    pub subject: Entity,
    /// The permission; empty in an action search.
    pub action: String,
    /// The resource (without id in a resource search).
    pub resource: Entity,
    /// How fresh the answer must be.
    pub consistency: Option<pb::Consistency>,
    /// Which page.
    pub page: Page,
}

/// What a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Subjects of `subject.type`.
    Subject,
    /// Resources of `resource.type`.
    Resource,
    /// Actions.
    Action,
}

/// The body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, BadRequest> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(bad("the request body must be a JSON object")),
        Err(e) => Err(bad(format!("the request body is not valid JSON: {e}"))),
    }
}

/// An Access Evaluation request.
pub fn evaluation(body: &Map<String, Value>) -> Result<Evaluation, BadRequest> {
    let context = context(body.get("context"), "context")?;
    Ok(Evaluation {
        subject: entity(required(body, "subject")?, "subject", true)?,
        action: action(required(body, "action")?, "action")?,
        resource: entity(required(body, "resource")?, "resource", true)?,
        context,
    })
}

/// An Access Evaluations request: each item takes the top-level
/// `subject`, `action`, `resource` and `context` it does not set itself.
pub fn batch(body: &Map<String, Value>) -> Result<Batch, BadRequest> {
    let semantic = semantic(body.get("options"))?;
    let items = match body.get("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(bad("`evaluations` must be an array")),
    };
    let defaults = context(body.get("context"), "context")?;
    let consistency = consistency(&defaults)?;
    if items.is_empty() {
        return Ok(Batch {
            items: vec![evaluation(body)?],
            single: true,
            semantic,
            consistency,
        });
    }
    if items.len() > MAX_BATCH {
        return Err(bad(format!(
            "`evaluations` may hold at most {MAX_BATCH} items"
        )));
    }
    let mut merged = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(bad(format!("`evaluations[{i}]` must be an object")));
        };
        let mut full = body.clone();
        full.remove("evaluations");
        for (key, value) in item {
            full.insert(key.clone(), value.clone());
        }
        let evaluation =
            evaluation(&full).map_err(|BadRequest(m)| bad(format!("evaluations[{i}]: {m}")))?;
        if item.contains_key("context")
            && consistency_of(&evaluation.context) != consistency_of(&defaults)
        {
            return Err(bad(format!(
                "evaluations[{i}]: `context.consistency` applies to the whole batch; set it in the top-level context"
            )));
        }
        merged.push(evaluation);
    }
    Ok(Batch {
        items: merged,
        single: false,
        semantic,
        consistency,
    })
}

/// The most evaluations in one batch (the authorization service's bulk
/// limit).
pub const MAX_BATCH: usize = 1000;

/// A search request for `target`.
pub fn search(body: &Map<String, Value>, target: Target) -> Result<Search, BadRequest> {
    let context = context(body.get("context"), "context")?;
    let action = match target {
        Target::Action => String::new(),
        _ => action(required(body, "action")?, "action")?,
    };
    let subject = entity(
        required(body, "subject")?,
        "subject",
        target != Target::Subject,
    )?;
    let resource = entity(
        required(body, "resource")?,
        "resource",
        target != Target::Resource,
    )?;
    Ok(Search {
        subject,
        action,
        resource,
        consistency: consistency(&context)?,
        page: page(body.get("page"))?,
    })
}

fn required<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a Value, BadRequest> {
    match body.get(key) {
        None | Some(Value::Null) => Err(bad(format!("`{key}` is required"))),
        Some(value) => Ok(value),
    }
}

fn entity(value: &Value, path: &str, id_required: bool) -> Result<Entity, BadRequest> {
    let Value::Object(fields) = value else {
        return Err(bad(format!("`{path}` must be an object")));
    };
    let text = |key: &str, needed: bool| -> Result<String, BadRequest> {
        match fields.get(key) {
            // The searched entity's id, whatever it is, is ignored.
            _ if !needed => Ok(String::new()),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                Err(bad(format!("`{path}.{key}` is required")))
            }
            Some(_) => Err(bad(format!("`{path}.{key}` must be a string"))),
        }
    };
    let kind = text("type", true)?;
    let id = text("id", id_required)?;
    let properties = match fields.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(properties)) => properties.clone(),
        Some(_) => return Err(bad(format!("`{path}.properties` must be an object"))),
    };
    if let Some(relation) = properties.get("relation")
        && !relation.is_string()
    {
        return Err(bad(format!(
            "`{path}.properties.relation` must be a string"
        )));
    }
    Ok(Entity {
        kind,
        id,
        properties,
    })
}

fn action(value: &Value, path: &str) -> Result<String, BadRequest> {
    match value.get("name") {
        _ if !value.is_object() => Err(bad(format!("`{path}` must be an object"))),
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(bad(format!("`{path}.name` is required")))
        }
        Some(_) => Err(bad(format!("`{path}.name` must be a string"))),
    }
}

fn context(value: Option<&Value>, path: &str) -> Result<Map<String, Value>, BadRequest> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(context)) => Ok(context.clone()),
        Some(_) => Err(bad(format!("`{path}` must be an object"))),
    }
}

fn consistency_of(context: &Map<String, Value>) -> Option<&Value> {
    context.get("consistency")
}

/// `context.consistency`: `"minimize_latency"`, `"fully_consistent"`, or
/// `{"at_least_as_fresh": "<token>"}` (a token a write answered).
pub fn consistency(context: &Map<String, Value>) -> Result<Option<pb::Consistency>, BadRequest> {
    use pb::consistency::Requirement;
    let requirement = match consistency_of(context) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s == "minimize_latency" => Requirement::MinimizeLatency(true),
        Some(Value::String(s)) if s == "fully_consistent" => Requirement::FullyConsistent(true),
        Some(Value::Object(fields)) => match fields.get("at_least_as_fresh") {
            Some(Value::String(token)) if !token.is_empty() => {
                Requirement::AtLeastAsFresh(pb::ZedToken {
                    token: token.clone(),
                })
            }
            _ => {
                return Err(bad(
                    "`context.consistency.at_least_as_fresh` must be a token",
                ));
            }
        },
        Some(_) => {
            return Err(bad(
                "`context.consistency` must be \"minimize_latency\", \"fully_consistent\" or {\"at_least_as_fresh\": token}",
            ));
        }
    };
    Ok(Some(pb::Consistency {
        requirement: Some(requirement),
    }))
}

fn semantic(options: Option<&Value>) -> Result<Semantic, BadRequest> {
    let name = match options {
        None | Some(Value::Null) => return Ok(Semantic::ExecuteAll),
        Some(Value::Object(options)) => options.get("evaluations_semantic"),
        Some(_) => return Err(bad("`options` must be an object")),
    };
    match name.and_then(Value::as_str) {
        None if name.is_none_or(Value::is_null) => Ok(Semantic::ExecuteAll),
        Some("execute_all") => Ok(Semantic::ExecuteAll),
        Some("deny_on_first_deny") => Ok(Semantic::DenyOnFirstDeny),
        Some("permit_on_first_permit") => Ok(Semantic::PermitOnFirstPermit),
        _ => Err(bad(
            "`options.evaluations_semantic` must be execute_all, deny_on_first_deny or permit_on_first_permit",
        )),
    }
}

fn page(value: Option<&Value>) -> Result<Page, BadRequest> {
    let fields = match value {
        None | Some(Value::Null) => return Ok(Page::default()),
        Some(Value::Object(fields)) => fields,
        Some(_) => return Err(bad("`page` must be an object")),
    };
    let token = match fields.get("token") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(token)) => token.clone(),
        Some(_) => return Err(bad("`page.token` must be a string")),
    };
    let limit = match fields.get("limit") {
        None | Some(Value::Null) => 0,
        Some(limit) => limit
            .as_u64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| bad("`page.limit` must be a non-negative integer"))?,
    };
    Ok(Page { token, limit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_specifications_single_evaluation_reads() {
        let e = evaluation(&map(json!({
            "subject": {"type": "user", "id": "alice@example.com"},
            "resource": {"type": "account", "id": "123"},
            "action": {"name": "can_read", "properties": {"method": "GET"}},
            "context": {"time": "1985-10-26T01:22-07:00"},
            "unknown": "ignored",
        })))
        .unwrap();
        assert_eq!(
            (e.subject.kind.as_str(), e.subject.id.as_str()),
            ("user", "alice@example.com")
        );
        assert_eq!(e.action, "can_read");
        assert_eq!(e.resource.object().object_id, "123");
        assert_eq!(e.context["time"], "1985-10-26T01:22-07:00");
    }

    #[test]
    fn missing_and_malformed_members_are_named() {
        let cases = [
            (
                json!({"action": {"name": "a"}, "resource": {"type": "r", "id": "1"}}),
                "`subject` is required",
            ),
            (
                json!({"subject": {"type": "u"}, "action": {"name": "a"}, "resource": {"type": "r", "id": "1"}}),
                "`subject.id` is required",
            ),
            (
                json!({"subject": {"type": "u", "id": 7}, "action": {"name": "a"}, "resource": {"type": "r", "id": "1"}}),
                "`subject.id` must be a string",
            ),
            (
                json!({"subject": {"type": "u", "id": "1"}, "action": {}, "resource": {"type": "r", "id": "1"}}),
                "`action.name` is required",
            ),
            (
                json!({"subject": {"type": "u", "id": "1"}, "action": {"name": "a"}, "resource": "r:1"}),
                "`resource` must be an object",
            ),
            (
                json!({"subject": {"type": "u", "id": "1"}, "action": {"name": "a"}, "resource": {"type": "r", "id": "1"}, "context": []}),
                "`context` must be an object",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(evaluation(&map(body)), Err(BadRequest(message.into())));
        }
    }

    #[test]
    fn batch_items_take_the_top_level_defaults() {
        let b = batch(&map(json!({
            "subject": {"type": "user", "id": "alice"},
            "context": {"time": "now"},
            "action": {"name": "can_read"},
            "options": {"evaluations_semantic": "permit_on_first_permit"},
            "evaluations": [
                {"resource": {"type": "document", "id": "1"}},
                {"action": {"name": "can_edit"}, "resource": {"type": "document", "id": "2"}},
            ],
        })))
        .unwrap();
        assert!(!b.single);
        assert_eq!(b.semantic, Semantic::PermitOnFirstPermit);
        assert_eq!(b.items[0].action, "can_read");
        assert_eq!(b.items[1].action, "can_edit");
        assert_eq!(b.items[1].subject.id, "alice");
        assert_eq!(b.items[1].context["time"], "now");
        let missing = batch(&map(
            json!({"evaluations": [{"resource": {"type": "d", "id": "1"}}]}),
        ));
        assert_eq!(
            missing,
            Err(BadRequest("evaluations[0]: `subject` is required".into()))
        );
        let semantic = batch(&map(json!({"options": {"evaluations_semantic": "maybe"}})));
        assert!(semantic.unwrap_err().0.contains("evaluations_semantic"));
    }

    #[test]
    fn an_empty_batch_is_one_evaluation() {
        let b = batch(&map(json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "can_read"},
            "resource": {"type": "document", "id": "1"},
            "evaluations": [],
        })))
        .unwrap();
        assert!(b.single);
        assert_eq!(b.items.len(), 1);
    }

    #[test]
    fn consistency_comes_from_the_context() {
        use pb::consistency::Requirement;
        let fresh = consistency(&map(json!({"consistency": {"at_least_as_fresh": "t1"}}))).unwrap();
        assert_eq!(
            fresh.unwrap().requirement,
            Some(Requirement::AtLeastAsFresh(pb::ZedToken {
                token: "t1".into()
            }))
        );
        let full = consistency(&map(json!({"consistency": "fully_consistent"}))).unwrap();
        assert_eq!(
            full.unwrap().requirement,
            Some(Requirement::FullyConsistent(true))
        );
        assert!(consistency(&map(json!({"consistency": "eventually"}))).is_err());
        assert_eq!(consistency(&Map::new()).unwrap(), None);
    }

    #[test]
    fn searches_ignore_the_searched_id_and_read_pages() {
        let s = search(
            &map(json!({
                "subject": {"type": "user", "id": "ignored"},
                "action": {"name": "project.read"},
                "resource": {"type": "project", "id": "p1"},
                "page": {"limit": 2, "token": "t"},
            })),
            Target::Subject,
        )
        .unwrap();
        assert_eq!(s.subject.id, "");
        assert_eq!(
            s.page,
            Page {
                token: "t".into(),
                limit: 2
            }
        );
        let no_type = search(
            &map(
                json!({"subject": {"id": "x"}, "action": {"name": "a"}, "resource": {"type": "p", "id": "1"}}),
            ),
            Target::Subject,
        );
        assert_eq!(
            no_type,
            Err(BadRequest("`subject.type` is required".into()))
        );
        let bad_limit = search(
            &map(
                json!({"subject": {"type": "u", "id": "1"}, "resource": {"type": "p", "id": "1"}, "page": {"limit": -1}}),
            ),
            Target::Action,
        );
        assert!(bad_limit.unwrap_err().0.contains("page.limit"));
    }
}
