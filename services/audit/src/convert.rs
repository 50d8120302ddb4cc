//! Proto conversions of the audit service, in one place (see STYLE.md): how
//! its stored events and checkpoints become the resources clients see. The
//! handlers call these.

use tenantry_kit::names::OrganizationName;
use tenantry_proto::tenantry::audit::v1 as pb;

use crate::names::{AuditCheckpointName, AuditEventName};
use crate::record::{AuditRecord, StoredChange};
use crate::store::CheckpointRow;

impl AuditRecord {
    /// The event as clients see it.
    pub(crate) fn to_pb(&self) -> pb::AuditEvent {
        let metadata: Option<prost_types::Struct> =
            serde_json::from_str::<serde_json::Value>(&self.metadata)
                .ok()
                .and_then(|v| match json_to_prost(v) {
                    prost_types::value::Kind::StructValue(s) => Some(s),
                    _ => None,
                });
        let changes: Vec<StoredChange> = serde_json::from_str(&self.changes).unwrap_or_default();
        let org = |id: &str| {
            if id.is_empty() {
                String::new()
            } else {
                OrganizationName::new(id).to_string()
            }
        };
        pb::AuditEvent {
            name: AuditEventName::in_chain(&self.scope, &self.id).to_string(),
            organization: org(&self.scope),
            root_organization: org(&self.root),
            sequence: self.sequence,
            occurred_at: Some(tenantry_kit::db::timestamp(self.occurred_at_us)),
            ingest_time: Some(tenantry_kit::db::timestamp(self.ingested_at_us)),
            actor: Some(pb::Actor {
                kind: self.actor_kind,
                id: self.actor_id.clone(),
                display_name: self.actor_name.clone(),
            }),
            action: self.action.clone(),
            source: self.source.clone(),
            targets: self
                .target_list()
                .into_iter()
                .map(|t| pb::Target {
                    r#type: t.kind,
                    id: t.id,
                    name: t.name,
                })
                .collect(),
            outcome: self.outcome,
            client_address: self.client_address.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            changes: changes
                .into_iter()
                .map(|c| pb::FieldChange {
                    field: c.field,
                    before: c.before,
                    after: c.after,
                })
                .collect(),
            metadata,
            metadata_truncated: self.metadata_truncated,
            previous_hash: hex::decode(&self.previous_hash).unwrap_or_default(),
            hash: hex::decode(&self.hash).unwrap_or_default(),
        }
    }
}

/// A JSON value as a protobuf `Value` kind.
fn json_to_prost(value: serde_json::Value) -> prost_types::value::Kind {
    use prost_types::value::Kind;
    match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items
                .into_iter()
                .map(|v| prost_types::Value {
                    kind: Some(json_to_prost(v)),
                })
                .collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        prost_types::Value {
                            kind: Some(json_to_prost(v)),
                        },
                    )
                })
                .collect(),
        }),
    }
}

/// The checkpoint as clients see it.
pub(crate) fn checkpoint_view(c: &CheckpointRow) -> pb::AuditCheckpoint {
    pb::AuditCheckpoint {
        name: AuditCheckpointName::in_chain(&c.scope, &c.id).to_string(),
        sequence: c.sequence,
        head_hash: hex::decode(&c.head_hash).unwrap_or_default(),
        create_time: Some(tenantry_kit::db::timestamp(c.created_at_us)),
        signed_payload: c.signed_payload.as_bytes().to_vec(),
        signature: hex::decode(&c.signature).unwrap_or_default(),
        key_id: c.key_id.clone(),
        public_key: hex::decode(&c.public_key).unwrap_or_default(),
        retention_cut: c.retention_cut,
    }
}
