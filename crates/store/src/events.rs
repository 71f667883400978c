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

/// Records an event within the transaction that makes the change it describes. The tenant
/// and blind index come from the recipient's queue row; an event for a recipient that is
/// not in the queue (any more) is not recorded. Returns whether it was.
pub async fn record(tx: &mut Tx, e: &NewEvent) -> Result<bool, StoreError> {
    if tx.backend() == Backend::Postgres && !tx.holds_events_lock {
        // PostgreSQL hands out `seq` when a row is inserted, not when it commits, so
        // transactions can commit sequence numbers out of order, and a reader that moved a
        // cursor past seq 11 while seq 10 was still uncommitted would never see 10. Writers
        // hold this lock shared until they commit; `horizon` takes it exclusively, so it
        // only returns once every sequence number up to the one it reads is settled.
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)").bind(lock::EVENTS).execute(tx.conn()).await?;
        tx.holds_events_lock = true;
    }
    let done = sqlx::query(
        "INSERT INTO message_events (id, tenant, message_id, recipient, address_index, kind, method, attempt, next_attempt_at, status, at) \
         SELECT $1, tenant, message_id, idx, address_index, $2, $3, $4, $5, $6, $7 FROM recipients WHERE message_id = $8 AND idx = $9",
    )
    .bind(Id::new().to_string())
    .bind(e.kind)
    .bind(&e.method)
    .bind(e.attempt)
    .bind(e.next_attempt_at)
    .bind(&e.status)
    .bind(e.at)
    .bind(&e.message_id)
    .bind(e.recipient)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The newest event's sequence number such that every event up to it is committed (or
/// rolled back for good): what an outbox cursor may move to. Inside a write transaction.
pub async fn horizon(tx: &mut Tx) -> Result<i64, StoreError> {
    if tx.backend() == Backend::Postgres {
        // Waits for the transactions that are writing events now; they hold the lock shared.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock::EVENTS).execute(tx.conn()).await?;
    }
    // On SQLite, writes go through one writer, so every event up to the newest is committed.
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM message_events").fetch_one(tx.conn()).await?)
}

