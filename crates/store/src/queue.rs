//! Rows of the durable queue. Sealing, scheduling and delivery are the delivery crate's;
//! this module stores and selects rows.

use carepost_model::Timestamp;
use sqlx::Row;

use crate::events::{self, NewEvent, kind};
use crate::{Backend, Store, StoreError, Tx};

/// A message as stored; sealed columns are opaque bytes here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub tenant: String,
    pub received_at: i64,
    pub source: String,
    pub size: i64,
    /// The sealed body's blob key, or [`INLINE_BODY`] when the body is kept in the database
    /// ([`insert_inline_body`]).
    pub body_blob: String,
    pub envelope: Vec<u8>,
    pub arrival: Vec<u8>,
    pub message_id_index: Option<Vec<u8>>,
    pub inspection: Option<String>,
    pub state: String,
    pub done_at: Option<i64>,
}

/// `MessageRow::body_blob` of a message whose sealed body is a row of `message_bodies`,
/// written in the transaction that queues the message.
pub const INLINE_BODY: &str = "inline";

/// One recipient of a message, and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRow {
    pub message_id: String,
    pub idx: i64,
    pub tenant: String,
    pub address: Vec<u8>,
    pub address_index: Vec<u8>,
    pub domain_index: Vec<u8>,
    pub decision: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_reply: Option<Vec<u8>>,
    pub method: Option<String>,
    pub delay_notified: bool,
    pub updated_at: i64,
}

pub mod state {
    pub const QUEUED: &str = "queued";
    pub const INFLIGHT: &str = "inflight";
    pub const HELD: &str = "held";
    /// Held by policy for a compliance officer; only `carepost quarantine` releases it.
    pub const QUARANTINED: &str = "quarantined";
    pub const DELIVERED: &str = "delivered";
    pub const BOUNCED: &str = "bounced";
    pub const ACTIVE: &str = "active";
    pub const DONE: &str = "done";
}

fn message_from(r: &sqlx::any::AnyRow) -> Result<MessageRow, StoreError> {
    Ok(MessageRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        received_at: r.try_get("received_at")?,
        source: r.try_get("source")?,
        size: r.try_get("size")?,
        body_blob: r.try_get("body_blob")?,
        envelope: r.try_get("envelope")?,
        arrival: r.try_get("arrival")?,
        message_id_index: r.try_get("message_id_index")?,
        inspection: r.try_get("inspection")?,
        state: r.try_get("state")?,
        done_at: r.try_get("done_at")?,
    })
}

fn recipient_from(r: &sqlx::any::AnyRow) -> Result<RecipientRow, StoreError> {
    Ok(RecipientRow {
        message_id: r.try_get("message_id")?,
        idx: r.try_get("idx")?,
        tenant: r.try_get("tenant")?,
        address: r.try_get("address")?,
        address_index: r.try_get("address_index")?,
        domain_index: r.try_get("domain_index")?,
        decision: r.try_get("decision")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        lease_until: r.try_get("lease_until")?,
        last_reply: r.try_get("last_reply")?,
        method: r.try_get("method")?,
        delay_notified: r.try_get::<i64, _>("delay_notified")? != 0,
        updated_at: r.try_get("updated_at")?,
    })
}

pub async fn insert_message(tx: &mut Tx, m: &MessageRow, recipients: &[RecipientRow]) -> Result<(), StoreError> {
    tx.defer(
        "INSERT INTO messages (id, tenant, received_at, source, size, body_blob, envelope, arrival, \
         message_id_index, inspection, state, done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        |b| {
            b.add(&m.id)
                .add(&m.tenant)
                .add(m.received_at)
                .add(&m.source)
                .add(m.size)
                .add(&m.body_blob)
                .add(&m.envelope)
                .add(&m.arrival)
                .add(&m.message_id_index)
                .add(&m.inspection)
                .add(&m.state)
                .add(m.done_at);
        },
    )?;
    for r in recipients {
        tx.defer(
            "INSERT INTO recipients (message_id, idx, tenant, address, address_index, domain_index, decision, state, \
             attempts, next_attempt_at, lease_until, last_reply, method, delay_notified, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            |b| {
                b.add(&r.message_id)
                    .add(r.idx)
                    .add(&r.tenant)
                    .add(&r.address)
                    .add(&r.address_index)
                    .add(&r.domain_index)
                    .add(&r.decision)
                    .add(&r.state)
                    .add(r.attempts)
                    .add(r.next_attempt_at)
                    .add(r.lease_until)
                    .add(&r.last_reply)
                    .add(&r.method)
                    .add(i64::from(r.delay_notified))
                    .add(r.updated_at);
            },
        )?;
        let first = if r.state == state::QUARANTINED { kind::QUARANTINED } else { kind::QUEUED };
        events::record(tx, &NewEvent::new(&r.message_id, r.idx, first, m.received_at)).await?;
    }
    Ok(())
}

