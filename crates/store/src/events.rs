//! Message events: each recipient's delivery history, and the outbox webhooks are sent from.
//!
//! Every change of a recipient's state writes its event in the same transaction as the
//! change (the queue and portal modules call [`record`] themselves), so the history and the
//! webhooks built from it cannot miss one. Events hold no PHI: the recipient is its position
//! in the message and the blind index the queue keeps; the rest is states, methods, counts,
//! status codes and times.

use carepost_model::Id;
use sqlx::Row;

use crate::backend::postgres::lock;
use crate::{Backend, Store, StoreError, Tx};

/// What happened to a recipient.
pub mod kind {
    /// Accepted and queued for delivery.
    pub const QUEUED: &str = "queued";
    /// Kept by policy for a compliance officer.
    pub const QUARANTINED: &str = "quarantined";
    /// Kept for an operator (policy, no verified TLS, or `carepost queue hold`).
    pub const HELD: &str = "held";
    /// Let go to delivery from hold or quarantine.
    pub const RELEASED: &str = "released";
    /// An attempt failed for now; another follows.
    pub const DEFERRED: &str = "deferred";
    pub const DELIVERED: &str = "delivered";
    pub const BOUNCED: &str = "bounced";
    /// The recipient opened the copy in the secure portal.
    pub const OPENED: &str = "opened";
    /// The sender withdrew the portal copy.
    pub const RETRACTED: &str = "retracted";
    /// The portal copy reached its expiry and was shredded.
    pub const EXPIRED: &str = "expired";

    pub const ALL: &[&str] =
        &[QUEUED, QUARANTINED, HELD, RELEASED, DEFERRED, DELIVERED, BOUNCED, OPENED, RETRACTED, EXPIRED];
}

/// An event to record for the recipient `recipient` of `message_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEvent {
    pub message_id: String,
    pub recipient: i64,
    pub kind: &'static str,
    pub method: Option<String>,
    pub attempt: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub status: Option<String>,
    pub at: i64,
}

impl NewEvent {
    pub fn new(message_id: &str, recipient: i64, kind: &'static str, at: i64) -> Self {
        NewEvent { message_id: message_id.to_owned(), recipient, kind, at, ..NewEvent::default() }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub tenant: String,
    pub message_id: String,
    pub recipient: i64,
    pub address_index: Vec<u8>,
    pub kind: String,
    pub method: Option<String>,
    pub attempt: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub status: Option<String>,
    pub at: i64,
}

pub(crate) fn event_from(r: &sqlx::any::AnyRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        message_id: r.try_get("message_id")?,
        recipient: r.try_get("recipient")?,
        address_index: r.try_get("address_index")?,
        kind: r.try_get("kind")?,
        method: r.try_get("method")?,
        attempt: r.try_get("attempt")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        status: r.try_get("status")?,
        at: r.try_get("at")?,
    })
}

/// Records an event within the transaction that makes the change it describes, with the
/// transaction's other writes (see [`Tx`]). The tenant and blind index come from the
/// recipient's queue row; an event for a recipient that is not in the queue (any more) is
/// not recorded.
pub async fn record(tx: &mut Tx, e: &NewEvent) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres && !tx.holds_events_lock {
        // PostgreSQL hands out `seq` when a row is inserted, not when it commits, so
        // transactions can commit sequence numbers out of order, and a reader that moved a
        // cursor past seq 11 while seq 10 was still uncommitted would never see 10. Writers
        // hold this lock shared until they commit; `horizon` takes it exclusively, so it
        // only returns once every sequence number up to the one it reads is settled.
        tx.defer("SELECT pg_advisory_xact_lock_shared($1)", |b| {
            b.add(lock::EVENTS);
        })?;
        tx.holds_events_lock = true;
    }
    tx.defer(INSERT, |b| {
        b.add(Id::new().to_string())
            .add(e.kind)
            .add(&e.method)
            .add(e.attempt)
            .add(e.next_attempt_at)
            .add(&e.status)
            .add(e.at)
            .add(&e.message_id)
            .add(e.recipient);
    })
}

const INSERT: &str = "INSERT INTO message_events (id, tenant, message_id, recipient, address_index, kind, method, attempt, next_attempt_at, status, at) \
     SELECT $1, tenant, message_id, idx, address_index, $2, $3, $4, $5, $6, $7 FROM recipients WHERE message_id = $8 AND idx = $9";

/// The newest event's sequence number such that every event up to it is committed (or
/// rolled back for good): what an outbox cursor may move to. Inside a write transaction.
pub async fn horizon(tx: &mut Tx) -> Result<i64, StoreError> {
    if tx.backend() == Backend::Postgres {
        // Waits for the transactions that are writing events now; they hold the lock shared.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock::EVENTS).execute(tx.conn().await?).await?;
    }
    // On SQLite, writes go through one writer, so every event up to the newest is committed.
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM message_events").fetch_one(tx.conn().await?).await?)
}

/// Removes a message's events (with the message itself).
pub async fn delete_for_message(tx: &mut Tx, message_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM message_events WHERE message_id = $1").bind(message_id).execute(tx.conn().await?).await?;
    Ok(())
}

impl Store {
    /// A message's events, by recipient and in the order they happened.
    pub async fn message_events(&self, message_id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM message_events WHERE message_id = $1 ORDER BY recipient, seq")
            .bind(message_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(event_from).collect()
    }

    /// The newest event's sequence number (0 when there is none) up to which every event is
    /// committed (see [`horizon`]).
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        match self.backend() {
            Backend::Sqlite => Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM message_events")
                .fetch_one(self.pool())
                .await?),
            Backend::Postgres => self.write(|tx| Box::pin(horizon(tx))).await,
        }
    }

    /// One event by its sequence number.
    pub async fn event(&self, seq: i64) -> Result<Option<EventRow>, StoreError> {
        let row =
            sqlx::query("SELECT * FROM message_events WHERE seq = $1").bind(seq).fetch_optional(self.pool()).await?;
        row.as_ref().map(event_from).transpose()
    }
}
