//! The organization's audit log: events with filters and paging, an
//! export of the filtered events (the audit service's own export, streamed
//! through as a download), and the hash chain's verification.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt as _;
use http::{StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::peer::PeerChannel;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::audit::v1 as audit;

use super::overview::no_organization;
use super::{Console, PAGE_SIZE, Shared, View};
use crate::calls::Failure;
use crate::pages::{failure, next_with, when};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/audit", get(events))
        .route("/console/audit/export", get(export))
        .route("/console/audit/verify", get(verify))
}

fn client(console: &Console) -> audit::audit_service_client::AuditServiceClient<PeerChannel> {
    audit::audit_service_client::AuditServiceClient::new(console.audit.clone())
}

/// The filters of the page, as the GET form sends them.
#[derive(Deserialize, Default)]
struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    outcome: String,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, to the end of that day (UTC).
    #[serde(default)]
    to: String,
    #[serde(default)]
    page_token: String,
    #[serde(default)]
    format: String,
}

impl Filters {
    /// The query pairs that keep the filters on a link.
    fn pairs(&self) -> [(&str, &str); 6] {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
    }

    /// The audit service's filter, or the fields that cannot be read.
    fn filter(&self) -> Result<audit::AuditEventFilter, Failure> {
        let mut fields = Vec::new();
        let mut day = |field: &str, text: &str, plus: i64| match text.trim() {
            "" => None,
            text => match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => Some(prost_types::Timestamp {
                    seconds: date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp()
                        + plus * 86_400,
                    nanos: 0,
                }),
                Err(_) => {
                    fields.push((field.to_string(), "must be a date like 2026-12-31".into()));
                    None
                }
            },
        };
        let start_time = day("from", &self.from, 0);
        // "To" a day includes that day.
        let end_time = day("to", &self.to, 1);
        let outcome = match self.outcome.as_str() {
            "" => audit::Outcome::Unspecified,
            "success" => audit::Outcome::Success,
            "failure" => audit::Outcome::Failure,
            "denied" => audit::Outcome::Denied,
            _ => {
                fields.push(("outcome".into(), "choose one of the offered results".into()));
                audit::Outcome::Unspecified
            }
        };
        if !fields.is_empty() {
            return Err(Failure {
                message: "The filters need a change.".into(),
                fields,
                ..Failure::default()
            });
        }
        let action = self.action.trim();
        // A trailing dot asks for every action under it.
        let (action, action_prefix) = match action.ends_with('.') {
            true => (String::new(), action.to_string()),
            false => (action.to_string(), String::new()),
        };
        // `type:id`, or an id of any type; resource names work too.
        let target = self.target.trim();
        let (target_type, target_id) = match target.split_once(':') {
            Some((kind, id)) => (kind.trim().to_string(), last_segment(id)),
            None => (String::new(), last_segment(target)),
        };
        Ok(audit::AuditEventFilter {
            actor_id: last_segment(&self.actor),
            action,
            action_prefix,
            target_type,
            target_id,
            start_time,
            end_time,
            outcome: outcome as i32,
            ..Default::default()
        })
    }
}