/// Marks up to `limit` due recipients in flight until `lease_until`, leased to this node
/// (the store's [`node_id`](crate::Store::node_id)), and returns them, oldest first. A lease
/// that expires (the node died mid-delivery, or stopped renewing) makes them due again, to
/// any node: delivery is at least once, never lost.
pub async fn claim_due(tx: &mut Tx, now: i64, lease_until: i64, limit: i64) -> Result<Vec<RecipientRow>, StoreError> {
    const DUE: &str = "(state = 'queued' AND next_attempt_at <= $1) OR (state = 'inflight' AND lease_until < $1)";
    let node = tx.node().to_owned();
    if tx.backend() == Backend::Postgres {
        // Several nodes claim at once: SKIP LOCKED passes over the rows another node's claim
        // holds instead of waiting for it and then taking them too, so no recipient is
        // claimed twice and no claim waits on another.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE recipients SET state = 'inflight', lease_until = $3, lease_holder = $4, updated_at = $1 \
             WHERE (message_id, idx) IN (SELECT message_id, idx FROM recipients WHERE {DUE} \
             ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING *"
        )))
        .bind(now)
        .bind(limit)
        .bind(lease_until)
        .bind(&node)
        .fetch_all(tx.conn().await?)
        .await?;
        let mut claimed = rows.iter().map(recipient_from).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|r| r.next_attempt_at);
        return Ok(claimed);
    }
    // SQLite: the group writer is the only writer, so nothing can take the rows between
    // the choice and the update.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE recipients SET state = 'inflight', lease_until = $3, lease_holder = $4, updated_at = $1 \
         WHERE rowid IN (SELECT rowid FROM recipients WHERE {DUE} ORDER BY next_attempt_at LIMIT $2) RETURNING *"
    )))
    .bind(now)
    .bind(limit)
    .bind(lease_until)
    .bind(&node)
    .fetch_all(tx.conn().await?)
    .await?;
    let mut claimed = rows.iter().map(recipient_from).collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|r| r.next_attempt_at);
    Ok(claimed)
}

/// Extends this node's live leases to `lease_until`: a node renews them while its
/// deliveries run, so that only a dead (or stalled) node's leases run out. Leases already
/// expired at `now` are left to whichever node claims them next. Returns how many it renewed.
pub async fn renew_leases(tx: &mut Tx, now: i64, lease_until: i64) -> Result<u64, StoreError> {
    let node = tx.node().to_owned();
    let done = sqlx::query(
        "UPDATE recipients SET lease_until = $1 WHERE state = 'inflight' AND lease_holder = $2 AND lease_until >= $3",
    )
    .bind(lease_until)
    .bind(&node)
    .bind(now)
    .execute(tx.conn().await?)
    .await?;
    Ok(done.rows_affected())
}

/// Makes every in-flight recipient due at once. Only for a process that owns the queue alone
/// (SQLite, one `serve` per data directory): at start-up any lease is a leftover of a crash,
/// and at shutdown the recipients it did not get to. On a shared store the other nodes'
/// leases are live; see [`Backend::is_shared`](crate::Backend::is_shared). Returns how many
/// it released.
pub async fn requeue_inflight(tx: &mut Tx, now: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE recipients SET state = 'queued', lease_until = NULL, lease_holder = NULL, \
         next_attempt_at = CASE WHEN next_attempt_at < $1 THEN next_attempt_at ELSE $1 END, updated_at = $1 \
         WHERE state = 'inflight'",
    )
    .bind(now)
    .execute(tx.conn().await?)
    .await?;
    Ok(done.rows_affected())
}

