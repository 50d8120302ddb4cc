//! One audit event: made from a domain event and hashed into its chain
//! (`convert` shows it in the API).
//!
//! The hash of an event is SHA-256 over its previous event's hash (32
//! bytes) followed by the canonical encoding of its stored fields: each of
//! `id`, `scope`, `root`, `sequence`, `occurred_at_us`, `actor_kind`,
//! `actor_id`, `actor_name`, `action`, `source`, `targets`, `outcome`,
//! `client_address`, `user_agent`, `request_id`, `trace_id`, `changes`,
//! `metadata`, `metadata_truncated`, in that order, as an 8-byte big-endian
//! length and then its bytes (numbers as decimal text, JSON fields as the
//! stored JSON text). Anyone with the rows can recompute it.

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantry_kit::row::Bit;
use tenantry_proto::tenantry::audit::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;

/// The scope of events that belong to no organization.
pub const INSTANCE: &str = "instance";

/// The hash before the first event of a chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// A target as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTarget {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// A field change as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// An audit event as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: String,
    /// The organization id, or [`INSTANCE`].
    pub scope: String,
    #[sqlx(rename = "root_id")]
    pub root: String,
    pub sequence: i64,
    pub occurred_at_us: i64,
    pub ingested_at_us: i64,
    /// Stored as BIGINT.
    #[sqlx(try_from = "i64")]
    pub actor_kind: i32,
    pub actor_id: String,
    pub actor_name: String,
    pub action: String,
    pub source: String,
    /// JSON array of [`StoredTarget`].
    pub targets: String,
    /// Stored as BIGINT.
    #[sqlx(try_from = "i64")]
    pub outcome: i32,
    pub client_address: String,
    pub user_agent: String,
    pub request_id: String,
    pub trace_id: String,
    /// JSON array of [`StoredChange`].
    pub changes: String,
    /// JSON object: the payload in its JSON form, possibly cut.
    pub metadata: String,
    #[sqlx(try_from = "Bit")]
    pub metadata_truncated: bool,
    /// Lowercase hex.
    pub previous_hash: String,
    /// Lowercase hex.
    pub hash: String,
}

/// The outcome of an action, from its type's suffix.
pub fn outcome(action: &str) -> pb::Outcome {
    if action.ends_with(".failed") || action.ends_with("_failed") {
        pb::Outcome::Failure
    } else if action.ends_with(".denied") || action.ends_with(".rate_limited") {
        pb::Outcome::Denied
    } else {
        pb::Outcome::Success
    }
}

/// The payload of `event` as a JSON object, cut to at most `max_bytes`
/// (whole top-level fields are kept while they fit; a marker field says
/// what was cut). Returns the JSON text and whether it was cut.
pub fn metadata(pool: &DescriptorPool, event: &events::Event, max_bytes: usize) -> (String, bool) {
    let value = event
        .payload
        .as_ref()
        .and_then(|any| {
            let name = any.type_url.rsplit('/').next()?;
            let descriptor = pool.get_message_by_name(name)?;
            let message = DynamicMessage::decode(descriptor, any.value.as_slice()).ok()?;
            serde_json::to_value(&message).ok()
        })
        .unwrap_or_else(|| serde_json::json!({}));
    let text = value.to_string();
    if text.len() <= max_bytes {
        return (text, false);
    }
    let marker = serde_json::json!({"_truncated": true, "_original_bytes": text.len()});
    let mut kept = serde_json::Map::new();
    let mut size = marker.to_string().len();
    if let serde_json::Value::Object(fields) = value {
        for (key, field) in fields {
            let cost = key.len() + field.to_string().len() + 4;
            if size + cost <= max_bytes {
                size += cost;
                kept.insert(key, field);
            }
        }
    }
    kept.insert("_truncated".into(), serde_json::Value::Bool(true));
    kept.insert(
        "_original_bytes".into(),
        serde_json::Value::from(text.len()),
    );
    (serde_json::Value::Object(kept).to_string(), true)
}

