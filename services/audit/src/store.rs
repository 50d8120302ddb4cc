//! The audit service's rows and the SQL that reads and writes them.

use sqlx::{Any, Executor, Transaction};
use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use crate::record::{AuditRecord, GENESIS};

pub type Tx = Transaction<'static, Any>;

/// The columns of an event row, as [`AuditRecord`] reads them.
macro_rules! record_columns {
    () => {
        "id, scope, root_id, sequence, occurred_at_us, ingested_at_us, actor_kind, actor_id, \
         actor_name, action, source, targets, outcome, client_address, user_agent, request_id, \
         trace_id, changes, metadata, metadata_truncated, previous_hash, hash"
    };
}

/// [`record_columns`] of the events table aliased `e`, for a join.
macro_rules! e_record_columns {
    () => {
        "e.id, e.scope, e.root_id, e.sequence, e.occurred_at_us, e.ingested_at_us, e.actor_kind, \
         e.actor_id, e.actor_name, e.action, e.source, e.targets, e.outcome, e.client_address, \
         e.user_agent, e.request_id, e.trace_id, e.changes, e.metadata, e.metadata_truncated, \
         e.previous_hash, e.hash"
    };
}

/// The head (sequence, hash) of a chain, locked for this transaction: the
/// row's update makes concurrent appenders of the same chain wait.
pub async fn lock_head(tx: &mut Tx, scope: &str) -> Result<(i64, Vec<u8>)> {
    sqlx::query("INSERT INTO audit_heads (scope, sequence, hash) VALUES ($1, 0, $2) ON CONFLICT (scope) DO NOTHING")
        .bind(scope)
        .bind(hex::encode(GENESIS))
        .execute(&mut **tx)
        .await?;
    let (sequence, hash): (i64, String) = sqlx::query_as(
        "UPDATE audit_heads SET sequence = sequence WHERE scope = $1 RETURNING sequence, hash",
    )
    .bind(scope)
    .fetch_one(&mut **tx)
    .await?;
    Ok((
        sequence,
        hex::decode(hash).unwrap_or_else(|_| GENESIS.to_vec()),
    ))
}