/// Removes a message's events (with the message itself).
pub async fn delete_for_message(tx: &mut Tx, message_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM message_events WHERE message_id = $1").bind(message_id).execute(tx.conn()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{self, MessageRow, RecipientRow, RecipientUpdate, state};

    fn message(id: &str) -> (MessageRow, Vec<RecipientRow>) {
        let m = MessageRow {
            id: id.into(),
            tenant: "default".into(),
            received_at: 1_000,
            source: "api".into(),
            size: 10,
            body_blob: format!("msg/{id}"),
            envelope: b"sealed".to_vec(),
            arrival: b"sealed".to_vec(),
            message_id_index: None,
            inspection: None,
            state: state::ACTIVE.into(),
            done_at: None,
        };
        let rcpt = |idx: i64, st: &str| RecipientRow {
            message_id: id.into(),
            idx,
            tenant: "default".into(),
            address: b"sealed".to_vec(),
            address_index: vec![idx as u8; 32],
            domain_index: vec![9; 32],
            decision: None,
            state: st.into(),
            attempts: 0,
            next_attempt_at: 1_000,
            lease_until: None,
            last_reply: None,
            method: None,
            delay_notified: false,
            updated_at: 1_000,
        };
        (m, vec![rcpt(0, state::QUEUED), rcpt(1, state::QUARANTINED)])
    }

    #[tokio::test]
    async fn every_state_change_writes_its_event_in_the_same_transaction() {
        let (_dir, store) = crate::test_support::store().await;
        let (m, rcpts) = message("M1");
        let update = |st: &'static str, attempts: i64, method: Option<&str>, code: &str| RecipientUpdate {
            state: st,
            attempts,
            next_attempt_at: 5_000_000,
            last_reply: None,
            method: method.map(str::to_owned),
            delay_notified: false,
            status: Some(code.to_owned()),
        };
        let (deferred, delivered) =
            (update(state::QUEUED, 1, None, "4.4.1"), update(state::DELIVERED, 2, Some("tls"), "2.0.0"));
        store
            .writer()
            .run(move |tx| {
                Box::pin(async move {
                    queue::insert_message(tx, &m, &rcpts).await?;
                    queue::update_recipient(tx, "M1", 0, &deferred).await?;
                    queue::update_recipient(tx, "M1", 0, &delivered).await?;
                    queue::set_recipient_state(tx, "M1", Some(1), &[state::QUARANTINED], state::QUEUED, None).await?;
                    // A retry of a queued recipient changes nothing worth an event.
                    queue::set_recipient_state(tx, "M1", Some(1), &[state::QUEUED], state::QUEUED, None).await?;
                    Ok(())
                })
            })
            .await
            .unwrap();
        let events = store.message_events("M1").await.unwrap();
        let kinds: Vec<(i64, &str)> = events.iter().map(|e| (e.recipient, e.kind.as_str())).collect();
        assert_eq!(kinds, [(0, "queued"), (0, "deferred"), (0, "delivered"), (1, "quarantined"), (1, "released")]);
        let deferred = &events[1];
        assert_eq!(
            (deferred.attempt, deferred.next_attempt_at, deferred.status.as_deref()),
            (Some(1), Some(5_000_000), Some("4.4.1"))
        );
        assert_eq!(deferred.method, None);
        assert_eq!((events[2].method.as_deref(), events[2].status.as_deref()), (Some("tls"), Some("2.0.0")));
        assert!(events.iter().all(|e| e.tenant == "default" && e.address_index.len() == 32 && e.id.len() == 26));
        assert!(events.windows(2).all(|w| w[0].id != w[1].id));
        assert_eq!(store.last_event_seq().await.unwrap(), events.iter().map(|e| e.seq).max().unwrap());

        // An event for a recipient the queue does not have is not recorded.
        let recorded = store
            .writer()
            .run(|tx| Box::pin(async move { record(tx, &NewEvent::new("M1", 7, kind::OPENED, 2_000)).await }))
            .await
            .unwrap();
        assert!(!recorded);

        store.writer().run(|tx| Box::pin(async move { queue::delete_message(tx, "M1").await })).await.unwrap();
        assert!(store.message_events("M1").await.unwrap().is_empty(), "events go with their message");
    }

    #[tokio::test]
    async fn portal_opens_and_withdrawal_join_the_recipients_history() {
        use crate::portal::{self, PortalMessageRow};
        let (_dir, store) = crate::test_support::store().await;
        let (m, rcpts) = message("M2");
        let copy = PortalMessageRow {
            id: "P1".into(),
            tenant: "default".into(),
            source_message: "M2".into(),
            source_recipient: Some(0),
            recipient_index: b"r".to_vec(),
            recipient: b"sealed".to_vec(),
            envelope: b"sealed".to_vec(),
            body_blob: "portal/P1".into(),
            size: 10,
            created_at: 1,
            expires_at: 100,
            state: portal::state::ACTIVE.into(),
            withdrawn_at: None,
            withdrawn_by: None,
        };
        store
            .writer()
            .run(move |tx| {
                Box::pin(async move {
                    queue::insert_message(tx, &m, &rcpts).await?;
                    portal::insert_message(tx, &copy, &[]).await
                })
            })
            .await
            .unwrap();
        store.add_portal_open("P1", 2_000, b"sealed".to_vec()).await.unwrap();
        let withdrawn = store
            .writer()
            .run(|tx| {
                Box::pin(async move { portal::withdraw(tx, "P1", portal::state::RETRACTED, 3_000, "sender").await })
            })
            .await
            .unwrap();
        assert!(withdrawn);
        let kinds: Vec<(i64, String)> = store
            .message_events("M2")
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.recipient == 0)
            .map(|e| (e.at, e.kind))
            .collect();
        assert_eq!(
            kinds,
            [(1_000, "queued".to_owned()), (2_000, "opened".to_owned()), (3_000, "retracted".to_owned())]
        );
    }
}