/// Makes the given in-flight recipients due at once (those a stopping runner did not reach).
pub async fn requeue(tx: &mut Tx, recipients: &[(String, i64)], now: i64) -> Result<u64, StoreError> {
    let mut n = 0;
    for (message_id, idx) in recipients {
        let done = sqlx::query(
            "UPDATE recipients SET state = 'queued', lease_until = NULL, lease_holder = NULL, updated_at = $1 \
             WHERE message_id = $2 AND idx = $3 AND state = 'inflight'",
        )
        .bind(now)
        .bind(message_id)
        .bind(idx)
        .execute(tx.conn().await?)
        .await?;
        n += done.rows_affected();
    }
    Ok(n)
}

/// What became of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientUpdate {
    pub state: &'static str,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_reply: Option<Vec<u8>>,
    pub method: Option<String>,
    pub delay_notified: bool,
    /// The enhanced status code (RFC 3463) of the outcome, for the recipient's history.
    pub status: Option<String>,
}

impl RecipientUpdate {
    /// The event this outcome is: an attempt that leaves the recipient queued was deferred.
    fn event(&self, message_id: &str, idx: i64, at: i64) -> NewEvent {
        let event_kind = match self.state {
            state::DELIVERED => kind::DELIVERED,
            state::BOUNCED => kind::BOUNCED,
            state::HELD => kind::HELD,
            state::QUARANTINED => kind::QUARANTINED,
            _ => kind::DEFERRED,
        };
        NewEvent {
            method: if event_kind == kind::DELIVERED { self.method.clone() } else { None },
            attempt: Some(self.attempts),
            next_attempt_at: (event_kind == kind::DEFERRED).then_some(self.next_attempt_at),
            status: self.status.clone(),
            ..NewEvent::new(message_id, idx, event_kind, at)
        }
    }
}

/// Records the outcome of an attempt (or an operator's ending) and its event.
pub async fn update_recipient(tx: &mut Tx, message_id: &str, idx: i64, u: &RecipientUpdate) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    tx.defer(
        "UPDATE recipients SET state = $1, attempts = $2, next_attempt_at = $3, last_reply = $4, method = $5, \
         delay_notified = $6, lease_until = NULL, updated_at = $7 WHERE message_id = $8 AND idx = $9",
        |b| {
            b.add(u.state)
                .add(u.attempts)
                .add(u.next_attempt_at)
                .add(&u.last_reply)
                .add(&u.method)
                .add(i64::from(u.delay_notified))
                .add(now)
                .add(message_id)
                .add(idx);
        },
    )?;
    events::record(tx, &u.event(message_id, idx, now)).await
}

/// Sets a recipient's state alone (hold, release, retry now) and records the change as an
/// event (a retry of a queued recipient changes no state and records none). Returns how many
/// recipients matched.
pub async fn set_recipient_state(
    tx: &mut Tx,
    message_id: &str,
    idx: Option<i64>,
    from_states: &[&str],
    to_state: &str,
    next_attempt_at: Option<i64>,
) -> Result<u64, StoreError> {
    let mut changed = 0;
    let rows = sqlx::query("SELECT idx, state, next_attempt_at FROM recipients WHERE message_id = $1")
        .bind(message_id)
        .fetch_all(tx.conn().await?)
        .await?;
    for row in rows {
        let i: i64 = row.try_get("idx")?;
        let s: String = row.try_get("state")?;
        if idx.is_some_and(|want| want != i) || !from_states.contains(&s.as_str()) {
            continue;
        }
        let at: i64 = next_attempt_at.unwrap_or(row.try_get("next_attempt_at")?);
        let now = Timestamp::now().as_micros();
        sqlx::query("UPDATE recipients SET state = $1, next_attempt_at = $2, lease_until = NULL, updated_at = $3 WHERE message_id = $4 AND idx = $5")
            .bind(to_state)
            .bind(at)
            .bind(now)
            .bind(message_id)
            .bind(i)
            .execute(tx.conn().await?)
            .await?;
        let event_kind = match (s.as_str(), to_state) {
            (_, state::HELD) => Some(kind::HELD),
            (_, state::QUARANTINED) => Some(kind::QUARANTINED),
            (state::HELD | state::QUARANTINED, state::QUEUED) => Some(kind::RELEASED),
            _ => None,
        };
        if let Some(k) = event_kind {
            events::record(tx, &NewEvent::new(message_id, i, k, now)).await?;
        }
        changed += 1;
    }
    Ok(changed)
}

