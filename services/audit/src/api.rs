//! The AuditService: reading the log. Who may read: `audit.read` on the
//! organization (owners and admins; custom roles may carry it); platform
//! administrators across organizations (`organizations/-`) and the instance
//! log (`organizations/instance`), every such read itself audited.

use std::pin::Pin;

use prost::Message as _;
use serde::{Deserialize, Serialize};
use tenantry_kit::access::Caller;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::permission::Permission;
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::audit::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::convert::checkpoint_view;
use crate::names::{AuditCheckpointName, AuditEventName, Parent};
use crate::record::{AuditRecord, INSTANCE};
use crate::store::{self, Cursor, Filter};
use crate::{Core, NAME};

/// The most bytes of one export chunk.
const CHUNK: usize = 1024 * 1024;
/// How many events an export reads at a time.
const EXPORT_BATCH: i64 = 500;

fn text_filter(field: &str, value: &str) -> Result<Option<String>> {
    if value.len() > 255 {
        return Err(Error::invalid_field(
            format!("filter.{field}"),
            "must be at most 255 characters",
        ));
    }
    Ok((!value.is_empty()).then(|| value.to_string()))
}

fn micros(time: &prost_types::Timestamp) -> i64 {
    time.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(time.nanos / 1000))
}

/// The storage filter of a request's filter, or INVALID_ARGUMENT.
fn filter(given: Option<&pb::AuditEventFilter>) -> Result<Filter> {
    let Some(f) = given else {
        return Ok(Filter::default());
    };
    let filter = Filter {
        actor_id: text_filter("actor_id", &f.actor_id)?,
        actor_kind: (f.actor_kind != 0).then_some(f.actor_kind),
        action: text_filter("action", &f.action)?,
        action_prefix: text_filter("action_prefix", &f.action_prefix)?,
        target_type: text_filter("target_type", &f.target_type)?,
        target_id: text_filter("target_id", &f.target_id)?,
        start_us: f.start_time.as_ref().map(micros),
        end_us: f.end_time.as_ref().map(micros),
        outcome: (f.outcome != 0).then_some(f.outcome),
        request_id: text_filter("request_id", &f.request_id)?,
    };
    if pb::actor::Kind::try_from(f.actor_kind).is_err() {
        return Err(Error::invalid_field(
            "filter.actor_kind",
            "is not an actor kind",
        ));
    }
    if pb::Outcome::try_from(f.outcome).is_err() {
        return Err(Error::invalid_field("filter.outcome", "is not an outcome"));
    }
    if let (Some(start), Some(end)) = (filter.start_us, filter.end_us)
        && start > end
    {
        return Err(Error::invalid_field(
            "filter.end_time",
            "must not be before start_time",
        ));
    }
    Ok(filter)
}

/// A listing's position, in its page token.
#[derive(Debug, Serialize, Deserialize)]
enum Position {
    Sequence(i64),
    Time(i64, String),
}

/// Reads `parent`'s events in the tenant scope they need: one chain's was
/// entered when the read was authorized ([`Core::authorize_read`]); a
/// platform administrator's read across organizations sees every tenant.
async fn in_scope<F: std::future::Future>(parent: &Parent, read: F) -> F::Output {
    match parent {
        Parent::Everywhere => tenancy::system(read).await,
        Parent::Organization(_) | Parent::Instance => read.await,
    }
}

impl Core {
    /// A page of `parent`'s events that pass `filter`, from `cursor`, read
    /// in `parent`'s tenant scope.
    async fn events_page(
        &self,
        parent: &Parent,
        filter: &Filter,
        cursor: &Cursor,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let read = store::page(self.db.pool(), parent.scope(), filter, cursor, limit);
        in_scope(parent, read).await
    }

    /// Succeeds when the caller may read `parent`'s events, answering
    /// whether only a platform administrator's privilege allowed it (such
    /// reads are themselves audited). One chain's read enters its tenant
    /// scope (see `tenantry_kit::tenancy`): on Postgres its queries then
    /// see that chain and no other.
    async fn authorize_read(&self, caller: &Caller, parent: &Parent) -> Result<bool> {
        let privileged = self.authorize_chain_read(caller, parent).await?;
        if let Some(chain) = parent.scope() {
            tenancy::enter(chain);
        }
        Ok(privileged)
    }

