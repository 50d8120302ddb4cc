//! Ingest: every domain event of every service, from the bus, into its
//! organization's hash chain (or the instance chain). One durable
//! consumer, idempotent by event id: the claim, the row and the new chain
//! head commit together, so a redelivery after a crash finds the claim and
//! appends nothing twice, and a stopped consumer or bus only delays.
//!
//! The same stream keeps what reading needs: platform administrators
//! (identity) and each tree's retention from its plan (billing).

use prost::Name;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::Result;
use tenantry_kit::outbox::{claim_events, run_consumer, subject_for};
use tenantry_kit::service::ServiceContext;
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::events::v1 as events;

use crate::Core;
use crate::record::AuditRecord;
use crate::store;

const CONSUMER: &str = "audit-ingest";

/// The services whose events are audited: all of them.
const SOURCES: [&str; 5] = ["identity", "organization", "rbac", "billing", "audit"];

/// Starts the consumer.
pub fn spawn(ctx: &ServiceContext, core: Core) {
    let bus = ctx.bus.clone();
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        let filters = SOURCES.iter().map(|s| subject_for(s, ">")).collect();
        let result = run_consumer(bus, CONSUMER.into(), filters, shutdown, move |events| {
            let core = core.clone();
            async move {
                core.ingest_all(events)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        })
        .await;
        if let Err(error) = result {
            tracing::error!(
                error = format!("{error:#}"),
                "the audit ingest consumer stopped"
            );
        }
    });
}

fn decode<M: Name + Default>(event: &events::Event) -> Option<M> {
    event.payload.as_ref()?.to_msg().ok()
}

impl Core {
    /// Appends `events` (a writer's batch) to their chains in one
    /// transaction: each once, in the batch's order within its chain. The
    /// chains' heads are taken in the order of their names, so two batches
    /// never wait for each other's heads in a circle.
    pub async fn ingest_all(&self, events: Vec<events::Event>) -> Result<()> {
        // The log takes in every tenant's events.
        tenancy::system(self.append_events(events)).await
    }

    async fn append_events(&self, events: Vec<events::Event>) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let sources = self.append_in(&mut tx, events).await?;
        tx.commit().await?;
        count_ingested(sources);
        Ok(())
    }

    /// Appends `events` to their chains in `tx` (see [`ingest_all`]): the
    /// sources of those appended, for [`count_ingested`] once `tx` commits.
    ///
    /// [`ingest_all`]: Self::ingest_all
    pub(crate) async fn append_in(
        &self,
        tx: &mut store::Tx,
        events: Vec<events::Event>,
    ) -> Result<Vec<String>> {
        let now = now_micros();
        let mut records: Vec<(events::Event, AuditRecord)> = events
            .into_iter()
            // Checkpoints are the log's own statements about itself;
            // logging them would move the head they just signed.
            .filter(|event| event.r#type != events::AuditCheckpointCreated::EVENT_TYPE)
            .map(|event| {
                let record = AuditRecord::from_event(
                    &self.descriptors,
                    &event,
                    self.options.max_metadata_bytes,
                    now,
                );
                (event, record)
            })
            .collect();
        // Stable: within a chain, the batch's order stays.
        records.sort_by(|a, b| a.1.scope.cmp(&b.1.scope));
        let ids: Vec<&str> = records.iter().map(|(event, _)| event.id.as_str()).collect();
        let mut claimed = claim_events(tx, CONSUMER, &ids).await?;
        let mut sources = Vec::with_capacity(records.len());
        let mut sealed: Vec<AuditRecord> = Vec::with_capacity(records.len());
        // The head of the chain being sealed: (scope, sequence, hash).
        let mut head: Option<(String, i64, Vec<u8>)> = None;
        for (event, mut record) in records {
            if !claimed.remove(&event.id) {
                continue;
            }
            self.learn(tx, &event).await?;
            let (sequence, previous) = match head.take() {
                Some((scope, sequence, hash)) if scope == record.scope => (sequence, hash),
                _ => store::lock_head(tx, &record.scope).await?,
            };
            record.seal(sequence, &previous);
            let hash = hex::decode(&record.hash).unwrap_or_default();
            head = Some((record.scope.clone(), record.sequence, hash));
            sealed.push(record);
            sources.push(event.source);
        }
        store::append(tx, &sealed).await?;
        Ok(sources)
    }

    /// What reading needs from the stream besides the log itself.
    async fn learn(&self, tx: &mut store::Tx, event: &events::Event) -> Result<()> {
        store::PLATFORM_ADMINS.apply(tx, event).await?;
        match event.r#type.as_str() {
            events::SubscriptionCreated::EVENT_TYPE => {
                if let Some(p) = decode::<events::SubscriptionCreated>(event) {
                    store::set_retention(tx, &p.organization_id, retention(&p.limits)).await?;
                }
            }
            events::SubscriptionChanged::EVENT_TYPE => {
                if let Some(p) = decode::<events::SubscriptionChanged>(event) {
                    store::set_retention(tx, &p.organization_id, retention(&p.limits)).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A plan's audit retention in days, from the limits billing announces.
fn retention(limits: &[events::LimitValue]) -> Option<i64> {
    limits
        .iter()
        .find(|l| l.metric == "audit_retention_days")
        .and_then(|l| l.value)
}

/// Counts appended events by the service that emitted them.
pub(crate) fn count_ingested(sources: Vec<String>) {
    for source in sources {
        metrics::counter!("tenantry_audit_events_ingested_total", "source" => source).increment(1);
    }
}
