//! [`Write`]: the one owner of a write, from `begin` to `commit`.
//!
//! A write is a transaction plus the domain events it emits into the outbox
//! (in the same transaction). Committing it wakes the outbox relay, hands
//! the events the authorization index follows to the index (see
//! [`index`](crate::index)), and records the consistency token that covers
//! the write for the answer and the caller's next calls (see
//! [`consistency`](crate::consistency)). Nobody else commits its
//! transaction.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Any, Transaction};
use tenantry_proto::tenantry::events::v1 as events;

use crate::consistency::{self, Token};
use crate::error::Result;
use crate::index::IndexSink;
use crate::outbox::{NewEvent, Outbox};

/// A write in progress. Dropping it without [`commit`](Self::commit) rolls
/// everything back, events included.
pub struct Write {
    tx: Transaction<'static, Any>,
    outbox: Outbox,
    index: Option<Arc<IndexSink>>,
    written: Vec<events::Event>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("service", &self.outbox.service())
            .field("events", &self.written.len())
            .finish()
    }
}

impl Write {
    /// A write in `tx` whose events go to `outbox` and, when the index
    /// follows them, to `index`.
    pub fn new(
        tx: Transaction<'static, Any>,
        outbox: &Outbox,
        index: Option<&Arc<IndexSink>>,
    ) -> Write {
        Write {
            tx,
            outbox: outbox.clone(),
            index: index.cloned(),
            written: Vec::new(),
        }
    }

    /// Appends `event` to the outbox in this write's transaction.
    pub async fn emit(&mut self, event: NewEvent) -> Result<&events::Event> {
        let envelope = self.outbox.append(&mut self.tx, event).await?;
        self.written.push(envelope);
        Ok(self.written.last().expect("just pushed"))
    }

    /// Appends `events` to the outbox in this write's transaction, in a few
    /// multi-row statements (see [`Outbox::append_all`]).
    pub async fn emit_all(&mut self, events: Vec<NewEvent>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let envelopes = self.outbox.append_all(&mut self.tx, events).await?;
        self.written.extend(envelopes);
        Ok(())
    }

    /// The transaction's connection, for a query in this write.
    pub fn connection(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// The events emitted so far.
    pub fn events(&self) -> &[events::Event] {
        &self.written
    }

    /// Commits; wakes the relay; hands the index what it follows; records
    /// and returns the write's consistency token (empty when the write
    /// changed nothing a decision depends on).
    ///
    /// A write the index must learn (it emitted an event the index follows)
    /// commits only once the index answers: while it cannot be reached the
    /// write fails with UNAVAILABLE and changes nothing, so no removal of
    /// access is ever acknowledged while checks could still allow it. The
    /// delivery after the commit can still fail (the index going down in
    /// between); its token then names the event and checks carrying it
    /// fail closed until the retry or the bus delivers it.
    pub async fn commit(self) -> Result<Token> {
        let index = self
            .index
            .as_ref()
            .filter(|_| self.written.iter().any(crate::index::followed));
        if let Some(index) = index {
            index.reachable().await?;
        }
        self.tx.commit().await?;
        // The index, then the followers (billing, audit), take the events
        // before the answer, so that the caller's next call sees them
        // wherever it goes. One after the other: each is a write of its
        // own, and on SQLite all of them queue for one write lock, each
        // holding a connection of the pool while it waits.
        let token = match (&self.index, self.written.is_empty()) {
            (Some(index), false) => index.deliver(&self.written).await,
            _ => Token::default(),
        };
        self.outbox.committed(&self.written).await;
        consistency::record_write(&token);
        Ok(token)
    }
}

impl Deref for Write {
    type Target = Transaction<'static, Any>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for Write {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
