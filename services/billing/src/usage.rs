//! Metering: `RecordUsage` adds metered usage (idempotent by key) at an
//! organization, counted up the tree in the billing period it happened in;
//! `GetUsage` reports any node's own and subtree usage with its limit.

use serde::{Deserialize, Serialize};
use tenantry_kit::access::Caller;
use tenantry_kit::auth::PrincipalKind;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::OrganizationName;
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::convert::{usage_record_name, usage_record_view};
use crate::error::Error as Refusal;
use crate::ledger::pool_scope;
use crate::metric::{self, Metric};
use crate::store::{self, UsageRecordRow};
use crate::{Core, micros, respond, timestamp};

/// The most one record may carry.
const MAX_QUANTITY: i64 = 1_000_000_000;
/// How far in the future a usage time may be (clock skew).
const FUTURE_SKEW_US: i64 = 5 * 60 * 1_000_000;

/// A page cursor of records: (usage time, id), newest first.
#[derive(Debug, Serialize, Deserialize)]
struct Before(i64, String);

/// The `UsageService` handler.
#[derive(Debug, Clone)]
pub struct UsageApi(pub Core);

impl UsageApi {
    async fn record(
        &self,
        caller: Caller,
        request: pb::RecordUsageRequest,
    ) -> Result<pb::RecordUsageResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        if !metric::is_metered(metric) {
            return Err(Refusal::MetricNotMetered {
                metric: metric.as_str_name(),
            }
            .into());
        }
        if !(1..=MAX_QUANTITY).contains(&request.quantity) {
            return Err(Error::invalid_field(
                "quantity",
                "must be from 1 to 1000000000",
            ));
        }
        let key = &request.idempotency_key;
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(Error::invalid_field(
                "idempotency_key",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        let now = now_micros();
        let usage_at = request.usage_time.as_ref().map_or(now, micros);
        if usage_at > now + FUTURE_SKEW_US || usage_at < metric::previous_month(now) {
            return Err(Error::invalid_field(
                "usage_time",
                "must be at most five minutes ahead and not before the previous billing period",
            ));
        }
        // Services that meter usage call with a service account of the
        // organization; people need billing.manage.
        let own_service_account = caller.principal.kind == PrincipalKind::ServiceAccount
            && caller.principal.organization.as_deref() == Some(id.as_str());
        if !own_service_account {
            core.authorize(&caller, &[&id], Need::Manage, "organization")
                .await?;
        }
        let node = core.node(&caller, &id).await?;
        let period = metric::period_of(metric, usage_at);
        let mut tx = core.begin().await?;
        if let Some(original) = store::record_by_key(&mut tx, &id, key).await? {
            return replay(original, metric, request.quantity);
        }
        let pool = pool_scope(&node.workspace_id);
        let totals = store::counters(
            &mut **tx,
            &[&node.root_id, &pool],
            metric.as_str_name(),
            period,
        )
        .await?;
        if totals
            .values()
            .any(|(_, subtree)| subtree.checked_add(request.quantity).is_none())
        {
            return Err(Refusal::UsageOverflow.into());
        }
        let record = UsageRecordRow {
            id: tenantry_kit::id::new_id().to_string(),
            organization_id: id.clone(),
            metric: metric.as_str_name().to_string(),
            quantity: request.quantity,
            idempotency_key: key.clone(),
            usage_at_us: usage_at,
            period_us: period,
            recorded_by: caller.resource_name(),
            created_at_us: now,
        };
        if !store::insert_record(&mut tx, &record).await? {
            // Another call took the key between our read and our insert.
            drop(tx);
            let mut tx = core.begin().await?;
            let original = store::record_by_key(&mut tx, &id, key)
                .await?
                .ok_or_else(|| Error::internal(anyhow::anyhow!("usage record vanished")))?;
            return replay(original, metric, request.quantity);
        }
        crate::ledger::count(&mut tx, &node, metric, period, request.quantity).await?;
        core.emit_at(
            &mut tx,
            &caller,
            &node,
            &events::UsageRecorded {
                usage_record_id: record.id.clone(),
                organization_id: id.clone(),
                metric: record.metric.clone(),
                quantity: record.quantity,
                idempotency_key: key.clone(),
                usage_time: Some(timestamp(usage_at)),
                period_start_time: Some(timestamp(period)),
            },
        )
        .await?;
        core.commit(tx).await?;
        Ok(pb::RecordUsageResponse {
            usage_record: Some(usage_record_view(&record)),
            replayed: false,
        })
    }

    async fn list(
        &self,
        caller: Caller,
        request: pb::ListUsageRecordsRequest,
    ) -> Result<pb::ListUsageRecordsResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("parent", &request.parent)?.id;
        let size = tenantry_kit::page_token::page_size(request.page_size, 100, 1000)?;
        let metric = match request.metric {
            0 => None,
            value => Some(metric::parse("metric", value)?.as_str_name().to_string()),
        };
        let filter = store::RecordFilter {
            metric,
            start_us: request.start_time.as_ref().map(micros),
            end_us: request.end_time.as_ref().map(micros),
        };
        if let (Some(start), Some(end)) = (filter.start_us, filter.end_us)
            && start >= end
        {
            return Err(Error::invalid_field("end_time", "must be after start_time"));
        }
        let query = format!(
            "ListUsageRecords|{id}|{:?}|{:?}|{:?}",
            filter.metric, filter.start_us, filter.end_us
        );
        let before: Option<Before> = core
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?;
        core.authorize(&caller, &[&id], Need::Read, "organization")
            .await?;
        let before = before.unwrap_or(Before(i64::MAX, String::from("~")));
        let mut rows = store::records(
            core.store.pool(),
            &id,
            &filter,
            (before.0, &before.1),
            i64::from(size) + 1,
        )
        .await?;
        let next_page_token = if rows.len() > size as usize {
            rows.truncate(size as usize);
            let last = rows.last().expect("a full page");
            core.page_tokens
                .encode(query.as_bytes(), &Before(last.usage_at_us, last.id.clone()))
        } else {
            String::new()
        };
        Ok(pb::ListUsageRecordsResponse {
            usage_records: rows.iter().map(usage_record_view).collect(),
            next_page_token,
        })
    }

