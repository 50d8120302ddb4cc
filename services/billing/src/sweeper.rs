//! Time-driven changes written back: a trial that ended becomes active, a
//! cancellation at period end becomes canceled, a lapsed quota reservation
//! goes. Reads already see both at
//! once (`subscriptions::state_at`); the sweeper stores them and emits
//! their `billing.subscription.state_changed` events, on every replica
//! (the row's version check in one transaction makes a double sweep
//! harmless: the second finds nothing to change).

use std::time::Duration;

use tenantry_kit::db::now_micros;
use tenantry_kit::service::ServiceContext;

use crate::Core;
use crate::store;
use crate::subscriptions::state_at;

/// Starts the sweeper.
pub fn spawn(ctx: &ServiceContext, core: Core, every: Duration) {
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(error) = core.sweep().await {
                        tracing::warn!(error = %error, "the billing sweep failed; it runs again");
                    }
                }
            }
        }
    });
}

impl Core {
    /// Writes back every subscription whose state time has changed.
    pub async fn sweep(&self) -> tenantry_kit::error::Result<usize> {
        // Every tenant's subscriptions and reservations.
        tenantry_kit::tenancy::system(self.sweep_every_tenant()).await
    }

    async fn sweep_every_tenant(&self) -> tenantry_kit::error::Result<usize> {
        let now = now_micros();
        // Reservations whose create neither completed nor was released
        // (readings already ignore them): their rows go.
        let mut tx = self.begin().await?;
        store::drop_lapsed_reservations(&mut tx, now).await?;
        tx.commit().await?;
        let due = store::due_subscriptions(self.store.pool(), now).await?;
        let mut changed = 0;
        for candidate in due {
            let mut tx = self.begin().await?;
            let Some(mut s) = store::subscription(&mut **tx, &candidate.organization_id).await?
            else {
                continue;
            };
            if s.version != candidate.version {
                continue;
            }
            let state = state_at(&s, now);
            self.set_state(&mut tx, &mut s, state, "").await?;
            self.commit(tx).await?;
            changed += 1;
        }
        Ok(changed)
    }
}
