//! Persistence of the vault's wrapped keys, and the operations that span keys and rows:
//! loading a tenant, kek rotation, master key rotation, crypto-shredding.

use carepost_model::{TenantId, Timestamp};
use carepost_vault::{DataKey, KeyRing, MasterKey, SecretPurpose, WrappedDataKey, WrappedSecret};
use sqlx::Row;

use crate::{Store, StoreError, Tx};

/// The scope of installation-wide secrets (audit signing, log redaction).
pub const SYSTEM_SCOPE: &str = "*";

const TENANT_PURPOSES: &[SecretPurpose] = &[SecretPurpose::Kek, SecretPurpose::BlindIndex];
const SYSTEM_PURPOSES: &[SecretPurpose] = &[SecretPurpose::AuditSigning, SecretPurpose::LogRedaction];

/// What a kek rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRotation {
    pub tenant: TenantId,
    pub from_version: u32,
    pub to_version: u32,
    pub rewrapped: u64,
}

fn secret_from_row(row: &sqlx::any::AnyRow) -> Result<WrappedSecret, StoreError> {
    let purpose: String = row.try_get("purpose")?;
    Ok(WrappedSecret {
        scope: row.try_get("scope")?,
        purpose: SecretPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown secret purpose '{purpose}'")))?,
        version: u32::try_from(row.try_get::<i64, _>("version")?)
            .map_err(|_| StoreError::Corrupt("secret version out of range".into()))?,
        master_key_id: row.try_get("master_key_id")?,
        bytes: row.try_get("wrapped")?,
    })
}

async fn insert_secret(tx: &mut Tx, s: &WrappedSecret) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO vault_secrets (scope, purpose, version, master_key_id, wrapped, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&s.scope)
    .bind(s.purpose.as_str())
    .bind(i64::from(s.version))
    .bind(&s.master_key_id)
    .bind(&s.bytes)
    .bind(Timestamp::now().as_micros())
    .execute(tx.conn().await?)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the wrapped data key of a new object, in the caller's transaction, so that the key
/// and the object it protects become durable together.
pub async fn put_data_key(
    tx: &mut Tx,
    tenant: &TenantId,
    object: &str,
    wrapped: &WrappedDataKey,
) -> Result<(), StoreError> {
    let version =
        wrapped.kek_version().ok_or_else(|| StoreError::Corrupt("wrapped data key without a kek version".into()))?;
    tx.defer(
        "INSERT INTO data_keys (tenant, object, kek_version, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)",
        |b| {
            b.add(tenant.as_str())
                .add(object)
                .add(i64::from(version))
                .add(&wrapped.0)
                .add(Timestamp::now().as_micros());
        },
    )
}

