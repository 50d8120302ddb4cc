//! Keeps the promise of `purge_time`: soft-deleted projects, teams and
//! organizations are deleted for good once it has passed, each with its
//! `*.purged` event (the rbac service then drops their grants, members and
//! nodes). Runs in every replica; each purge is its own transaction and
//! deleting what is already gone is a no-op, so replicas do not collide.
//!
//! Projects go first, then teams, then organizations deepest first: an
//! organization is purged only once nothing is left under it (a child
//! deleted later, with a later purge time, holds its parent until then).

use std::time::Duration;

use tenantry_kit::db::now_micros;
use tenantry_kit::error::Result;
use tenantry_kit::outbox::NewEvent;
use tenantry_kit::service::ServiceContext;
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::events::v1 as events;

use crate::store::Children;
use crate::{Core, NAME, target};

/// At most this many objects of each kind per round.
const BATCH: i64 = 200;

fn system() -> events::Actor {
    events::Actor {
        kind: events::actor::Kind::System as i32,
        id: NAME.into(),
        display_name: String::new(),
    }
}

/// Runs `Core::purge_expired` every `interval` until shutdown.
pub fn spawn(ctx: &ServiceContext, core: Core, interval: Duration) {
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            match core.purge_expired(now_micros()).await {
                Ok(0) => {}
                Ok(purged) => {
                    tracing::info!(purged, "purged soft-deleted objects past their purge time")
                }
                Err(error) => {
                    tracing::warn!(error = %error, "purging soft-deleted objects failed")
                }
            }
        }
    });
}

impl Core {
    /// Purges what expired by `now_us`; returns how many objects went.
    pub async fn purge_expired(&self, now_us: i64) -> Result<usize> {
        // The purger serves every tenant.
        tenancy::system(self.purge_expired_everywhere(now_us)).await
    }

    async fn purge_expired_everywhere(&self, now_us: i64) -> Result<usize> {
        let mut purged = 0;
        for (organization_id, id) in self
            .store
            .expired_children(Children::Projects, now_us, BATCH)
            .await?
        {
            let root = self.organization(&organization_id).await?.root_id;
            let mut tx = self.begin().await?;
            self.store.purge_project(&mut tx, &id).await?;
            let mut event = NewEvent::new(
                "project",
                id.clone(),
                system(),
                &events::ProjectPurged {
                    project_id: id.clone(),
                    organization_id: organization_id.clone(),
                },
            )
            .in_organization(&organization_id, &root);
            event.targets = vec![target("project", &id, "")];
            tx.emit(event).await?;
            self.commit(tx).await?;
            purged += 1;
        }
        for (organization_id, id) in self
            .store
            .expired_children(Children::Teams, now_us, BATCH)
            .await?
        {
            let root = self.organization(&organization_id).await?.root_id;
            let mut tx = self.begin().await?;
            self.store.purge_team(&mut tx, &id).await?;
            let mut event = NewEvent::new(
                "team",
                id.clone(),
                system(),
                &events::TeamPurged {
                    team_id: id.clone(),
                    organization_id: organization_id.clone(),
                },
            )
            .in_organization(&organization_id, &root);
            event.targets = vec![target("team", &id, "")];
            tx.emit(event).await?;
            self.commit(tx).await?;
            purged += 1;
        }
        for (id, root) in self.store.expired_organizations(now_us, BATCH).await? {
            let mut tx = self.begin().await?;
            if !self.store.purge_organization(&mut tx, &id).await? {
                // Something under it is still there; a later round.
                continue;
            }
            let mut event = NewEvent::new(
                "organization",
                id.clone(),
                system(),
                &events::OrganizationPurged {
                    organization_id: id.clone(),
                },
            )
            .in_organization(&id, &root);
            event.targets = vec![target("organization", &id, "")];
            tx.emit(event).await?;
            self.commit(tx).await?;
            purged += 1;
        }
        Ok(purged)
    }
}
