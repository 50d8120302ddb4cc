//! What a handler needs to know about the request behind a change: who made
//! it (the [`Actor`](events::Actor) of its events) and where it came from (the
//! [`RequestContext`](events::RequestContext) audit records).

use tenantry_proto::tenantry::events::v1 as events;

use crate::auth::{BearerToken, Principal, PrincipalKind};
use crate::error::{Code, Error, Result};

/// The longest header value copied into an event; longer ones are cut.
const MAX_HEADER_CHARS: usize = 512;

/// Where a request came from: client address, user agent, request id and the
/// current trace.
pub fn request_context<T>(request: &tonic::Request<T>) -> events::RequestContext {
    let header = |name: &str| {
        request
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(MAX_HEADER_CHARS)
            .collect::<String>()
    };
    events::RequestContext {
        request_id: header("x-request-id"),
        trace_id: crate::telemetry::current_trace_id().unwrap_or_default(),
        client_address: crate::net::of_request(request)
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        user_agent: header("user-agent"),
    }
}

/// The actor of events caused by `principal`. The display name is left to
/// the audit service, which knows the principals' names.
pub fn actor(principal: &Principal) -> events::Actor {
    let kind = match principal.kind {
        PrincipalKind::User => events::actor::Kind::User,
        PrincipalKind::ApiKey => events::actor::Kind::ApiKey,
        PrincipalKind::ServiceAccount if principal.internal_service().is_some() => {
            events::actor::Kind::System
        }
        PrincipalKind::ServiceAccount => events::actor::Kind::ServiceAccount,
    };
    events::Actor {
        kind: kind as i32,
        id: principal.id.clone(),
        display_name: principal.claims.name.clone().unwrap_or_default(),
    }
}

/// A request to another service made on the caller's behalf: it carries the
/// caller's own bearer token (when there is one), the current trace and the
/// caller's consistency token.
pub fn on_behalf<T>(bearer: Option<&BearerToken>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = bearer
        && let Ok(value) = format!("Bearer {}", token.0).parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    crate::telemetry::inject_metadata(request.metadata_mut());
    // What the caller wrote (or read) so far must hold at the next service.
    crate::consistency::inject(request.metadata_mut());
    request
}

/// The etag of a row at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Checks a client's etag: empty skips the check, anything but the current
/// etag is ABORTED (with the current one in ErrorInfo).
pub fn check_etag(given: &str, version: i64) -> Result<()> {
    if given.is_empty() || given == etag(version) {
        Ok(())
    } else {
        Err(Error::new(
            Code::Aborted,
            "ETAG_MISMATCH",
            "the object changed since it was read; read it again and retry",
        )
        .with_metadata("current_etag", etag(version)))
    }
}

/// A request id: empty (not idempotent) or 1 to 128 characters of ASCII
/// letters, digits and `-_.:`. A UUID is what clients usually send.
pub fn request_id(request_id: &str) -> Result<()> {
    let ok = request_id.len() <= 128
        && request_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field(
            "request_id",
            "must be at most 128 characters of letters, digits and `-_.:`",
        ))
    }
}

/// The paths of an update mask, each one of `allowed`; empty, unknown or
/// duplicate paths are INVALID_ARGUMENT.
pub fn update_mask<'a>(
    mask: Option<&'a prost_types::FieldMask>,
    allowed: &[&str],
) -> Result<Vec<&'a str>> {
    let paths: Vec<&str> = mask
        .map(|m| m.paths.iter().map(String::as_str).collect())
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid_field(
            "update_mask",
            "must name at least one field",
        ));
    }
    for (i, path) in paths.iter().enumerate() {
        if !allowed.contains(path) {
            return Err(Error::invalid_field(
                format!("update_mask.paths[{i}]"),
                format!(
                    "`{path}` cannot be updated; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
        if paths[..i].contains(path) {
            return Err(Error::invalid_field(
                format!("update_mask.paths[{i}]"),
                format!("`{path}` is named twice"),
            ));
        }
    }
    Ok(paths)
}

/// A service's record of idempotent creates: which resource a caller's
/// `request_id` for a method created, in `table` (`caller, method,
/// request_id, resource_id, created_at_us`, keyed by the first three), so
/// a replay answers the first result.
#[derive(Debug, Clone, Copy)]
pub struct Requests {
    table: &'static str,
}

impl Requests {
    pub const fn new(table: &'static str) -> Requests {
        Requests { table }
    }

    /// The resource a request id already created, if any: in a write's
    /// transaction, or straight from the pool for a look before one.
    pub async fn replayed<'e, E>(
        &self,
        executor: E,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        use sqlx::Row as _;
        if request_id.is_empty() {
            return Ok(None);
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT resource_id FROM {} WHERE caller = $1 AND method = $2 AND request_id = $3",
            self.table
        )))
        .bind(caller)
        .bind(method)
        .bind(request_id)
        .fetch_optional(executor)
        .await?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(crate::error::db_error)
    }

    /// Records that a request id created `resource_id`.
    pub async fn remember(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        caller: &str,
        method: &str,
        request_id: &str,
        resource_id: &str,
    ) -> Result<()> {
        if request_id.is_empty() {
            return Ok(());
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (caller, method, request_id, resource_id, created_at_us) VALUES ($1, $2, $3, $4, $5)",
            self.table
        )))
        .bind(caller)
        .bind(method)
        .bind(request_id)
        .bind(resource_id)
        .bind(crate::db::now_micros())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