/// The root of an organization's tree, as its latest event in the log
/// says; `None` when the log holds none of its events.
pub async fn root_of(tx: &mut Tx, organization: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT root_id FROM audit_events WHERE scope = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(organization)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Appends a sealed record: the row, its targets, the new head.
pub async fn append(tx: &mut Tx, r: &AuditRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO audit_events (",
        record_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22)"
    ))
    .bind(&r.id)
    .bind(&r.scope)
    .bind(&r.root)
    .bind(r.sequence)
    .bind(r.occurred_at_us)
    .bind(r.ingested_at_us)
    .bind(i64::from(r.actor_kind))
    .bind(&r.actor_id)
    .bind(&r.actor_name)
    .bind(&r.action)
    .bind(&r.source)
    .bind(&r.targets)
    .bind(i64::from(r.outcome))
    .bind(&r.client_address)
    .bind(&r.user_agent)
    .bind(&r.request_id)
    .bind(&r.trace_id)
    .bind(&r.changes)
    .bind(&r.metadata)
    .bind(r.metadata_truncated as i64)
    .bind(&r.previous_hash)
    .bind(&r.hash)
    .execute(&mut **tx)
    .await?;
    for target in r.target_list() {
        sqlx::query(
            "INSERT INTO audit_targets (event_id, scope, sequence, target_type, target_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (event_id, target_type, target_id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(&r.scope)
        .bind(r.sequence)
        .bind(&target.kind)
        .bind(&target.id)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE audit_heads SET sequence = $2, hash = $3 WHERE scope = $1")
        .bind(&r.scope)
        .bind(r.sequence)
        .bind(&r.hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What a listing selects. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub actor_id: Option<String>,
    pub actor_kind: Option<i32>,
    pub action: Option<String>,
    pub action_prefix: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub outcome: Option<i32>,
    pub request_id: Option<String>,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    /// Newest first in one chain: sequences below this one.
    Before(i64),
    /// Newest first across chains: (occurred, id) below this pair.
    BeforeTime(i64, String),
    /// Oldest first in one chain (exports): sequences above this one.
    After(i64),
    /// Oldest first across chains: (occurred, id) above this pair.
    AfterTime(i64, String),
}

enum Value {
    Text(String),
    Int(i64),
}

/// A page of events of `scope` (every scope when `None`) matching
/// `filter`, from `cursor`.
pub async fn page<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: Option<&str>,
    filter: &Filter,
    cursor: &Cursor,
    limit: i64,
) -> Result<Vec<AuditRecord>> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let bind = |values: &mut Vec<Value>, value: Value| {
        values.push(value);
        format!("${}", values.len())
    };
    if let Some(scope) = scope {
        let p = bind(&mut values, Value::Text(scope.to_string()));
        clauses.push(format!("e.scope = {p}"));
    }
    if let Some(v) = &filter.actor_id {
        let p = bind(&mut values, Value::Text(v.clone()));
        clauses.push(format!("e.actor_id = {p}"));
    }
    if let Some(v) = filter.actor_kind {
        let p = bind(&mut values, Value::Int(i64::from(v)));
        clauses.push(format!("e.actor_kind = {p}"));
    }
    if let Some(v) = &filter.action {
        let p = bind(&mut values, Value::Text(v.clone()));
        clauses.push(format!("e.action = {p}"));
    } else if let Some(v) = &filter.action_prefix {
        let escaped = v
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let p = bind(&mut values, Value::Text(format!("{escaped}%")));
        clauses.push(format!("e.action LIKE {p} ESCAPE '\\'"));
    }
    // With one chain and a target id, the page is driven from the targets'
    // index (scope, target_id, sequence): a rare target is found without
    // walking the chain.
    let by_target = scope.is_some() && filter.target_id.is_some();
    let sequence = if by_target {
        "t.sequence"
    } else {
        "e.sequence"
    };
    if by_target {
        let s = bind(
            &mut values,
            Value::Text(scope.unwrap_or_default().to_string()),
        );
        let p = bind(
            &mut values,
            Value::Text(filter.target_id.clone().unwrap_or_default()),
        );
        clauses.push(format!("t.scope = {s} AND t.target_id = {p}"));
        if let Some(v) = &filter.target_type {
            let p = bind(&mut values, Value::Text(v.clone()));
            clauses.push(format!("t.target_type = {p}"));
        }
    } else if filter.target_type.is_some() || filter.target_id.is_some() {
        let mut inner = vec!["t.event_id = e.id".to_string()];
        if let Some(v) = &filter.target_type {
            let p = bind(&mut values, Value::Text(v.clone()));
            inner.push(format!("t.target_type = {p}"));
        }
        if let Some(v) = &filter.target_id {
            let p = bind(&mut values, Value::Text(v.clone()));
            inner.push(format!("t.target_id = {p}"));
        }
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM audit_targets t WHERE {})",
            inner.join(" AND ")
        ));
    }
    if let Some(v) = filter.start_us {
        let p = bind(&mut values, Value::Int(v));
        clauses.push(format!("e.occurred_at_us >= {p}"));
    }
    if let Some(v) = filter.end_us {
        let p = bind(&mut values, Value::Int(v));
        clauses.push(format!("e.occurred_at_us < {p}"));
    }
    // A time range in one chain becomes a sequence range too, read from
    // the (scope, occurred_at_us, sequence) index, so a page of old events
    // does not walk every newer one.
    if let (Some(scope), Some(end)) = (scope, filter.end_us) {
        let s = bind(&mut values, Value::Text(scope.to_string()));
        let start = bind(&mut values, Value::Int(filter.start_us.unwrap_or(i64::MIN)));
        let end = bind(&mut values, Value::Int(end));
        let range = format!(
            "FROM audit_events r WHERE r.scope = {s} AND r.occurred_at_us >= {start} AND r.occurred_at_us < {end}"
        );
        // `+ 0` keeps the planner from answering MIN/MAX by walking the
        // (scope, sequence) index from one end: the range is read from the
        // time index instead.
        clauses.push(format!(
            "{sequence} <= (SELECT MAX(r.sequence + 0) {range})"
        ));
        if filter.start_us.is_some() {
            clauses.push(format!(
                "{sequence} >= (SELECT MIN(r.sequence + 0) {range})"
            ));
        }
    }
    if let Some(v) = filter.outcome {
        let p = bind(&mut values, Value::Int(i64::from(v)));
        clauses.push(format!("e.outcome = {p}"));
    }
    if let Some(v) = &filter.request_id {
        let p = bind(&mut values, Value::Text(v.clone()));
        clauses.push(format!("e.request_id = {p}"));
    }
    let order = match cursor {
        Cursor::Before(position) => {
            let p = bind(&mut values, Value::Int(*position));
            clauses.push(format!("{sequence} < {p}"));
            if by_target {
                "t.sequence DESC"
            } else {
                "e.sequence DESC"
            }
        }
        Cursor::After(position) => {
            let p = bind(&mut values, Value::Int(*position));
            clauses.push(format!("{sequence} > {p}"));
            if by_target {
                "t.sequence ASC"
            } else {
                "e.sequence ASC"
            }
        }
        Cursor::BeforeTime(time, id) => {
            let t = bind(&mut values, Value::Int(*time));
            let i = bind(&mut values, Value::Text(id.clone()));
            clauses.push(format!(
                "(e.occurred_at_us < {t} OR (e.occurred_at_us = {t} AND e.id < {i}))"
            ));
            "e.occurred_at_us DESC, e.id DESC"
        }
        Cursor::AfterTime(time, id) => {
            let t = bind(&mut values, Value::Int(*time));
            let i = bind(&mut values, Value::Text(id.clone()));
            clauses.push(format!(
                "(e.occurred_at_us > {t} OR (e.occurred_at_us = {t} AND e.id > {i}))"
            ));
            "e.occurred_at_us ASC, e.id ASC"
        }
    };
    let p = bind(&mut values, Value::Int(limit));
    let from = if by_target {
        "audit_targets t JOIN audit_events e ON e.id = t.event_id"
    } else {
        "audit_events e"
    };
    let sql = format!(
        concat!(
            "SELECT ",
            e_record_columns!(),
            " FROM {} WHERE {} ORDER BY {} LIMIT {}"
        ),
        from,
        clauses.join(" AND "),
        order,
        p
    );
    // Built from the fixed fragments above and placeholder numbers only;
    // every value is bound. One query per combination of filters keeps the
    // planner on the index each combination needs.
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for value in values {
        query = match value {
            Value::Text(text) => query.bind(text),
            Value::Int(int) => query.bind(int),
        };
    }
    Ok(query.fetch_all(e).await?)
}

