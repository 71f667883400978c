//! Rows of webhook endpoints and of the events owed to them.
//!
//! Events are fanned out from the [`events`](crate::events) outbox: each endpoint keeps a
//! cursor (the last event sequence it has considered), and moving the cursor and creating
//! the endpoint's delivery rows happen in one transaction, so a restart neither skips nor
//! doubles an event. A delivery row stays `pending` until the endpoint answers 2xx
//! (`delivered`) or carepost gives up (`failed`). Sealing the signing secret is the
//! caller's; this module stores what it is given.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, Tx, events};

/// States of a delivery row.
pub mod state {
    pub const PENDING: &str = "pending";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
}

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRow {
    pub id: String,
    pub tenant: String,
    pub url: String,
    /// Event kinds it receives.
    pub events: Vec<String>,
    /// The signing secret, sealed under the data key of object `webhook/<id>`.
    pub secret: Vec<u8>,
    pub cursor: i64,
    pub created_at: i64,
    pub removed_at: Option<i64>,
}

impl EndpointRow {
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == kind)
    }
}

fn endpoint_from(r: &AnyRow) -> Result<EndpointRow, StoreError> {
    let events: String = r.try_get("events")?;
    Ok(EndpointRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        url: r.try_get("url")?,
        events: events.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
        secret: r.try_get("secret")?,
        cursor: r.try_get("cursor")?,
        created_at: r.try_get("created_at")?,
        removed_at: r.try_get("removed_at")?,
    })
}

/// One event owed to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub endpoint_id: String,
    pub event_seq: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn delivery_from(r: &AnyRow) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        endpoint_id: r.try_get("endpoint_id")?,
        event_seq: r.try_get("event_seq")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// `delivered`, `pending` (retry at `next_attempt_at`) or `failed`.
    pub state: &'static str,
    pub next_attempt_at: i64,
    /// The HTTP status, when the endpoint answered.
    pub status: Option<i64>,
    /// Why it failed; never payload content.
    pub error: Option<String>,
    pub at: i64,
}

/// Stores a new endpoint. Its cursor starts at the newest event: it receives what happens
/// from now on.
pub async fn insert_endpoint(tx: &mut Tx, e: &EndpointRow) -> Result<(), StoreError> {
    let newest: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM message_events").fetch_one(tx.conn().await?).await?;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, tenant, url, events, secret, cursor, created_at, removed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(&e.id)
    .bind(&e.tenant)
    .bind(&e.url)
    .bind(e.events.join(","))
    .bind(&e.secret)
    .bind(newest)
    .bind(e.created_at)
    .execute(tx.conn().await?)
    .await?;
    Ok(())
}

/// Marks an endpoint removed and gives up what was still owed to it. Returns whether it was
/// active until now.
pub async fn remove_endpoint(tx: &mut Tx, id: &str, at: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE webhook_endpoints SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(tx.conn().await?)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint removed', updated_at = $1 \
         WHERE endpoint_id = $2 AND state = 'pending'",
    )
    .bind(at)
    .bind(id)
    .execute(tx.conn().await?)
    .await?;
    Ok(true)
}

impl Store {
    /// Every endpoint, oldest first; removed ones too when `with_removed`.
    pub async fn webhook_endpoints(&self, with_removed: bool) -> Result<Vec<EndpointRow>, StoreError> {
        let sql = if with_removed {
            "SELECT * FROM webhook_endpoints ORDER BY created_at"
        } else {
            "SELECT * FROM webhook_endpoints WHERE removed_at IS NULL ORDER BY created_at"
        };
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        rows.iter().map(endpoint_from).collect()
    }

    pub async fn webhook_endpoint(&self, id: &str) -> Result<Option<EndpointRow>, StoreError> {
        let row =
            sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(endpoint_from).transpose()
    }

