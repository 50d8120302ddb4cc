//! Listings of events: a page of one chain or of every chain, by filter.

use sqlx::{Any, Executor};
use tenantry_kit::error::Result;

use crate::record::AuditRecord;

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
