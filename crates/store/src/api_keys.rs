//! API keys of the REST API and the messages sent with them.
//!
//! A key is stored as the SHA-256 of its secret (computed by the caller; the secret never
//! reaches this module), with its scopes, the networks it may be used from and its expiry.
//! Names, scopes and networks are the operator's own words, not PHI, and are kept in clear.

use carepost_model::{Id, TenantId, Timestamp};
use sqlx::Row;

use crate::{Store, StoreError};

/// An API key as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    /// CIDRs the key may be used from; empty: anywhere.
    pub networks: Vec<String>,
    /// Requests the key may make per minute.
    pub rate_per_minute: u32,
    /// Senders the key may use in From: addresses and `@domain`s, lowercased; empty: any.
    pub allowed_from: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Neither revoked nor expired at `now` (microseconds).
    pub fn is_usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// What `create_api_key` needs.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub tenant: TenantId,
    pub name: String,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub networks: Vec<String>,
    pub rate_per_minute: u32,
    pub allowed_from: Vec<String>,
    pub expires_at: Option<i64>,
}

fn split(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn key_from(r: &sqlx::any::AnyRow) -> Result<ApiKey, StoreError> {
    let tenant: String = r.try_get("tenant")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        tenant: TenantId::new(&tenant).map_err(|e| StoreError::Corrupt(format!("api key tenant: {e:?}")))?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        scopes: split(&r.try_get::<String, _>("scopes")?),
        networks: split(&r.try_get::<String, _>("networks")?),
        rate_per_minute: u32::try_from(r.try_get::<i64, _>("rate_per_minute")?).unwrap_or(u32::MAX),
        allowed_from: split(&r.try_get::<String, _>("allowed_from")?),
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    /// Stores a new key. Names are unique among a tenant's unrevoked keys.
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        let key = ApiKey {
            id: Id::new().to_string(),
            tenant: new.tenant,
            name: new.name,
            prefix: new.prefix,
            scopes: new.scopes,
            networks: new.networks,
            rate_per_minute: new.rate_per_minute,
            allowed_from: new.allowed_from,
            expires_at: new.expires_at,
            created_at: Timestamp::now().as_micros(),
            revoked_at: None,
        };
        let (k, hash) = (key.clone(), new.secret_hash);
        self.write(move |tx| {
                Box::pin(async move {
                    let taken: Option<String> =
                        sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant = $1 AND name = $2 AND revoked_at IS NULL")
                            .bind(k.tenant.as_str())
                            .bind(&k.name)
                            .fetch_optional(tx.conn().await?)
                            .await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict(format!("an API key named '{}' already exists", k.name)));
                    }
                    sqlx::query(
                        "INSERT INTO api_keys (id, tenant, name, prefix, secret_hash, scopes, networks, rate_per_minute, expires_at, created_at, allowed_from) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(&k.id)
                    .bind(k.tenant.as_str())
                    .bind(&k.name)
                    .bind(&k.prefix)
                    .bind(&hash)
                    .bind(k.scopes.join(","))
                    .bind(k.networks.join(","))
                    .bind(i64::from(k.rate_per_minute))
                    .bind(k.expires_at)
                    .bind(k.created_at)
                    .bind(k.allowed_from.join(","))
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(key)
    }

    /// Every key, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at").fetch_all(self.pool()).await?;
        rows.iter().map(key_from).collect()
    }

    /// The key whose secret hashes to `hash`, revoked or not.
    pub async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>, StoreError> {
        let row =
            sqlx::query("SELECT * FROM api_keys WHERE secret_hash = $1").bind(hash).fetch_optional(self.pool()).await?;
        row.as_ref().map(key_from).transpose()
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(key_from).transpose()
    }

    /// Revokes a key. Returns whether it was active until now.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(Timestamp::now().as_micros())
                    .bind(&id)
                    .execute(tx.conn().await?)
                    .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Records that `key_id` submitted `message_id`, under an idempotency hash if it gave one.
    /// [`StoreError::Conflict`] when the hash is already taken.
    pub async fn record_api_message(
        &self,
        key_id: &str,
        tenant: &TenantId,
        message_id: &str,
        idempotency_hash: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let (key, tenant, message) = (key_id.to_owned(), tenant.as_str().to_owned(), message_id.to_owned());
        self.write(move |tx| {
                Box::pin(async move {
                    if let Some(hash) = &idempotency_hash {
                        let taken: Option<String> =
                            sqlx::query_scalar("SELECT message_id FROM api_messages WHERE key_id = $1 AND idempotency_hash = $2")
                                .bind(&key)
                                .bind(hash)
                                .fetch_optional(tx.conn().await?)
                                .await?;
                        if taken.is_some() {
                            return Err(StoreError::Conflict("idempotency key already used".into()));
                        }
                    }
                    sqlx::query(
                        "INSERT INTO api_messages (message_id, key_id, tenant, idempotency_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&message)
                    .bind(&key)
                    .bind(&tenant)
                    .bind(&idempotency_hash)
                    .bind(Timestamp::now().as_micros())
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// The message a key already submitted under this idempotency hash.
    pub async fn api_message_by_idempotency(&self, key_id: &str, hash: &[u8]) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT message_id FROM api_messages WHERE key_id = $1 AND idempotency_hash = $2")
            .bind(key_id)
            .bind(hash)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The tenant of a message submitted through the API, if it was.
    pub async fn api_message_tenant(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT tenant FROM api_messages WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(self.pool())
            .await?)
    }
}
