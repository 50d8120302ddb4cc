//! The audit service's rows and the SQL that reads and writes them: one
//! file per kind of row (its type, its mapping and its queries); this one
//! holds what they share.

use sqlx::{Any, Transaction};

pub type Tx = Transaction<'static, Any>;

/// The columns of an event row, as [`AuditRecord`] reads them.
macro_rules! record_columns {
    () => {
        "id, scope, root_id, sequence, occurred_at_us, ingested_at_us, actor_kind, actor_id, \
         actor_name, action, source, targets, outcome, client_address, user_agent, request_id, \
         trace_id, changes, metadata, metadata_truncated, previous_hash, hash"
    };
}

/// [`record_columns`] of the events table aliased `e`, for a join.
macro_rules! e_record_columns {
    () => {
        "e.id, e.scope, e.root_id, e.sequence, e.occurred_at_us, e.ingested_at_us, e.actor_kind, \
         e.actor_id, e.actor_name, e.action, e.source, e.targets, e.outcome, e.client_address, \
         e.user_agent, e.request_id, e.trace_id, e.changes, e.metadata, e.metadata_truncated, \
         e.previous_hash, e.hash"
    };
}

mod checkpoints;
mod events;
mod heads;
mod listing;
mod retention;

pub use checkpoints::{CheckpointRow, checkpoint, checkpoints, insert_checkpoint, last_cut};
pub use events::{append, chain, event, first_kept, root_of};
pub use heads::{head, lock_head, unchecked_heads};
pub use listing::{Cursor, Filter, page};
pub use retention::{purge, purgeable_through, retained_scopes, set_retention};

/// Audit's copy of the platform administrators.
pub const PLATFORM_ADMINS: tenantry_kit::admins::PlatformAdmins =
    tenantry_kit::admins::PlatformAdmins::new("audit_platform_admins");