/// One event by id, in `scope` (any scope when `None`).
pub async fn event<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: Option<&str>,
    id: &str,
) -> Result<Option<AuditRecord>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM audit_events WHERE id = $1 AND ($2 = '' OR scope = $2)"
    ))
    .bind(id)
    .bind(scope.unwrap_or_default())
    .fetch_optional(e)
    .await?)
}

/// The events of a chain from `first` to `last` sequence, at most `limit`.
pub async fn chain<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    first: i64,
    last: i64,
    limit: i64,
) -> Result<Vec<AuditRecord>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM audit_events WHERE scope = $1 AND sequence >= $2 AND sequence <= $3 \
         ORDER BY sequence LIMIT $4"
    ))
    .bind(scope)
    .bind(first)
    .bind(last)
    .bind(limit)
    .fetch_all(e)
    .await?)
}

/// A chain's head sequence and hash (0 and the genesis hash when empty).
pub async fn head<'e, E: Executor<'e, Database = Any>>(e: E, scope: &str) -> Result<(i64, String)> {
    let head = sqlx::query_as("SELECT sequence, hash FROM audit_heads WHERE scope = $1")
        .bind(scope)
        .fetch_optional(e)
        .await?;
    Ok(head.unwrap_or_else(|| (0, hex::encode(GENESIS))))
}

/// The oldest sequence still kept in a chain, if any.
pub async fn first_kept<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MIN(sequence) FROM audit_events WHERE scope = $1")
            .bind(scope)
            .fetch_one(e)
            .await?,
    )
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CheckpointRow {
    pub id: String,
    pub scope: String,
    pub sequence: i64,
    pub head_hash: String,
    pub created_at_us: i64,
    pub signed_payload: String,
    pub signature: String,
    pub key_id: String,
    pub public_key: String,
    #[sqlx(try_from = "Bit")]
    pub retention_cut: bool,
}