/// Marks the message done when no recipient is left to deliver. Returns whether it is done.
pub async fn finish_if_done(tx: &mut Tx, message_id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(FINISH_IF_DONE)
        .bind(Timestamp::now().as_micros())
        .bind(message_id)
        .execute(tx.conn().await?)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// [`finish_if_done`] with the transaction's other writes (see [`Tx`]), for a caller that
/// does not need the answer.
pub fn finish_if_done_later(tx: &mut Tx, message_id: &str) -> Result<(), StoreError> {
    tx.defer(FINISH_IF_DONE, |b| {
        b.add(Timestamp::now().as_micros()).add(message_id);
    })
}

/// Matches the message while none of its recipients is left to deliver, and marks it done
/// if it was active.
const FINISH_IF_DONE: &str = "UPDATE messages SET \
     done_at = CASE WHEN state = 'active' THEN $1 ELSE done_at END, \
     state = CASE WHEN state = 'active' THEN 'done' ELSE state END \
     WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = $2 \
     AND state IN ('queued', 'inflight', 'held', 'quarantined'))";

/// Keeps a message's sealed body in the database; call in the transaction of
/// [`insert_message`], whose row names [`INLINE_BODY`] as its blob.
pub async fn insert_inline_body(tx: &mut Tx, message_id: &str, sealed: &[u8]) -> Result<(), StoreError> {
    tx.defer("INSERT INTO message_bodies (message_id, sealed) VALUES ($1, $2)", |b| {
        b.add(message_id).add(sealed);
    })
}

pub async fn delete_message(tx: &mut Tx, message_id: &str) -> Result<bool, StoreError> {
    events::delete_for_message(tx, message_id).await?;
    sqlx::query("DELETE FROM message_bodies WHERE message_id = $1").bind(message_id).execute(tx.conn().await?).await?;
    sqlx::query("DELETE FROM recipients WHERE message_id = $1").bind(message_id).execute(tx.conn().await?).await?;
    let done = sqlx::query("DELETE FROM messages WHERE id = $1").bind(message_id).execute(tx.conn().await?).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn message_in(tx: &mut Tx, id: &str) -> Result<Option<MessageRow>, StoreError> {
    let row = sqlx::query("SELECT * FROM messages WHERE id = $1").bind(id).fetch_optional(tx.conn().await?).await?;
    row.as_ref().map(message_from).transpose()
}

impl Store {
    pub async fn message(&self, id: &str) -> Result<Option<MessageRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM messages WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(message_from).transpose()
    }

    /// The sealed body kept in the database for a message whose row names [`INLINE_BODY`].
    pub async fn inline_body(&self, message_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed = sqlx::query_scalar("SELECT sealed FROM message_bodies WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(sealed)
    }

    pub async fn recipients(&self, message_id: &str) -> Result<Vec<RecipientRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM recipients WHERE message_id = $1 ORDER BY idx")
            .bind(message_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(recipient_from).collect()
    }

    /// Messages in a state, newest first.
    pub async fn messages_in_state(&self, state: &str, limit: i64) -> Result<Vec<MessageRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM messages WHERE state = $1 ORDER BY received_at DESC LIMIT $2")
            .bind(state)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(message_from).collect()
    }

    /// Messages that have a recipient in `state`, newest first.
    pub async fn messages_with_recipient_state(&self, state: &str, limit: i64) -> Result<Vec<MessageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE id IN (SELECT message_id FROM recipients WHERE state = $1) \
             ORDER BY received_at DESC LIMIT $2",
        )
        .bind(state)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(message_from).collect()
    }

    /// The earliest time a queued recipient becomes due, to sleep until then.
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = 'queued' THEN next_attempt_at ELSE lease_until END) FROM recipients \
             WHERE state IN ('queued', 'inflight')",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Ids of messages whose Message-ID header has this blind index: duplicate detection.
    pub async fn messages_with_message_id(&self, tenant: &str, index: &[u8]) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM messages WHERE tenant = $1 AND message_id_index = $2 ORDER BY received_at",
        )
        .bind(tenant)
        .bind(index)
        .fetch_all(self.pool())
        .await?)
    }

    /// Counts of recipients by state.
    pub async fn queue_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM recipients GROUP BY state ORDER BY state")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
    }
}
