//! Rows of the audit log. The chain logic (hashing, signing, verifying) belongs to the audit
//! crate; this module only stores and reads rows, and never updates or deletes them.

use sqlx::Row;

use crate::backend::postgres::lock;
use crate::{Backend, Store, StoreError, Tx};

/// One audit record as stored. `details` is a JSON object of ids and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source_ip: Option<String>,
    pub outcome: String,
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// A signed statement that the chain up to `seq` had hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub at: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

fn row_to_record(row: &sqlx::any::AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        source_ip: row.try_get("source_ip")?,
        outcome: row.try_get("outcome")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// The last record's sequence number and hash, inside the caller's transaction so that
/// appends in one group commit chain onto each other. Read once per transaction: after
/// that the transaction knows the head, since it writes every record after it.
///
/// On PostgreSQL, where several nodes append to one chain, the first read takes a lock that
/// the transaction holds until it ends: the chain is serialized through the database, and
/// the head read here stays the head until the caller's record is committed after it.
pub async fn head(tx: &mut Tx) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    if tx.audit_head_known {
        return Ok(tx.audit_seen.last().cloned());
    }
    if tx.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock::AUDIT).execute(tx.conn().await?).await?;
    }
    let row = sqlx::query("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
        .fetch_optional(tx.conn().await?)
        .await?;
    let head: Option<(i64, Vec<u8>)> =
        row.map(|r| Ok::<_, StoreError>((r.try_get("seq")?, r.try_get("hash")?))).transpose()?;
    tx.audit_seen.extend(head.clone());
    tx.audit_head_known = true;
    Ok(head)
}

/// The stored hash of record `seq`, if there is one.
pub async fn hash_at(tx: &mut Tx, seq: i64) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some((_, hash)) = tx.audit_seen.iter().find(|(s, _)| *s == seq) {
        return Ok(Some(hash.clone()));
    }
    Ok(sqlx::query_scalar("SELECT hash FROM audit_records WHERE seq = $1")
        .bind(seq)
        .fetch_optional(tx.conn().await?)
        .await?)
}

/// Appends a record (sent with the transaction's other writes, see [`Tx`]).
pub async fn insert(tx: &mut Tx, r: &AuditRow) -> Result<(), StoreError> {
    tx.defer(
        "INSERT INTO audit_records (seq, at, actor, action, target, source_ip, outcome, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        |b| {
            b.add(r.seq)
                .add(r.at)
                .add(&r.actor)
                .add(&r.action)
                .add(&r.target)
                .add(&r.source_ip)
                .add(&r.outcome)
                .add(&r.details)
                .add(&r.prev_hash)
                .add(&r.hash);
        },
    )?;
    tx.audit_seen.push((r.seq, r.hash.clone()));
    Ok(())
}

pub async fn insert_checkpoint(tx: &mut Tx, c: &CheckpointRow) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.at)
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(tx.conn().await?)
        .await?;
    Ok(())
}

pub async fn last_checkpoint(tx: &mut Tx) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints").fetch_one(tx.conn().await?).await?)
}

impl Store {
    /// The last record's sequence number, outside any transaction.
    pub async fn audit_head_seq(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MAX(seq) FROM audit_records").fetch_one(self.pool()).await?)
    }

    /// The newest checkpoint's sequence number, outside any transaction.
    pub async fn audit_last_checkpoint(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints").fetch_one(self.pool()).await?)
    }

    /// Records with `seq > after`, in order, at most `limit` of them.
    pub async fn audit_records_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row_to_record).collect()
    }

    /// Records at or after a time, in order, at most `limit`, starting after `after_seq`.
    pub async fn audit_records_since(
        &self,
        since_micros: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_records WHERE at >= $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(since_micros)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row_to_record).collect()
    }

    /// The newest `limit` records, newest first (the staff pages' read-only view).
    pub async fn audit_records_latest(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_records ORDER BY seq DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row_to_record).collect()
    }

    pub async fn audit_checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        self.audit_checkpoints_after(i64::MIN).await
    }

    /// Checkpoints with `seq > after`, in order.
    pub async fn audit_checkpoints_after(&self, after: i64) -> Result<Vec<CheckpointRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_checkpoints WHERE seq > $1 ORDER BY seq")
            .bind(after)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckpointRow {
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                    at: r.try_get("at")?,
                    key_id: r.try_get("key_id")?,
                    signature: r.try_get("signature")?,
                })
            })
            .collect()
    }
}