    async fn get(
        &self,
        caller: Caller,
        request: pb::GetUsageRequest,
    ) -> Result<pb::GetUsageResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metrics = match request.metric {
            0 => metric::ALL.to_vec(),
            value => vec![metric::parse("metric", value)?],
        };
        let at = request.period_time.as_ref().map_or_else(now_micros, micros);
        core.authorize(&caller, &[&id], Need::Read, "organization")
            .await?;
        let node = core.node(&caller, &id).await?;
        let entitlements = core.entitlements(&node, &metrics, at).await?;
        Ok(pb::GetUsageResponse {
            period_start_time: Some(timestamp(metric::month_start(at))),
            period_end_time: Some(timestamp(metric::next_month(at))),
            usages: entitlements
                .iter()
                .map(|e| pb::MetricUsage {
                    metric: e.metric as i32,
                    own_quantity: e.own,
                    subtree_quantity: e.used,
                    limit: e.limit(),
                })
                .collect(),
        })
    }
}

fn replay(
    original: UsageRecordRow,
    metric: Metric,
    quantity: i64,
) -> Result<pb::RecordUsageResponse> {
    if original.metric == metric.as_str_name() && original.quantity == quantity {
        Ok(pb::RecordUsageResponse {
            usage_record: Some(usage_record_view(&original)),
            replayed: true,
        })
    } else {
        // The ALREADY_EXISTS of a key reused for different usage carries
        // the original.
        Err(Refusal::IdempotencyKeyReused {
            usage_record: usage_record_name(&original),
            metric: original.metric,
            quantity: original.quantity,
        }
        .into())
    }
}

#[tonic::async_trait]
impl pb::usage_service_server::UsageService for UsageApi {
    async fn record_usage(
        &self,
        request: Request<pb::RecordUsageRequest>,
    ) -> std::result::Result<Response<pb::RecordUsageResponse>, Status> {
        respond(request, |caller, r| self.record(caller, r)).await
    }

    async fn list_usage_records(
        &self,
        request: Request<pb::ListUsageRecordsRequest>,
    ) -> std::result::Result<Response<pb::ListUsageRecordsResponse>, Status> {
        respond(request, |caller, r| self.list(caller, r)).await
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> std::result::Result<Response<pb::GetUsageResponse>, Status> {
        respond(request, |caller, r| self.get(caller, r)).await
    }
}
