//! A service's copy of who the platform administrators are, kept from
//! identity's events (`identity.user.platform_admin_granted` / `_revoked`)
//! in a table of the service's own (no service reads another's tables).
//! Billing (plan administration) and audit (reads across organizations)
//! keep one.

use sqlx::{Any, Executor, Transaction};
use tenantry_proto::tenantry::events::v1 as events;

use crate::error::Result;

/// The event types a copy follows, for a consumer's subject filters.
pub const EVENT_TYPES: [&str; 2] = [
    events::PlatformAdminGranted::EVENT_TYPE,
    events::PlatformAdminRevoked::EVENT_TYPE,
];

/// The platform administrators, in `table` (`user_id TEXT PRIMARY KEY`).
#[derive(Debug, Clone, Copy)]
pub struct PlatformAdmins {
    table: &'static str,
}

impl PlatformAdmins {
    pub const fn new(table: &'static str) -> PlatformAdmins {
        PlatformAdmins { table }
    }

    /// Applies `event` if it is one of [`EVENT_TYPES`]; other events are
    /// left alone. Returns whether it was one.
    pub async fn apply(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &events::Event,
    ) -> Result<bool> {
        let granted = match event.r#type.as_str() {
            events::PlatformAdminGranted::EVENT_TYPE => true,
            events::PlatformAdminRevoked::EVENT_TYPE => false,
            _ => return Ok(false),
        };
        let user_id = if granted {
            decode::<events::PlatformAdminGranted>(event).map(|p| p.user_id)
        } else {
            decode::<events::PlatformAdminRevoked>(event).map(|p| p.user_id)
        };
        let Some(user_id) = user_id else {
            return Ok(true);
        };
        let sql = if granted {
            format!(
                "INSERT INTO {} (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
                self.table
            )
        } else {
            format!("DELETE FROM {} WHERE user_id = $1", self.table)
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Ok(true)
    }

    /// Whether `user_id` is a platform administrator.
    pub async fn contains<'e, E: Executor<'e, Database = Any>>(
        &self,
        e: E,
        user_id: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM {} WHERE user_id = $1",
            self.table
        )))
        .bind(user_id)
        .fetch_optional(e)
        .await?
        .is_some())
    }
}

fn decode<M: prost::Name + Default>(event: &events::Event) -> Option<M> {
    event.payload.as_ref()?.to_msg().ok()
}
