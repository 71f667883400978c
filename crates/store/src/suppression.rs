//! Rows of the suppression list. Sealing and blind indexing are the delivery crate's.

use std::collections::HashSet;

use sqlx::Row;

use crate::{Store, StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionRow {
    pub tenant: String,
    pub address_index: Vec<u8>,
    pub id: String,
    pub address: Vec<u8>,
    pub reason: String,
    pub detail: Option<Vec<u8>>,
    pub created_at: i64,
}

fn row_from(r: &sqlx::any::AnyRow) -> Result<SuppressionRow, StoreError> {
    Ok(SuppressionRow {
        tenant: r.try_get("tenant")?,
        address_index: r.try_get("address_index")?,
        id: r.try_get("id")?,
        address: r.try_get("address")?,
        reason: r.try_get("reason")?,
        detail: r.try_get("detail")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Adds an entry; returns false (and changes nothing) when the address is already listed.
pub async fn insert(tx: &mut Tx, row: &SuppressionRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO suppressions (tenant, address_index, id, address, reason, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&row.tenant)
    .bind(&row.address_index)
    .bind(&row.id)
    .bind(&row.address)
    .bind(&row.reason)
    .bind(&row.detail)
    .bind(row.created_at)
    .execute(tx.conn().await?)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes an entry; returns its id (to shred its data key) when there was one.
pub async fn delete(tx: &mut Tx, tenant: &str, address_index: &[u8]) -> Result<Option<String>, StoreError> {
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM suppressions WHERE tenant = $1 AND address_index = $2")
        .bind(tenant)
        .bind(address_index)
        .fetch_optional(tx.conn().await?)
        .await?;
    if id.is_some() {
        sqlx::query("DELETE FROM suppressions WHERE tenant = $1 AND address_index = $2")
            .bind(tenant)
            .bind(address_index)
            .execute(tx.conn().await?)
            .await?;
    }
    Ok(id)
}

impl Store {
    /// A tenant's suppression list, oldest first.
    pub async fn suppressions(&self, tenant: &str) -> Result<Vec<SuppressionRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM suppressions WHERE tenant = $1 ORDER BY created_at, id")
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row_from).collect()
    }

    /// Which of `indexes` are on the tenant's suppression list.
    pub async fn suppressed_among(&self, tenant: &str, indexes: &[Vec<u8>]) -> Result<HashSet<Vec<u8>>, StoreError> {
        let mut found = HashSet::new();
        for chunk in indexes.chunks(500) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT address_index FROM suppressions WHERE tenant = $1 AND address_index IN ({})",
                placeholders.join(", ")
            );
            // Only numbered placeholders are formatted into the text; values are bound.
            let mut query = sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            for index in chunk {
                query = query.bind(index);
            }
            found.extend(query.fetch_all(self.pool()).await?);
        }
        Ok(found)
    }
}