/// The columns of a checkpoint row.
macro_rules! checkpoint_columns {
    () => {
        "id, scope, sequence, head_hash, created_at_us, signed_payload, signature, key_id, \
         public_key, retention_cut"
    };
}

pub async fn insert_checkpoint(tx: &mut Tx, c: &CheckpointRow) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO audit_checkpoints (",
        checkpoint_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&c.id)
    .bind(&c.scope)
    .bind(c.sequence)
    .bind(&c.head_hash)
    .bind(c.created_at_us)
    .bind(&c.signed_payload)
    .bind(&c.signature)
    .bind(&c.key_id)
    .bind(&c.public_key)
    .bind(c.retention_cut as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A chain's checkpoints, newest first, below `before` sequence... by
/// (sequence, id) descending.
pub async fn checkpoints<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    before: (i64, &str),
    limit: i64,
) -> Result<Vec<CheckpointRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE scope = $1
           AND (sequence < $2 OR (sequence = $2 AND id < $3))
         ORDER BY sequence DESC, id DESC LIMIT $4"
    ))
    .bind(scope)
    .bind(before.0)
    .bind(before.1)
    .bind(limit)
    .fetch_all(e)
    .await?)
}

pub async fn checkpoint<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    id: &str,
) -> Result<Option<CheckpointRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE scope = $1 AND id = $2"
    ))
    .bind(scope)
    .bind(id)
    .fetch_optional(e)
    .await?)
}

/// The chains whose head is past their newest checkpoint: (scope, head
/// sequence, head hash).
pub async fn unchecked_heads<'e, E: Executor<'e, Database = Any>>(
    e: E,
    limit: i64,
) -> Result<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT h.scope, h.sequence, h.hash FROM audit_heads h
         WHERE h.sequence > COALESCE((SELECT MAX(c.sequence) FROM audit_checkpoints c WHERE c.scope = h.scope), 0)
         ORDER BY h.scope LIMIT $1",
    )
    .bind(limit)
    .fetch_all(e)
    .await?)
}

/// The newest retention-cut checkpoint of a chain, if events were purged.
pub async fn last_cut<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
) -> Result<Option<CheckpointRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE scope = $1 AND retention_cut = 1
         ORDER BY sequence DESC LIMIT 1"
    ))
    .bind(scope)
    .fetch_optional(e)
    .await?)
}

/// Audit's copy of the platform administrators.
pub const PLATFORM_ADMINS: tenantry_kit::admins::PlatformAdmins =
    tenantry_kit::admins::PlatformAdmins::new("audit_platform_admins");

/// Sets a tree's retention (None: keep forever).
pub async fn set_retention(tx: &mut Tx, root_id: &str, days: Option<i64>) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_retention (root_id, days) VALUES ($1, $2)
         ON CONFLICT (root_id) DO UPDATE SET days = excluded.days",
    )
    .bind(root_id)
    .bind(days)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every chain with a retention: (scope, days), by the scope's root.
pub async fn retained_scopes<'e, E: Executor<'e, Database = Any>>(
    e: E,
) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT h.scope, r.days FROM audit_heads h
         JOIN audit_events e ON e.scope = h.scope AND e.sequence = h.sequence
         JOIN audit_retention r ON r.root_id = e.root_id
         WHERE r.days IS NOT NULL",
    )
    .fetch_all(e)
    .await?)
}

/// The last sequence of a chain's prefix ingested before `cutoff_us`: the
/// events a purge at that time removes.
pub async fn purgeable_through<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    cutoff_us: i64,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT MAX(sequence) FROM audit_events WHERE scope = $1 AND ingested_at_us < $2
           AND sequence < COALESCE((SELECT MIN(sequence) FROM audit_events WHERE scope = $1 AND ingested_at_us >= $2), 9223372036854775807)",
    )
    .bind(scope)
    .bind(cutoff_us)
    .fetch_one(e)
    .await?)
}

/// Deletes a chain's events through `sequence`; returns how many.
pub async fn purge(tx: &mut Tx, scope: &str, sequence: i64) -> Result<i64> {
    sqlx::query("DELETE FROM audit_targets WHERE scope = $1 AND sequence <= $2")
        .bind(scope)
        .bind(sequence)
        .execute(&mut **tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM audit_events WHERE scope = $1 AND sequence <= $2")
        .bind(scope)
        .bind(sequence)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(deleted as i64)
}
