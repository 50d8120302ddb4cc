//! The chains' integrity: verification, signed checkpoints, and retention
//! that keeps what is left verifiable.

use std::time::Duration;

use ed25519_dalek::Signer as _;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::Result;
use tenantry_kit::service::ServiceContext;
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::audit::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;

use crate::names::AuditEventName;
use crate::record::GENESIS;
use crate::store::{self, CheckpointRow, Tx};
use crate::{Core, system_actor};

use pb::verify_chain_response::Reason;

/// How many events verification reads at a time.
const BATCH: i64 = 1000;

/// The checkpoint signing key and its id.
pub struct Signer {
    key: ed25519_dalek::SigningKey,
    pub key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(seed: [u8; 32]) -> Signer {
        use sha2::Digest as _;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let id = sha2::Sha256::digest(key.verifying_key().as_bytes());
        Signer {
            key,
            key_id: hex::encode(&id[..8]),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A checkpoint of `scope` at (`sequence`, `head_hash`), signed now.
    pub fn checkpoint(
        &self,
        scope: &str,
        sequence: i64,
        head_hash: &str,
        retention_cut: bool,
    ) -> CheckpointRow {
        let now = now_micros();
        let time = chrono::DateTime::from_timestamp_micros(now)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let payload =
            format!("tenantry-audit-checkpoint-v1\n{scope}\n{sequence}\n{head_hash}\n{time}");
        let signature = self.key.sign(payload.as_bytes());
        CheckpointRow {
            id: tenantry_kit::id::new_id().to_string(),
            scope: scope.to_string(),
            sequence,
            head_hash: head_hash.to_string(),
            created_at_us: now,
            signed_payload: payload,
            signature: hex::encode(signature.to_bytes()),
            key_id: self.key_id.clone(),
            public_key: hex::encode(self.public_key()),
            retention_cut,
        }
    }
}

impl Core {
    /// Recomputes a chain from `start` to `end` (0: oldest kept / head).
    pub async fn verify(
        &self,
        scope: &str,
        start: i64,
        end: i64,
    ) -> Result<pb::VerifyChainResponse> {
        let pool = self.db.pool();
        let (head, _) = store::head(pool, scope).await?;
        let first_kept = store::first_kept(pool, scope).await?.unwrap_or(head + 1);
        let start = if start == 0 {
            first_kept
        } else {
            start.max(first_kept)
        };
        let end = if end == 0 { head } else { end };
        let mut answer = pb::VerifyChainResponse {
            ok: true,
            start_sequence: start,
            end_sequence: end,
            ..Default::default()
        };
        let broken =
            |answer: &mut pb::VerifyChainResponse, sequence: i64, name: String, reason: Reason| {
                answer.ok = false;
                answer.broken_sequence = sequence;
                answer.broken_audit_event = name;
                answer.reason = reason as i32;
            };
        // What the first event's previous hash must be: the genesis, the
        // event before it, or the checkpoint kept where retention cut.
        let mut expected_previous = if start <= 1 {
            Some(hex::encode(GENESIS))
        } else if let Some(before) = store::chain(pool, scope, start - 1, start - 1, 1)
            .await?
            .pop()
        {
            Some(before.hash)
        } else {
            store::last_cut(pool, scope)
                .await?
                .filter(|cut| cut.sequence == start - 1)
                .map(|cut| cut.head_hash)
        };
        let checkpoints = store::checkpoints(pool, scope, (i64::MAX, ""), 10_000).await?;
        let mut next = start;
        while next <= end {
            let batch = store::chain(pool, scope, next, end, BATCH).await?;
            if batch.is_empty() {
                broken(&mut answer, next, String::new(), Reason::SequenceGap);
                return Ok(answer);
            }
            for record in batch {
                let name = AuditEventName::in_chain(scope, &record.id).to_string();
                if record.sequence != next {
                    broken(&mut answer, next, String::new(), Reason::SequenceGap);
                    return Ok(answer);
                }
                let previous = hex::decode(&record.previous_hash).unwrap_or_default();
                if hex::encode(record.compute_hash(&previous)) != record.hash {
                    broken(&mut answer, record.sequence, name, Reason::HashMismatch);
                    return Ok(answer);
                }
                if expected_previous
                    .as_ref()
                    .is_some_and(|p| *p != record.previous_hash)
                {
                    broken(
                        &mut answer,
                        record.sequence,
                        name,
                        Reason::PreviousHashMismatch,
                    );
                    return Ok(answer);
                }
                if checkpoints
                    .iter()
                    .any(|c| c.sequence == record.sequence && c.head_hash != record.hash)
                {
                    broken(
                        &mut answer,
                        record.sequence,
                        name,
                        Reason::CheckpointMismatch,
                    );
                    return Ok(answer);
                }
                expected_previous = Some(record.hash);
                answer.verified_count += 1;
                next += 1;
            }
        }
        Ok(answer)
    }

    /// Signs a checkpoint of every chain that moved since its last one.
    pub async fn checkpoint_all(&self) -> Result<usize> {
        // Every tenant's chain.
        tenancy::system(self.checkpoint_every_chain()).await
    }

    async fn checkpoint_every_chain(&self) -> Result<usize> {
        let heads = store::unchecked_heads(self.db.pool(), 1000).await?;
        for (scope, sequence, hash) in &heads {
            let mut tx = self.db.begin().await?;
            let checkpoint = self.signer.checkpoint(scope, *sequence, hash, false);
            self.save_checkpoint(&mut tx, &checkpoint).await?;
            tx.commit().await?;
            self.outbox.notify();
        }
        Ok(heads.len())
    }

    async fn save_checkpoint(&self, tx: &mut Tx, checkpoint: &CheckpointRow) -> Result<()> {
        store::insert_checkpoint(tx, checkpoint).await?;
        let event = tenantry_kit::outbox::NewEvent::new(
            "audit_chain",
            checkpoint.scope.clone(),
            system_actor(),
            &events::AuditCheckpointCreated {
                checkpoint_id: checkpoint.id.clone(),
                organization_id: checkpoint.scope.clone(),
                sequence: checkpoint.sequence,
                key_id: checkpoint.key_id.clone(),
            },
        );
        self.outbox.append(tx, event).await?;
        Ok(())
    }

    /// Purges events older than each tree's retention, keeping a signed
    /// checkpoint at each cut.
    pub async fn apply_retention(&self) -> Result<i64> {
        // Every tenant's tree.
        tenancy::system(self.apply_every_retention()).await
    }

    async fn apply_every_retention(&self) -> Result<i64> {
        let mut purged = 0;
        let now = now_micros();
        for (scope, days) in store::retained_scopes(self.db.pool()).await? {
            let cutoff = now - days.saturating_mul(86_400_000_000);
            let Some(through) = store::purgeable_through(self.db.pool(), &scope, cutoff).await?
            else {
                continue;
            };
            let mut tx = self.db.begin().await?;
            let Some(last) = store::chain(&mut *tx, &scope, through, through, 1)
                .await?
                .pop()
            else {
                continue;
            };
            let checkpoint = self.signer.checkpoint(&scope, through, &last.hash, true);
            self.save_checkpoint(&mut tx, &checkpoint).await?;
            let count = store::purge(&mut tx, &scope, through).await?;
            let mut event = tenantry_kit::outbox::NewEvent::new(
                "audit_chain",
                scope.clone(),
                system_actor(),
                &events::AuditEventsPurged {
                    organization_id: scope.clone(),
                    through_sequence: through,
                    purged_count: count,
                    cutoff_time: Some(tenantry_kit::db::timestamp(cutoff)),
                    retention_days: days,
                    checkpoint_id: checkpoint.id.clone(),
                },
            );
            if scope != crate::record::INSTANCE {
                event = event.in_organization(&scope, &last.root);
            }
            let written = self.outbox.append(&mut tx, event).await?;
            // The log's statement of the cut enters its chain with the cut
            // itself: no reader sees one without the other.
            let sources = self.append_in(&mut tx, vec![written.clone()]).await?;
            tx.commit().await?;
            crate::ingest::count_ingested(sources);
            self.outbox.committed(&[written]).await;
            purged += count;
        }
        Ok(purged)
    }
}

/// Starts the checkpointer and the retention job.
pub fn spawn(
    ctx: &ServiceContext,
    core: Core,
    checkpoint_every: Duration,
    retention_every: Duration,
) {
    let shutdown = ctx.shutdown.clone();
    let checkpointer = core.clone();
    ctx.tasks.spawn(async move {
        let mut checkpoints = tokio::time::interval(checkpoint_every);
        let mut retention = tokio::time::interval(retention_every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = checkpoints.tick() => {
                    if let Err(error) = checkpointer.checkpoint_all().await {
                        tracing::warn!(error = %error, "audit checkpoints failed; they run again");
                    }
                }
                _ = retention.tick() => {
                    if let Err(error) = core.apply_retention().await {
                        tracing::warn!(error = %error, "audit retention failed; it runs again");
                    }
                }
            }
        }
    });
}
