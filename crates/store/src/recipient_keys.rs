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
    /// trusted | unconfirmed | confirmed | held (see [`state`]).
    pub state: String,
}

/// How far a stored key may be used.
pub mod state {
    /// Imported, found through WKD, or learned with a chain to a trust anchor: used.
    pub const TRUSTED: &str = "trusted";
    /// Learned without an anchor: not used for encryption until an operator confirms it.
    pub const UNCONFIRMED: &str = "unconfirmed";
    /// Confirmed by an operator: used.
    pub const CONFIRMED: &str = "confirmed";
    /// Learned for an address that already had another key: never used; for review.
    pub const HELD: &str = "held";

    /// Whether delivery may encrypt to a key in this state.
    pub fn usable(state: &str) -> bool {
        state == TRUSTED || state == CONFIRMED
    }
}

/// What [`insert_learned`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    /// The same key was already stored for the address (its capabilities are refreshed).
    Known { id: String, state: String },
    /// A new row was added in `state`: the given first-key state, or held when the address
    /// already had any other key.
    Added { id: String, state: String },
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

fn from_row(r: &sqlx::any::AnyRow) -> Result<RecipientKeyRow, StoreError> {
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
        state: r.try_get("state")?,
    })
}

async fn same_key(tx: &mut Tx, k: &RecipientKeyRow) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, state FROM recipient_keys WHERE tenant = $1 AND kind = $2 AND address_index = $3 AND fingerprint = $4",
    )
    .bind(&k.tenant)
    .bind(&k.kind)
    .bind(&k.address_index)
    .bind(&k.fingerprint)
    .fetch_optional(tx.conn().await?)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("state")?))).transpose()
}

async fn refresh_capabilities(tx: &mut Tx, id: &str, capabilities: &Option<String>) -> Result<(), StoreError> {
    // Keep what is known, but learn newer capabilities (a correspondent's newer client).
    if capabilities.is_some() {
        sqlx::query("UPDATE recipient_keys SET capabilities = $1 WHERE id = $2")
            .bind(capabilities)
            .bind(id)
            .execute(tx.conn().await?)
            .await?;
    }
    Ok(())
}

async fn insert_row(tx: &mut Tx, k: &RecipientKeyRow, state: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO recipient_keys (id, tenant, kind, address_index, address, fingerprint, material, source, \
         capabilities, not_after, created_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
    .bind(state)
    .execute(tx.conn().await?)
    .await?;
    Ok(())
}

/// Inserts a key an operator vouches for (import) or a trusted source found (WKD), in the
/// row's state, unless the same key is already recorded for the address; returns the id of
/// the row that holds it, and whether it is new. An operator's import of a key that waits
/// for review (unconfirmed or held) is the review: it becomes trusted.
pub async fn insert(tx: &mut Tx, k: &RecipientKeyRow) -> Result<(String, bool), StoreError> {
    if let Some((id, existing)) = same_key(tx, k).await? {
        refresh_capabilities(tx, &id, &k.capabilities).await?;
        if k.source == "import" && !state::usable(&existing) {
            sqlx::query("UPDATE recipient_keys SET state = $1 WHERE id = $2")
                .bind(state::TRUSTED)
                .bind(&id)
                .execute(tx.conn().await?)
                .await?;
        }
        return Ok((id, false));
    }
    insert_row(tx, k, &k.state).await?;
    Ok((k.id.clone(), true))
}

/// Records a key learned from signed mail. The check and the insert share the transaction,
/// so two messages arriving together cannot both become an address's first key: the row
/// takes `k.state` only when the address has no key at all (of any kind or state), and is
/// held otherwise. A learned key never replaces or outranks one already known.
pub async fn insert_learned(tx: &mut Tx, k: &RecipientKeyRow) -> Result<Learned, StoreError> {
    // Whether a key is held depends on the keys already stored: two nodes learning two keys
    // for one address at once must not both see none and both add theirs unheld.
    tx.serialize_on(crate::backend::postgres::lock::RECIPIENT_KEYS).await?;
    if let Some((id, state)) = same_key(tx, k).await? {
        refresh_capabilities(tx, &id, &k.capabilities).await?;
        return Ok(Learned::Known { id, state });
    }
    let others: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM recipient_keys WHERE tenant = $1 AND address_index = $2")
            .bind(&k.tenant)
            .bind(&k.address_index)
            .fetch_one(tx.conn().await?)
            .await?;
    let state = if others > 0 { state::HELD } else { k.state.as_str() };
    insert_row(tx, k, state).await?;
    Ok(Learned::Added { id: k.id.clone(), state: state.to_owned() })
}

/// Marks an unconfirmed or held key confirmed; returns the state it had, or `None` when the
/// tenant has no such key. A key already in use is left as it is.
pub async fn confirm(tx: &mut Tx, tenant: &str, id: &str) -> Result<Option<String>, StoreError> {
    let current: Option<String> = sqlx::query_scalar("SELECT state FROM recipient_keys WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(tx.conn().await?)
        .await?;
    if let Some(current) = &current
        && !state::usable(current)
    {
        sqlx::query("UPDATE recipient_keys SET state = $1 WHERE tenant = $2 AND id = $3")
            .bind(state::CONFIRMED)
            .bind(tenant)
            .bind(id)
            .execute(tx.conn().await?)
            .await?;
    }
    Ok(current)
}

pub async fn delete(tx: &mut Tx, tenant: &str, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM recipient_keys WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx.conn().await?)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn record_lookup(
    tx: &mut Tx,
    tenant: &str,
    address_index: &[u8],
    method: &str,
    at: i64,
    result: LookupResult,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_lookups (tenant, address_index, method, checked_at, found) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant, address_index, method) DO UPDATE SET checked_at = excluded.checked_at, found = excluded.found",
    )
    .bind(tenant)
    .bind(address_index)
    .bind(method)
    .bind(at)
    .bind(result.code())
    .execute(tx.conn().await?)
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

    pub async fn recipient_keys_for(
        &self,
        tenant: &str,
        address_index: &[u8],
    ) -> Result<Vec<RecipientKeyRow>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM recipient_keys WHERE tenant = $1 AND address_index = $2 ORDER BY created_at")
                .bind(tenant)
                .bind(address_index)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(from_row).collect()
    }

    /// When `method` last looked `address_index` up, and what it found.
    pub async fn last_lookup(
        &self,
        tenant: &str,
        address_index: &[u8],
        method: &str,
    ) -> Result<Option<(i64, LookupResult)>, StoreError> {
        let row = sqlx::query(
            "SELECT checked_at, found FROM key_lookups WHERE tenant = $1 AND address_index = $2 AND method = $3",
        )
        .bind(tenant)
        .bind(address_index)
        .bind(method)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get("checked_at")?, LookupResult::from_code(r.try_get("found")?)))).transpose()
    }
}