    /// Moves an active endpoint's cursor over up to `limit` newer events of its tenant (and
    /// past other tenants' events) and owes it those of the kinds it receives, in one
    /// transaction. Returns how many events it owes now.
    pub async fn fan_out_webhook_events(&self, endpoint_id: &str, now: i64, limit: i64) -> Result<u64, StoreError> {
        let id = endpoint_id.to_owned();
        self.write(move |tx| {
                Box::pin(async move {
                    let Some(row) = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1 AND removed_at IS NULL")
                        .bind(&id)
                        .fetch_optional(tx.conn().await?)
                        .await?
                    else {
                        return Ok(0);
                    };
                    let endpoint = endpoint_from(&row)?;
                    // Every event up to the horizon is committed: the cursor may pass other
                    // tenants' events up to it.
                    let newest = events::horizon(tx).await?;
                    let events = sqlx::query(
                        "SELECT seq, kind FROM message_events WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
                    )
                    .bind(&endpoint.tenant)
                    .bind(endpoint.cursor)
                    .bind(newest)
                    .bind(limit)
                    .fetch_all(tx.conn().await?)
                    .await?;
                    let last = match events.last() {
                        Some(e) if events.len() as i64 >= limit => e.try_get("seq")?,
                        _ => newest,
                    };
                    if last <= endpoint.cursor {
                        return Ok(0);
                    }
                    let mut owed = 0;
                    for event in &events {
                        let kind: String = event.try_get("kind")?;
                        if !endpoint.wants(&kind) {
                            continue;
                        }
                        let seq: i64 = event.try_get("seq")?;
                        sqlx::query(
                            "INSERT INTO webhook_deliveries (endpoint_id, event_seq, state, attempts, next_attempt_at, created_at, updated_at) \
                             VALUES ($1, $2, 'pending', 0, $3, $3, $3) ON CONFLICT (endpoint_id, event_seq) DO NOTHING",
                        )
                        .bind(&id)
                        .bind(seq)
                        .bind(now)
                        .execute(tx.conn().await?)
                        .await?;
                        owed += 1;
                    }
                    sqlx::query("UPDATE webhook_endpoints SET cursor = $1 WHERE id = $2").bind(last).bind(&id).execute(tx.conn().await?).await?;
                    Ok(owed)
                })
            })
            .await
    }

    /// Pending deliveries due at `now` to active endpoints, oldest event first.
    pub async fn due_webhook_deliveries(&self, now: i64, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.* FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND e.removed_at IS NULL \
             ORDER BY d.next_attempt_at, d.event_seq LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// Active endpoints with a pending delivery due at `now`, the longest waiting first: the
    /// dispatcher gives each its own worker, so one slow endpoint holds up only itself.
    pub async fn webhook_endpoints_due(&self, now: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT d.endpoint_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND e.removed_at IS NULL \
             GROUP BY d.endpoint_id ORDER BY MIN(d.next_attempt_at)",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?)
    }

    /// One endpoint's pending deliveries due at `now`, oldest event first.
    pub async fn due_webhook_deliveries_for(
        &self,
        endpoint_id: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'pending' AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at, event_seq LIMIT $3",
        )
        .bind(endpoint_id)
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// When the next pending delivery is due, to sleep until then.
    pub async fn next_webhook_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'")
            .fetch_one(self.pool())
            .await?)
    }

    /// Records one attempt at a delivery.
    pub async fn record_webhook_attempt(
        &self,
        endpoint_id: &str,
        event_seq: i64,
        result: AttemptResult,
    ) -> Result<(), StoreError> {
        let id = endpoint_id.to_owned();
        self.write(move |tx| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, last_status = $3, \
                         last_error = $4, updated_at = $5 WHERE endpoint_id = $6 AND event_seq = $7 AND state = 'pending'",
                    )
                    .bind(result.state)
                    .bind(result.next_attempt_at)
                    .bind(result.status)
                    .bind(&result.error)
                    .bind(result.at)
                    .bind(&id)
                    .bind(event_seq)
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// An endpoint's deliveries, newest event first.
    pub async fn webhook_deliveries(&self, endpoint_id: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY event_seq DESC LIMIT $2")
                .bind(endpoint_id)
                .bind(limit)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// Deliveries per state of an endpoint.
    pub async fn webhook_delivery_counts(&self, endpoint_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(endpoint_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
    }
}
