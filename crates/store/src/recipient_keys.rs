//! Rows of the recipient key directory. Parsing, validity and sealing belong to the secure
//! crate's key directory.

use sqlx::Row;

use crate::{Store, StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientKeyRow {
    pub id: String,
    pub tenant: String,
    pub kind: String,
    pub address_index: Vec<u8>,
    pub address: Vec<u8>,
    pub fingerprint: String,
    pub material: Vec<u8>,
    pub source: String,
    pub capabilities: Option<String>,
    pub not_after: Option<i64>,
    pub created_at: i64,
}

/// What a network look-up for an address found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupResult {
    /// Nothing is published for the address.
    Miss,
    Found,
    /// The look-up could not be completed (network, TLS): worth trying again sooner.
    Failed,
}

impl LookupResult {
    fn code(self) -> i64 {
        match self {
            LookupResult::Miss => 0,
            LookupResult::Found => 1,
            LookupResult::Failed => 2,
        }
    }

    fn from_code(code: i64) -> Self {
        match code {
            1 => LookupResult::Found,
            2 => LookupResult::Failed,
            _ => LookupResult::Miss,
        }
    }
}

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<RecipientKeyRow, StoreError> {
    Ok(RecipientKeyRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        kind: r.try_get("kind")?,
        address_index: r.try_get("address_index")?,
        address: r.try_get("address")?,
        fingerprint: r.try_get("fingerprint")?,
        material: r.try_get("material")?,
        source: r.try_get("source")?,
        capabilities: r.try_get("capabilities")?,
        not_after: r.try_get("not_after")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Inserts a key unless the same key is already recorded for the address; returns the id of
/// the row that holds it, and whether it is new.
pub async fn insert(tx: &mut Tx, k: &RecipientKeyRow) -> Result<(String, bool), StoreError> {
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM recipient_keys WHERE tenant = $1 AND kind = $2 AND address_index = $3 AND fingerprint = $4",
    )
    .bind(&k.tenant)
    .bind(&k.kind)
    .bind(&k.address_index)
    .bind(&k.fingerprint)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(id) = existing {
        // Keep what is known, but learn newer capabilities (a correspondent's newer client).
        if k.capabilities.is_some() {
            sqlx::query("UPDATE recipient_keys SET capabilities = $1 WHERE id = $2")
                .bind(&k.capabilities)
                .bind(&id)
                .execute(tx.conn())
                .await?;
        }
        return Ok((id, false));
    }
    sqlx::query(
        "INSERT INTO recipient_keys (id, tenant, kind, address_index, address, fingerprint, material, source, \
         capabilities, not_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&k.id)
    .bind(&k.tenant)
    .bind(&k.kind)
    .bind(&k.address_index)
    .bind(&k.address)
    .bind(&k.fingerprint)
    .bind(&k.material)
    .bind(&k.source)
    .bind(&k.capabilities)
    .bind(k.not_after)
    .bind(k.created_at)
    .execute(tx.conn())
    .await?;
    Ok((k.id.clone(), true))
}

pub async fn delete(tx: &mut Tx, tenant: &str, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM recipient_keys WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn record_lookup(tx: &mut Tx, tenant: &str, address_index: &[u8], method: &str, at: i64, result: LookupResult) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_lookups (tenant, address_index, method, checked_at, found) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant, address_index, method) DO UPDATE SET checked_at = excluded.checked_at, found = excluded.found",
    )
    .bind(tenant)
    .bind(address_index)
    .bind(method)
    .bind(at)
    .bind(result.code())
    .execute(tx.conn())
    .await?;
    Ok(())
}

impl Store {
    pub async fn recipient_keys(&self, tenant: &str) -> Result<Vec<RecipientKeyRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM recipient_keys WHERE tenant = $1 ORDER BY created_at")
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn recipient_keys_for(&self, tenant: &str, address_index: &[u8]) -> Result<Vec<RecipientKeyRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM recipient_keys WHERE tenant = $1 AND address_index = $2 ORDER BY created_at")
            .bind(tenant)
            .bind(address_index)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// When `method` last looked `address_index` up, and what it found.
    pub async fn last_lookup(&self, tenant: &str, address_index: &[u8], method: &str) -> Result<Option<(i64, LookupResult)>, StoreError> {
        let row = sqlx::query("SELECT checked_at, found FROM key_lookups WHERE tenant = $1 AND address_index = $2 AND method = $3")
            .bind(tenant)
            .bind(address_index)
            .bind(method)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get("checked_at")?, LookupResult::from_code(r.try_get("found")?)))).transpose()
    }
}