impl AuditRecord {
    /// The record of a domain event, before it has a place in a chain.
    pub fn from_event(
        pool: &DescriptorPool,
        event: &events::Event,
        max_metadata: usize,
        now_us: i64,
    ) -> AuditRecord {
        let actor = event.actor.clone().unwrap_or_default();
        let request = event.request.clone().unwrap_or_default();
        let targets: Vec<StoredTarget> = event
            .targets
            .iter()
            .map(|t| StoredTarget {
                kind: t.r#type.clone(),
                id: t.id.clone(),
                name: t.name.clone(),
            })
            .collect();
        let changes: Vec<StoredChange> = event
            .changes
            .iter()
            .map(|c| StoredChange {
                field: c.field.clone(),
                before: c.before.clone(),
                after: c.after.clone(),
            })
            .collect();
        let (metadata, metadata_truncated) = metadata(pool, event, max_metadata);
        let occurred_at_us = event.occurred_at.as_ref().map_or(now_us, |t| {
            t.seconds.saturating_mul(1_000_000) + i64::from(t.nanos / 1000)
        });
        AuditRecord {
            id: event.id.clone(),
            scope: if event.organization_id.is_empty() {
                INSTANCE.into()
            } else {
                event.organization_id.clone()
            },
            root: event.root_organization_id.clone(),
            sequence: 0,
            occurred_at_us,
            ingested_at_us: now_us,
            actor_kind: actor.kind,
            actor_id: actor.id,
            actor_name: actor.display_name,
            action: event.r#type.clone(),
            source: event.source.clone(),
            targets: serde_json::to_string(&targets).expect("targets serialize"),
            outcome: outcome(&event.r#type) as i32,
            client_address: request.client_address,
            user_agent: request.user_agent,
            request_id: request.request_id,
            trace_id: request.trace_id,
            changes: serde_json::to_string(&changes).expect("changes serialize"),
            metadata,
            metadata_truncated,
            previous_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The target list.
    pub fn target_list(&self) -> Vec<StoredTarget> {
        serde_json::from_str(&self.targets).unwrap_or_default()
    }

    /// The canonical encoding of the hashed fields.
    fn canonical(&self) -> Vec<u8> {
        let (sequence, occurred, kind, outcome) = (
            self.sequence.to_string(),
            self.occurred_at_us.to_string(),
            self.actor_kind.to_string(),
            self.outcome.to_string(),
        );
        let fields: [&[u8]; 19] = [
            self.id.as_bytes(),
            self.scope.as_bytes(),
            self.root.as_bytes(),
            sequence.as_bytes(),
            occurred.as_bytes(),
            kind.as_bytes(),
            self.actor_id.as_bytes(),
            self.actor_name.as_bytes(),
            self.action.as_bytes(),
            self.source.as_bytes(),
            self.targets.as_bytes(),
            outcome.as_bytes(),
            self.client_address.as_bytes(),
            self.user_agent.as_bytes(),
            self.request_id.as_bytes(),
            self.trace_id.as_bytes(),
            self.changes.as_bytes(),
            self.metadata.as_bytes(),
            if self.metadata_truncated { b"1" } else { b"0" },
        ];
        let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 8).sum());
        for field in fields {
            out.extend_from_slice(&(field.len() as u64).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    /// The hash of this record after `previous` (32 bytes).
    pub fn compute_hash(&self, previous: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(self.canonical());
        hasher.finalize().into()
    }

    /// Places the record in its chain after (`sequence`, `previous`).
    pub fn seal(&mut self, sequence: i64, previous: &[u8]) {
        self.sequence = sequence + 1;
        self.previous_hash = hex::encode(previous);
        self.hash = hex::encode(self.compute_hash(previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            id: "e1".into(),
            scope: "o".into(),
            root: "o".into(),
            sequence: 0,
            occurred_at_us: 1,
            ingested_at_us: 2,
            actor_kind: 1,
            actor_id: "u".into(),
            actor_name: "Ada".into(),
            action: "project.created".into(),
            source: "organization".into(),
            targets: "[]".into(),
            outcome: 1,
            client_address: String::new(),
            user_agent: String::new(),
            request_id: String::new(),
            trace_id: String::new(),
            changes: "[]".into(),
            metadata: "{}".into(),
            metadata_truncated: false,
            previous_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let mut a = record();
        a.seal(0, &GENESIS);
        let mut b = record();
        b.actor_name = "Eve".into();
        b.seal(0, &GENESIS);
        assert_ne!(a.hash, b.hash);
        let mut c = record();
        c.seal(0, &[1; 32]);
        assert_ne!(a.hash, c.hash);
        // Length prefixes: moving a byte between fields changes the hash.
        let mut d = record();
        d.actor_id = "uA".into();
        d.actor_name = "da".into();
        d.seal(0, &GENESIS);
        assert_ne!(a.hash, d.hash);
        // The ingest time is not part of the chain.
        let mut e = record();
        e.ingested_at_us = 99;
        e.seal(0, &GENESIS);
        assert_eq!(a.hash, e.hash);
    }

    #[test]
    fn oversized_metadata_is_cut_with_a_marker() {
        let pool = DescriptorPool::decode(tenantry_proto::FILE_DESCRIPTOR_SET).unwrap();
        let payload = events::OrganizationUpdated {
            organization_id: "o".into(),
            display_name: "x".repeat(40_000),
            slug: "acme".into(),
            ..Default::default()
        };
        let event = events::Event {
            id: "e".into(),
            r#type: "organization.updated".into(),
            payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
            ..Default::default()
        };
        let (text, cut) = metadata(&pool, &event, 16 * 1024);
        assert!(cut);
        assert!(text.len() <= 16 * 1024);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["_truncated"], true);
        assert_eq!(value["slug"], "acme");
        assert!(value.get("displayName").is_none());
        let (small, cut) = metadata(
            &pool,
            &events::Event {
                payload: Some(
                    prost_types::Any::from_msg(&events::OrganizationPurged {
                        organization_id: "o".into(),
                    })
                    .unwrap(),
                ),
                ..event
            },
            16 * 1024,
        );
        assert!(!cut);
        assert_eq!(small, r#"{"organizationId":"o"}"#);
    }
}