/// Deletes the data key of an object in the caller's transaction: the object becomes
/// unreadable everywhere its ciphertext lives. Returns whether a key was there.
pub async fn shred_data_key(tx: &mut Tx, tenant: &TenantId, object: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM data_keys WHERE tenant = $1 AND object = $2")
        .bind(tenant.as_str())
        .bind(object)
        .execute(tx.conn().await?)
        .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// The master key id the stored secrets were wrapped under, if any secret exists yet.
    pub async fn stored_master_key_id(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT master_key_id FROM vault_secrets LIMIT 1").fetch_optional(self.pool()).await?)
    }

    async fn load_scope(&self, ring: &KeyRing, scope: &str, purposes: &[SecretPurpose]) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT * FROM vault_secrets WHERE scope = $1 ORDER BY purpose, version")
            .bind(scope)
            .fetch_all(self.pool())
            .await?;
        for row in &rows {
            ring.install(&secret_from_row(row)?)?;
        }
        for &purpose in purposes {
            if ring.is_loaded(scope, purpose) {
                continue;
            }
            let wrapped = ring.generate_secret(scope, purpose, 1)?;
            let created = self
                .write({
                    let wrapped = wrapped.clone();
                    move |tx| Box::pin(async move { insert_secret(tx, &wrapped).await })
                })
                .await;
            match created {
                Ok(true) => {}
                // Another process created it first, or the insert failed: use what is stored.
                other => {
                    ring.forget(scope, purpose, 1);
                    other?;
                    let row =
                        sqlx::query("SELECT * FROM vault_secrets WHERE scope = $1 AND purpose = $2 AND version = 1")
                            .bind(scope)
                            .bind(purpose.as_str())
                            .fetch_one(self.pool())
                            .await?;
                    ring.install(&secret_from_row(&row)?)?;
                }
            }
        }
        Ok(())
    }

    /// Loads a tenant's secrets into the key ring, creating them on the tenant's first use.
    pub async fn load_tenant_keys(&self, ring: &KeyRing, tenant: &TenantId) -> Result<(), StoreError> {
        self.load_scope(ring, tenant.as_str(), TENANT_PURPOSES).await
    }

    /// Loads the installation-wide secrets, creating them on first start.
    pub async fn load_system_keys(&self, ring: &KeyRing) -> Result<(), StoreError> {
        self.load_scope(ring, SYSTEM_SCOPE, SYSTEM_PURPOSES).await
    }

    /// Tenants that have keys.
    pub async fn tenants_with_keys(&self) -> Result<Vec<TenantId>, StoreError> {
        let scopes: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT scope FROM vault_secrets WHERE purpose = 'kek' ORDER BY scope")
                .fetch_all(self.pool())
                .await?;
        scopes.iter().map(|s| TenantId::new(s).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    /// The data key of a stored object.
    pub async fn data_key(&self, ring: &KeyRing, tenant: &TenantId, object: &str) -> Result<DataKey, StoreError> {
        let wrapped: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT wrapped FROM data_keys WHERE tenant = $1 AND object = $2")
                .bind(tenant.as_str())
                .bind(object)
                .fetch_optional(self.pool())
                .await?;
        let wrapped = wrapped.ok_or_else(|| StoreError::NotFound(format!("data key of {object}")))?;
        Ok(ring.open_data_key(tenant, object, &WrappedDataKey(wrapped))?)
    }

    /// Crypto-shreds one object.
    pub async fn shred(&self, tenant: &TenantId, object: &str) -> Result<bool, StoreError> {
        let (tenant, object) = (tenant.clone(), object.to_owned());
        self.write(move |tx| Box::pin(async move { shred_data_key(tx, &tenant, &object).await })).await
    }

    /// Creates a new kek version for `tenant`, rewraps every data key under it (payloads are not
    /// touched) and deletes the old kek, all in one transaction.
    ///
    /// Must not run while a server process has the tenant loaded: the caller holds the data
    /// directory lock.
    pub async fn rotate_kek(&self, ring: &KeyRing, tenant: &TenantId) -> Result<KekRotation, StoreError> {
        self.load_tenant_keys(ring, tenant).await?;
        let from_version = ring
            .active_version(tenant.as_str(), SecretPurpose::Kek)
            .ok_or_else(|| StoreError::NotFound(format!("kek of tenant {tenant}")))?;
        let to_version = from_version + 1;
        let mut tx = self.reader().await?;
        tx.begin().await?;
        let new_kek = ring.generate_secret(tenant.as_str(), SecretPurpose::Kek, to_version)?;
        let result = async {
            insert_secret(&mut tx, &new_kek).await?;
            let mut rewrapped = 0u64;
            loop {
                let rows = sqlx::query(
                    "SELECT object, wrapped FROM data_keys WHERE tenant = $1 AND kek_version < $2 LIMIT 1000",
                )
                .bind(tenant.as_str())
                .bind(i64::from(to_version))
                .fetch_all(tx.conn().await?)
                .await?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    let object: String = row.try_get("object")?;
                    let old = WrappedDataKey(row.try_get("wrapped")?);
                    let new = ring.rewrap_data_key(tenant, &object, &old)?;
                    sqlx::query(
                        "UPDATE data_keys SET wrapped = $1, kek_version = $2 WHERE tenant = $3 AND object = $4",
                    )
                    .bind(&new.0)
                    .bind(i64::from(to_version))
                    .bind(tenant.as_str())
                    .bind(&object)
                    .execute(tx.conn().await?)
                    .await?;
                    rewrapped += 1;
                }
            }
            sqlx::query("DELETE FROM vault_secrets WHERE scope = $1 AND purpose = 'kek' AND version < $2")
                .bind(tenant.as_str())
                .bind(i64::from(to_version))
                .execute(tx.conn().await?)
                .await?;
            tx.execute("COMMIT").await?;
            Ok::<u64, StoreError>(rewrapped)
        }
        .await;
        match result {
            Ok(rewrapped) => {
                for v in 1..to_version {
                    ring.forget(tenant.as_str(), SecretPurpose::Kek, v);
                }
                Ok(KekRotation { tenant: tenant.clone(), from_version, to_version, rewrapped })
            }
            Err(e) => {
                let _ = tx.rollback().await;
                ring.forget(tenant.as_str(), SecretPurpose::Kek, to_version);
                Err(e)
            }
        }
    }

    /// Rewraps every stored secret under `new_master`, in one transaction. The caller installs
    /// the new master key where the configuration expects it once this returns.
    pub async fn rotate_master_key(&self, ring: &KeyRing, new_master: &MasterKey) -> Result<u64, StoreError> {
        let mut tx = self.reader().await?;
        tx.begin().await?;
        let result = async {
            let rows = sqlx::query("SELECT * FROM vault_secrets").fetch_all(tx.conn().await?).await?;
            let mut count = 0;
            for row in &rows {
                let old = secret_from_row(row)?;
                let new = ring.rewrap_secret(&old, new_master)?;
                sqlx::query("UPDATE vault_secrets SET wrapped = $1, master_key_id = $2 WHERE scope = $3 AND purpose = $4 AND version = $5")
                    .bind(&new.bytes)
                    .bind(&new.master_key_id)
                    .bind(&new.scope)
                    .bind(new.purpose.as_str())
                    .bind(i64::from(new.version))
                    .execute(tx.conn().await?)
                    .await?;
                count += 1;
            }
            tx.execute("COMMIT").await?;
            Ok::<u64, StoreError>(count)
        }
        .await;
        if result.is_err() {
            let _ = tx.rollback().await;
        }
        result
    }
}