/// `users/abc` → `abc`: the audit log keeps bare ids.
fn last_segment(text: &str) -> String {
    text.trim()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The refusal of a user without `audit.read`, in words.
fn refused(console: &Console, view: &View) -> Response {
    let body = Ok(html! {
        p.error role="alert" { "You may not read this organization's audit log: it needs the "
            code { "audit.read" } " permission. Ask an owner if you need it." }
    });
    let mut answer = console.render(view, "Audit log", body);
    *answer.status_mut() = StatusCode::FORBIDDEN;
    answer
}

async fn events(console: Shared, view: View, Query(filters): Query<Filters>) -> Response {
    if !view.may(Permission::AUDIT_READ) {
        return refused(&console, &view);
    }
    let (body, bad) = match filters.filter() {
        Ok(filter) => (events_body(&console, &view, &filters, filter).await, false),
        Err(failure) => (Ok(html! { (filter_form(&filters, Some(&failure))) }), true),
    };
    let mut answer = console.render(&view, "Audit log", body);
    if bad {
        *answer.status_mut() = StatusCode::BAD_REQUEST;
    }
    answer
}

async fn events_body(
    console: &Console,
    view: &View,
    filters: &Filters,
    filter: audit::AuditEventFilter,
) -> Result<Markup, Failure> {
    let Some(organization) = view.organization() else {
        return Ok(no_organization());
    };
    let listed = client(console)
        .list_audit_events(view.request(audit::ListAuditEventsRequest {
            parent: organization.into(),
            page_size: PAGE_SIZE,
            page_token: filters.page_token.clone(),
            filter: Some(filter),
        }))
        .await;
    // A bad filter (a start after the end) is the service's refusal, shown
    // next to the filters.
    let (listed, error) = match listed {
        Ok(listed) => (listed.into_inner(), None),
        Err(status) if status.code() == tonic::Code::InvalidArgument => (
            audit::ListAuditEventsResponse::default(),
            Some(Failure::from(status)),
        ),
        Err(status) => return Err(status.into()),
    };
    let query = serde_urlencoded::to_string(filters.pairs()).unwrap_or_default();
    Ok(html! {
        (filter_form(filters, error.as_ref()))
        p.actions {
            a href={ "/console/audit/export?" (query) "&format=csv" } download { "Download CSV" }
            " · "
            a href={ "/console/audit/export?" (query) "&format=jsonl" } download { "Download JSON lines" }
            " · "
            a href="/console/audit/verify" { "Verify the chain" }
        }
        @if listed.audit_events.is_empty() {
            p.empty { "No events match. Widen the filters, or " a href="/console/audit" { "clear them" } "." }
        } @else {
            div.scroll { table {
                caption.small { "Newest first" }
                thead { tr { th { "Time" } th { "Actor" } th { "Action" } th { "Target" } th { "Result" } } }
                tbody { @for event in &listed.audit_events { (event_row(event)) } }
            } }
        }
        (next_with("/console/audit", &filters.pairs(), &listed.next_page_token))
    })
}

fn filter_form(filters: &Filters, error: Option<&Failure>) -> Markup {
    const OUTCOMES: &[(&str, &str)] = &[
        ("", "Any result"),
        ("success", "Succeeded"),
        ("failure", "Failed"),
        ("denied", "Denied"),
    ];
    html! {
        (failure(error))
        form.filters method="get" action="/console/audit" {
            div.field { label for="actor" { "Actor id" } input #actor name="actor" value=(filters.actor) placeholder="users/…"; }
            div.field { label for="action" { "Action" } input #action name="action" value=(filters.action) placeholder="project.created, or project."; }
            div.field { label for="target" { "Target" } input #target name="target" value=(filters.target) placeholder="project:id, or an id"; }
            div.field {
                label for="outcome" { "Result" }
                select #outcome name="outcome" {
                    @for (value, label) in OUTCOMES { option value=(value) selected[*value == filters.outcome] { (label) } }
                }
            }
            div.field { label for="from" { "From (UTC day)" } input #from type="date" name="from" value=(filters.from); }
            div.field { label for="to" { "To (UTC day)" } input #to type="date" name="to" value=(filters.to); }
            div.buttons {
                button type="submit" { "Filter" }
                a href="/console/audit" { "Clear filters" }
            }
        }
    }
}

fn event_row(event: &audit::AuditEvent) -> Markup {
    let actor = event.actor.clone().unwrap_or_default();
    let kind = match audit::actor::Kind::try_from(actor.kind) {
        Ok(audit::actor::Kind::User) => "user",
        Ok(audit::actor::Kind::ApiKey) => "API key",
        Ok(audit::actor::Kind::ServiceAccount) => "service account",
        Ok(audit::actor::Kind::System) => "system",
        _ => "unknown",
    };
    let result = match audit::Outcome::try_from(event.outcome) {
        Ok(audit::Outcome::Success) => "Succeeded",
        Ok(audit::Outcome::Failure) => "Failed",
        Ok(audit::Outcome::Denied) => "Denied",
        _ => "Unknown",
    };
    html! {
        tr {
            td { (when(event.occurred_at.as_ref())) }
            td {
                @if actor.display_name.is_empty() { (kind) } @else { (actor.display_name) }
                @if !actor.id.is_empty() {
                    br;
                    span.small { (kind) " " a href={ "/console/audit?" (query("actor", &actor.id)) } title="Only this actor's events" { code { (actor.id) } } }
                }
            }
            td { a href={ "/console/audit?" (query("action", &event.action)) } title="Only this action" { code { (event.action) } } }
            td {
                @for target in &event.targets {
                    div { (target.r#type) " " @if target.name.is_empty() { code { (target.id) } } @else { (target.name) " " span.small { code { (target.id) } } } }
                }
            }
            td { (result) }
        }
    }
}

/// A one-filter query.
fn query(name: &str, value: &str) -> String {
    serde_urlencoded::to_string([(name, value)]).unwrap_or_default()
}

/// The filtered events as a download: the audit service's export, streamed
/// through chunk by chunk (it reads in batches, so no size is too large).
async fn export(console: Shared, view: View, Query(filters): Query<Filters>) -> Response {
    if !view.may(Permission::AUDIT_READ) {
        return refused(&console, &view);
    }
    let Some(organization) = view.organization().map(str::to_string) else {
        return console.render(&view, "Audit log", Ok(no_organization()));
    };
    let filter = match filters.filter() {
        Ok(filter) => filter,
        Err(failure) => {
            let mut answer = console.render(
                &view,
                "Audit log",
                Ok(filter_form(&filters, Some(&failure))),
            );
            *answer.status_mut() = StatusCode::BAD_REQUEST;
            return answer;
        }
    };
    let (format, content_type, extension) = match filters.format.as_str() {
        "csv" => (audit::ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        _ => (audit::ExportFormat::Jsonl, "application/jsonl", "jsonl"),
    };
    let stream = client(&console)
        .export_audit_events(view.request(audit::ExportAuditEventsRequest {
            parent: organization.clone(),
            filter: Some(filter),
            format: format as i32,
        }))
        .await;
    let stream = match stream {
        Ok(stream) => stream.into_inner(),
        Err(status) => {
            let failure = Failure::from(status);
            let body = Ok(html! { (filter_form(&filters, Some(&failure))) });
            let mut answer = console.render(&view, "Audit log", body);
            *answer.status_mut() = failure.status();
            return answer;
        }
    };
    // A stream cut short ends the download with an error, so the browser
    // reports a failed download rather than a silently short file.
    let body = Body::from_stream(stream.map(|chunk| {
        chunk
            .map(|chunk| bytes::Bytes::from(chunk.data))
            .map_err(|status| std::io::Error::other(status.message().to_string()))
    }));
    let id = organization.rsplit('/').next().unwrap_or("organization");
    let disposition = format!("attachment; filename=\"audit-{id}.{extension}\"");
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// The chain's verification, from the oldest kept event to the head.
async fn verify(console: Shared, view: View) -> Response {
    if !view.may(Permission::AUDIT_READ) {
        return refused(&console, &view);
    }
    let body = verify_body(&console, &view).await;
    console.render(&view, "Audit chain", body)
}

async fn verify_body(console: &Console, view: &View) -> Result<Markup, Failure> {
    let Some(organization) = view.organization() else {
        return Ok(no_organization());
    };
    let verified = client(console)
        .verify_chain(view.request(audit::VerifyChainRequest {
            organization: organization.into(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let reason = match audit::verify_chain_response::Reason::try_from(verified.reason) {
        Ok(audit::verify_chain_response::Reason::HashMismatch) => {
            "the event was edited after it was stored"
        }
        Ok(audit::verify_chain_response::Reason::PreviousHashMismatch) => {
            "an event before it was removed, inserted or edited"
        }
        Ok(audit::verify_chain_response::Reason::SequenceGap) => "an event is missing",
        Ok(audit::verify_chain_response::Reason::CheckpointMismatch) => {
            "the chain does not match a signed checkpoint"
        }
        _ => "the reason is not known",
    };
    Ok(html! {
        @if verified.verified_count == 0 && verified.ok {
            p.empty role="status" { "No events to verify yet." }
        } @else if verified.ok {
            p.ok role="status" { "Chain verified up to event " (verified.end_sequence)
                " (" (verified.verified_count) " events, from event " (verified.start_sequence) ")." }
        } @else {
            p.error role="alert" { "Chain broken at event " (verified.broken_sequence) ": " (reason) "."
                @if !verified.broken_audit_event.is_empty() { " " code { (verified.broken_audit_event) } } }
        }
        p { a href="/console/audit" { "Back to the audit log" } }
    })
}
