//! Rows of DKIM signing keys. Key generation, sealing and the choice of signing keys are
//! the delivery crate's.

use sqlx::Row;

use crate::{Store, StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKeyRow {
    pub id: String,
    pub tenant: String,
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
    /// Sealed under the data key of object `dkim/<id>`.
    pub private_key: Vec<u8>,
    pub created_at: i64,
    pub active_from: i64,
    pub retired_at: Option<i64>,
}

fn row_from(r: &sqlx::any::AnyRow) -> Result<DkimKeyRow, StoreError> {
    Ok(DkimKeyRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        domain: r.try_get("domain")?,
        selector: r.try_get("selector")?,
        algorithm: r.try_get("algorithm")?,
        public_key: r.try_get("public_key")?,
        private_key: r.try_get("private_key")?,
        created_at: r.try_get("created_at")?,
        active_from: r.try_get("active_from")?,
        retired_at: r.try_get("retired_at")?,
    })
}

pub async fn insert(tx: &mut Tx, k: &DkimKeyRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dkim_keys (id, tenant, domain, selector, algorithm, public_key, private_key, created_at, active_from, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&k.id)
    .bind(&k.tenant)
    .bind(&k.domain)
    .bind(&k.selector)
    .bind(&k.algorithm)
    .bind(&k.public_key)
    .bind(&k.private_key)
    .bind(k.created_at)
    .bind(k.active_from)
    .bind(k.retired_at)
    .execute(tx.conn().await?)
    .await?;
    Ok(())
}

/// Sets when the domain's keys that are not yet retiring stop being published, except
/// those in `keep`. Returns how many keys it scheduled.
pub async fn schedule_retirement(tx: &mut Tx, domain: &str, at: i64, keep: &[String]) -> Result<u64, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM dkim_keys WHERE domain = $1 AND retired_at IS NULL")
        .bind(domain)
        .fetch_all(tx.conn().await?)
        .await?;
    let mut n = 0;
    for id in ids.into_iter().filter(|id| !keep.contains(id)) {
        sqlx::query("UPDATE dkim_keys SET retired_at = $1 WHERE id = $2")
            .bind(at)
            .bind(&id)
            .execute(tx.conn().await?)
            .await?;
        n += 1;
    }
    Ok(n)
}

impl Store {
    /// DKIM keys, of one domain or all, oldest first.
    pub async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKeyRow>, StoreError> {
        let rows = match domain {
            Some(d) => {
                sqlx::query("SELECT * FROM dkim_keys WHERE domain = $1 ORDER BY active_from, algorithm")
                    .bind(d)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM dkim_keys ORDER BY domain, active_from, algorithm")
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(row_from).collect()
    }
}