    async fn authorize_chain_read(&self, caller: &Caller, parent: &Parent) -> Result<bool> {
        if caller.is_internal() {
            return Ok(false);
        }
        let admin = || async {
            Ok::<bool, Error>(
                caller.is_user()
                    && store::PLATFORM_ADMINS
                        .contains(self.db.pool(), caller.id())
                        .await?,
            )
        };
        match parent {
            Parent::Organization(id) => {
                let answers = self
                    .checker
                    .check_all(
                        caller,
                        &[
                            (("organization", id), Permission::AUDIT_READ),
                            (("organization", id), Permission::ORGANIZATION_READ),
                        ],
                    )
                    .await?;
                match (answers[0], answers[1]) {
                    (true, _) => Ok(false),
                    _ if admin().await? => Ok(true),
                    (false, true) => {
                        Err(Error::permission_denied(Permission::AUDIT_READ).with_domain(NAME))
                    }
                    (false, false) => Err(Error::not_found("organization").with_domain(NAME)),
                }
            }
            Parent::Everywhere | Parent::Instance => {
                if admin().await? {
                    Ok(true)
                } else {
                    Err(Error::permission_denied("platform.admin").with_domain(NAME))
                }
            }
        }
    }

    /// Records a platform administrator's read beyond one organization.
    async fn audit_read(
        &self,
        caller: &Caller,
        parent: &Parent,
        method: &str,
        filter: &Filter,
        count: usize,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let event = tenantry_kit::outbox::NewEvent::new(
            "audit_chain",
            parent.key().to_string(),
            caller.actor(),
            &events::AuditEventsReadAcrossOrganizations {
                method: method.to_string(),
                filter: format!("{filter:?}"),
                result_count: count as i64,
            },
        )
        .with_request(caller.request.clone());
        let written = self.outbox.append(&mut tx, event).await?;
        tx.commit().await?;
        self.outbox.committed(&[written]).await;
        Ok(())
    }

    /// An event in the JSON form of `AuditEvent`.
    fn json_line(&self, record: &AuditRecord) -> String {
        let bytes = record.to_pb().encode_to_vec();
        self.descriptors
            .get_message_by_name("tenantry.audit.v1.AuditEvent")
            .and_then(|d| prost_reflect::DynamicMessage::decode(d, bytes.as_slice()).ok())
            .and_then(|m| serde_json::to_string(&m).ok())
            .unwrap_or_default()
    }
}

const CSV_HEADER: &str = "id,organization,sequence,occurred_at,actor_kind,actor_id,actor_name,action,source,outcome,client_address,user_agent,request_id,trace_id,targets,changes,metadata,metadata_truncated,hash\n";

fn csv_cell(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn csv_line(r: &AuditRecord) -> String {
    let occurred = chrono::DateTime::from_timestamp_micros(r.occurred_at_us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let kind = pb::actor::Kind::try_from(r.actor_kind)
        .unwrap_or_default()
        .as_str_name();
    let outcome = pb::Outcome::try_from(r.outcome)
        .unwrap_or_default()
        .as_str_name();
    let cells = [
        r.id.as_str(),
        r.scope.as_str(),
        &r.sequence.to_string(),
        &occurred,
        kind,
        &r.actor_id,
        &r.actor_name,
        &r.action,
        &r.source,
        outcome,
        &r.client_address,
        &r.user_agent,
        &r.request_id,
        &r.trace_id,
        &r.targets,
        &r.changes,
        &r.metadata,
        if r.metadata_truncated {
            "true"
        } else {
            "false"
        },
        &r.hash,
    ]
    .map(csv_cell);
    format!("{}\n", cells.join(","))
}

/// The `AuditService` handler.
#[derive(Debug, Clone)]
pub struct AuditApi(pub Core);

type ExportStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::ExportAuditEventsResponse, Status>> + Send>>;

impl AuditApi {
    async fn list(
        &self,
        caller: Caller,
        request: pb::ListAuditEventsRequest,
    ) -> Result<pb::ListAuditEventsResponse> {
        let core = &self.0;
        let parent = Parent::parse("parent", &request.parent)?;
        let filter = filter(request.filter.as_ref())?;
        let size = tenantry_kit::page_token::page_size(request.page_size, 100, 1000)?;
        let query = format!("ListAuditEvents|{}|{filter:?}", request.parent);
        let position: Option<Position> = core
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?;
        let privileged = core.authorize_read(&caller, &parent).await?;
        let cursor = match (parent.scope(), position) {
            (Some(_), Some(Position::Sequence(s))) => Cursor::Before(s),
            (None, Some(Position::Time(t, id))) => Cursor::BeforeTime(t, id),
            (Some(_), None) => Cursor::Before(i64::MAX),
            (None, None) => Cursor::BeforeTime(i64::MAX, String::new()),
            _ => {
                return Err(Error::invalid_field(
                    "page_token",
                    "is not a page token of this query",
                ));
            }
        };
        let mut rows = core
            .events_page(&parent, &filter, &cursor, i64::from(size) + 1)
            .await?;
        let next_page_token = if rows.len() > size as usize {
            rows.truncate(size as usize);
            let last = rows.last().expect("a full page");
            let position = match parent.scope() {
                Some(_) => Position::Sequence(last.sequence),
                None => Position::Time(last.occurred_at_us, last.id.clone()),
            };
            core.page_tokens.encode(query.as_bytes(), &position)
        } else {
            String::new()
        };
        if privileged {
            core.audit_read(&caller, &parent, "ListAuditEvents", &filter, rows.len())
                .await?;
        }
        Ok(pb::ListAuditEventsResponse {
            audit_events: rows.iter().map(AuditRecord::to_pb).collect(),
            next_page_token,
        })
    }

    async fn get(
        &self,
        caller: Caller,
        request: pb::GetAuditEventRequest,
    ) -> Result<pb::AuditEvent> {
        let core = &self.0;
        let AuditEventName { parent, id } = AuditEventName::parse("name", &request.name)?;
        let privileged = core.authorize_read(&caller, &parent).await?;
        let record = in_scope(&parent, store::event(core.db.pool(), parent.scope(), &id))
            .await?
            .ok_or_else(|| Error::not_found("audit event").with_domain(NAME))?;
        if privileged {
            core.audit_read(&caller, &parent, "GetAuditEvent", &Filter::default(), 1)
                .await?;
        }
        Ok(record.to_pb())
    }

    async fn export(
        &self,
        caller: Caller,
        request: pb::ExportAuditEventsRequest,
    ) -> Result<ExportStream> {
        let core = self.0.clone();
        let parent = Parent::parse("parent", &request.parent)?;
        let filter = filter(request.filter.as_ref())?;
        let format = pb::ExportFormat::try_from(request.format)
            .map_err(|_| Error::invalid_field("format", "is not an export format"))?;
        core.authorize_read(&caller, &parent).await?;
        let csv = format == pb::ExportFormat::Csv;
        let content_type = if csv { "text/csv" } else { "application/jsonl" };
        // A small channel: the reader waits for the client, so memory stays
        // bounded by a few chunks whatever the range.
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        tokio::spawn(tenancy::carried(async move {
            let send = |data: Vec<u8>, count: i64, last: bool| pb::ExportAuditEventsResponse {
                data,
                content_type: content_type.to_string(),
                event_count: count,
                last,
            };
            let mut cursor = match parent.scope() {
                Some(_) => Cursor::After(0),
                None => Cursor::AfterTime(i64::MIN, String::new()),
            };
            let mut chunk: Vec<u8> = if csv {
                CSV_HEADER.as_bytes().to_vec()
            } else {
                Vec::new()
            };
            let (mut in_chunk, mut total) = (0i64, 0i64);
            loop {
                let batch = match core
                    .events_page(&parent, &filter, &cursor, EXPORT_BATCH)
                    .await
                {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender.send(Err(error.into_status())).await;
                        return;
                    }
                };
                let Some(last) = batch.last() else { break };
                cursor = match parent.scope() {
                    Some(_) => Cursor::After(last.sequence),
                    None => Cursor::AfterTime(last.occurred_at_us, last.id.clone()),
                };
                for record in &batch {
                    let line = if csv {
                        csv_line(record)
                    } else {
                        format!("{}\n", core.json_line(record))
                    };
                    if !chunk.is_empty() && chunk.len() + line.len() > CHUNK {
                        if sender
                            .send(Ok(send(std::mem::take(&mut chunk), in_chunk, false)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        in_chunk = 0;
                    }
                    chunk.extend_from_slice(line.as_bytes());
                    in_chunk += 1;
                    total += 1;
                }
            }
            let mut recorded = core
                .record_export(&caller, &parent, csv, &filter, total)
                .await;
            // An export across organizations is a read across them too.
            if recorded.is_ok() && parent == Parent::Everywhere {
                recorded = core
                    .audit_read(
                        &caller,
                        &parent,
                        "ExportAuditEvents",
                        &filter,
                        total as usize,
                    )
                    .await;
            }
            match recorded {
                Ok(()) => {
                    let _ = sender.send(Ok(send(chunk, in_chunk, true))).await;
                }
                Err(error) => {
                    let _ = sender.send(Err(error.into_status())).await;
                }
            }
        }));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }

    async fn verify(
        &self,
        caller: Caller,
        request: pb::VerifyChainRequest,
    ) -> Result<pb::VerifyChainResponse> {
        let core = &self.0;
        let parent = Parent::parse("organization", &request.organization)?;
        if parent == Parent::Everywhere {
            return Err(Error::invalid_field(
                "organization",
                "must name one organization",
            ));
        }
        if request.start_sequence < 0 || request.end_sequence < 0 {
            return Err(Error::invalid_field(
                "start_sequence",
                "must not be negative",
            ));
        }
        if request.end_sequence != 0 && request.end_sequence < request.start_sequence {
            return Err(Error::invalid_field(
                "end_sequence",
                "must not be below start_sequence",
            ));
        }
        core.authorize_read(&caller, &parent).await?;
        core.verify(
            parent.scope().unwrap_or(INSTANCE),
            request.start_sequence,
            request.end_sequence,
        )
        .await
    }

    async fn checkpoints(
        &self,
        caller: Caller,
        request: pb::ListAuditCheckpointsRequest,
    ) -> Result<pb::ListAuditCheckpointsResponse> {
        let core = &self.0;
        let parent = Parent::parse("parent", &request.parent)?;
        let Some(scope) = parent.scope() else {
            return Err(Error::invalid_field("parent", "must name one organization"));
        };
        let size = tenantry_kit::page_token::page_size(request.page_size, 50, 100)?;
        let query = format!("ListAuditCheckpoints|{}", request.parent);
        let before: Option<(i64, String)> = core
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?;
        core.authorize_read(&caller, &parent).await?;
        let before = before.unwrap_or((i64::MAX, String::new()));
        let before = if before.1.is_empty() {
            (before.0, "~".to_string())
        } else {
            before
        };
        let mut rows = store::checkpoints(
            core.db.pool(),
            scope,
            (before.0, &before.1),
            i64::from(size) + 1,
        )
        .await?;
        let next_page_token = if rows.len() > size as usize {
            rows.truncate(size as usize);
            let last = rows.last().expect("a full page");
            core.page_tokens
                .encode(query.as_bytes(), &(last.sequence, last.id.clone()))
        } else {
            String::new()
        };
        Ok(pb::ListAuditCheckpointsResponse {
            audit_checkpoints: rows.iter().map(checkpoint_view).collect(),
            next_page_token,
        })
    }

    async fn checkpoint(
        &self,
        caller: Caller,
        request: pb::GetAuditCheckpointRequest,
    ) -> Result<pb::AuditCheckpoint> {
        let core = &self.0;
        let name = AuditCheckpointName::parse("name", &request.name)?;
        core.authorize_read(&caller, &name.parent).await?;
        let row = store::checkpoint(core.db.pool(), name.scope(), &name.id)
            .await?
            .ok_or_else(|| Error::not_found("audit checkpoint").with_domain(NAME))?;
        Ok(checkpoint_view(&row))
    }
}

impl Core {
    /// Records an export as an `audit.events.exported` event.
    async fn record_export(
        &self,
        caller: &Caller,
        parent: &Parent,
        csv: bool,
        filter: &Filter,
        count: i64,
    ) -> Result<()> {
        let organization = parent.key().to_string();
        let mut event = tenantry_kit::outbox::NewEvent::new(
            "audit_chain",
            organization.clone(),
            caller.actor(),
            &events::AuditEventsExported {
                organization_id: organization.clone(),
                format: if csv { "csv" } else { "jsonl" }.to_string(),
                filter: format!("{filter:?}"),
                event_count: count,
            },
        )
        .with_request(caller.request.clone());
        if let Parent::Organization(id) = parent {
            let root = store::page(
                self.db.pool(),
                Some(id),
                &Filter::default(),
                &Cursor::Before(i64::MAX),
                1,
            )
            .await?
            .pop()
            .map(|r| r.root)
            .unwrap_or_default();
            event = event.in_organization(id, &root);
        }
        let mut tx = self.db.begin().await?;
        let written = self.outbox.append(&mut tx, event).await?;
        tx.commit().await?;
        self.outbox.committed(&[written]).await;
        Ok(())
    }
}

fn caller<T>(request: &Request<T>) -> Result<Caller> {
    Caller::from_request(request)
}

/// Answers a request with `handler`, given the request's caller and its
/// message, when the handler's answer is the whole response message.
async fn respond<R, T, F>(
    request: Request<R>,
    handler: impl FnOnce(Caller, R) -> F,
) -> std::result::Result<Response<T>, Status>
where
    F: std::future::Future<Output = Result<T>>,
{
    let caller = caller(&request)?;
    Ok(Response::new(handler(caller, request.into_inner()).await?))
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> std::result::Result<Response<pb::ListAuditEventsResponse>, Status> {
        respond(request, |caller, r| self.list(caller, r)).await
    }

    async fn get_audit_event(
        &self,
        request: Request<pb::GetAuditEventRequest>,
    ) -> std::result::Result<Response<pb::GetAuditEventResponse>, Status> {
        let caller = caller(&request)?;
        let audit_event = Some(self.get(caller, request.into_inner()).await?);
        Ok(Response::new(pb::GetAuditEventResponse { audit_event }))
    }

    async fn export_audit_events(
        &self,
        request: Request<pb::ExportAuditEventsRequest>,
    ) -> std::result::Result<
        Response<tonic::codegen::BoxStream<pb::ExportAuditEventsResponse>>,
        Status,
    > {
        respond(request, |caller, r| self.export(caller, r)).await
    }

    async fn verify_chain(
        &self,
        request: Request<pb::VerifyChainRequest>,
    ) -> std::result::Result<Response<pb::VerifyChainResponse>, Status> {
        respond(request, |caller, r| self.verify(caller, r)).await
    }

    async fn list_audit_checkpoints(
        &self,
        request: Request<pb::ListAuditCheckpointsRequest>,
    ) -> std::result::Result<Response<pb::ListAuditCheckpointsResponse>, Status> {
        respond(request, |caller, r| self.checkpoints(caller, r)).await
    }

    async fn get_audit_checkpoint(
        &self,
        request: Request<pb::GetAuditCheckpointRequest>,
    ) -> std::result::Result<Response<pb::GetAuditCheckpointResponse>, Status> {
        let caller = caller(&request)?;
        let audit_checkpoint = Some(self.checkpoint(caller, request.into_inner()).await?);
        Ok(Response::new(pb::GetAuditCheckpointResponse {
            audit_checkpoint,
        }))
    }
}
