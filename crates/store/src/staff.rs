//! What staff sign-in keeps beside the accounts of [`crate::accounts`] and the sign-in state
//! every kind of account shares ([`crate::signin`]: sessions, failures and lockout, TOTP):
//! WebAuthn security keys (sealed under the account's data key by the caller), the WebAuthn
//! ceremony a session is in, the client addresses each account signed in from (keyed
//! hashes), and organization settings.

use crate::signin::{AccountKind, end_account_sessions};
use crate::{Store, StoreError};

/// The organization setting that makes every staff account use a second factor.
pub const REQUIRE_MFA: &str = "require_mfa";

/// An account's sign-in state beyond its password.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StaffAuth {
    pub totp: Option<Vec<u8>>,
    pub totp_pending: Option<Vec<u8>>,
    pub locked_until: Option<i64>,
    pub security_keys: i64,
    /// Failed sign-ins counted in the current window.
    pub failures: i64,
}

impl StaffAuth {
    /// Whether the account has any second factor.
    pub fn has_mfa(&self) -> bool {
        self.totp.is_some() || self.security_keys > 0
    }

    /// Whether the account is locked at `now` (microseconds).
    pub fn locked_at(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}

/// A registered security key; `credential` is sealed by the caller.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecurityKeyRow {
    pub id: String,
    pub name: String,
    pub credential_id: Vec<u8>,
    pub credential: Vec<u8>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What [`Store::note_staff_ip`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpSeen {
    /// The account never signed in from this address before.
    pub new_address: bool,
    /// The account had signed in before (from any address): the first sign-in of an account
    /// is not news to its owner.
    pub seen_before: bool,
}

impl Store {
    pub async fn staff_auth(&self, account_id: &str) -> Result<Option<StaffAuth>, StoreError> {
        let row = sqlx::query_as(
            "SELECT totp, totp_pending, locked_until, failures, \
             (SELECT COUNT(*) FROM staff_security_keys k WHERE k.account_id = a.id) AS security_keys \
             FROM accounts a WHERE id = $1",
        )
        .bind(account_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row)
    }

    /// Lifts a lockout (an administrator's decision, e.g. `carepost user unlock`).
    pub async fn staff_unlock(&self, account_id: &str) -> Result<(), StoreError> {
        self.simple_update(
            "UPDATE accounts SET failures = 0, first_failure_at = NULL, locked_until = NULL WHERE id = $1",
            account_id,
        )
        .await
    }

    /// Removes every second factor of an account (a lost phone and key): the next sign-in
    /// asks to enroll again when MFA is required.
    pub async fn staff_reset_mfa(&self, account_id: &str) -> Result<(), StoreError> {
        let id = account_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE accounts SET totp = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = $1",
                )
                .bind(&id)
                .execute(tx.conn().await?)
                .await?;
                sqlx::query("DELETE FROM staff_security_keys WHERE account_id = $1")
                    .bind(&id)
                    .execute(tx.conn().await?)
                    .await?;
                end_account_sessions(tx, AccountKind::Staff, &id).await?;
                Ok(())
            })
        })
        .await
    }

    async fn simple_update(&self, sql: &'static str, account_id: &str) -> Result<(), StoreError> {
        let id = account_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(sql).bind(&id).execute(tx.conn().await?).await?;
                Ok(())
            })
        })
        .await
    }

    pub async fn staff_security_keys(&self, account_id: &str) -> Result<Vec<SecurityKeyRow>, StoreError> {
        let rows = sqlx::query_as("SELECT * FROM staff_security_keys WHERE account_id = $1 ORDER BY created_at")
            .bind(account_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows)
    }

    /// Registers a security key. Fails with [`StoreError::Conflict`] when the credential is
    /// registered already (to this or any other account).
    pub async fn add_staff_security_key(&self, account_id: &str, key: SecurityKeyRow) -> Result<(), StoreError> {
        let account = account_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let taken: Option<String> =
                    sqlx::query_scalar("SELECT id FROM staff_security_keys WHERE credential_id = $1")
                        .bind(&key.credential_id)
                        .fetch_optional(tx.conn().await?)
                        .await?;
                if taken.is_some() {
                    return Err(StoreError::Conflict("this security key is registered already".into()));
                }
                sqlx::query(
                    "INSERT INTO staff_security_keys (id, account_id, name, credential_id, credential, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.id)
                .bind(&account)
                .bind(&key.name)
                .bind(&key.credential_id)
                .bind(&key.credential)
                .bind(key.created_at)
                .execute(tx.conn().await?)
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Notes a security key's use and its updated (sealed) credential, whose signature
    /// counter moved on.
    pub async fn used_staff_security_key(&self, key_id: &str, credential: Vec<u8>, now: i64) -> Result<(), StoreError> {
        let id = key_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE staff_security_keys SET credential = $1, last_used_at = $2 WHERE id = $3")
                    .bind(&credential)
                    .bind(now)
                    .bind(&id)
                    .execute(tx.conn().await?)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Keeps (or with `None` clears) the WebAuthn ceremony a session is in the middle of.
    pub async fn set_staff_ceremony(&self, id_hash: &[u8], ceremony: Option<String>) -> Result<(), StoreError> {
        let hash = id_hash.to_vec();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE staff_sessions SET ceremony = $1 WHERE id_hash = $2")
                    .bind(&ceremony)
                    .bind(&hash)
                    .execute(tx.conn().await?)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Records a sign-in from the address with keyed hash `ip_hash`: whether the account had
    /// never signed in from it, and whether it had signed in from anywhere before.
    pub async fn note_staff_ip(&self, account_id: &str, ip_hash: Vec<u8>, now: i64) -> Result<IpSeen, StoreError> {
        let id = account_id.to_owned();
        self.write(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE staff_seen_ips SET last_seen_at = $1 WHERE account_id = $2 AND ip_hash = $3")
                        .bind(now)
                        .bind(&id)
                        .bind(&ip_hash)
                        .execute(tx.conn().await?)
                        .await?;
                    if done.rows_affected() == 1 {
                        return Ok(IpSeen { new_address: false, seen_before: true });
                    }
                    let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM staff_seen_ips WHERE account_id = $1").bind(&id).fetch_one(tx.conn().await?).await?;
                    sqlx::query("INSERT INTO staff_seen_ips (account_id, ip_hash, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $3)")
                        .bind(&id)
                        .bind(&ip_hash)
                        .bind(now)
                        .execute(tx.conn().await?)
                        .await?;
                    Ok(IpSeen { new_address: true, seen_before: others > 0 })
                })
            })
            .await
    }

    /// An organization setting of `tenant`, if it was ever set.
    pub async fn org_setting(&self, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM org_settings WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn set_org_setting(
        &self,
        tenant: &str,
        name: &str,
        value: &str,
        by: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (tenant, name, value, by) = (tenant.to_owned(), name.to_owned(), value.to_owned(), by.to_owned());
        self.write(move |tx| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO org_settings (tenant, name, value, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, \
                         updated_by = excluded.updated_by",
                    )
                    .bind(&tenant)
                    .bind(&name)
                    .bind(&value)
                    .bind(now)
                    .bind(&by)
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Whether `tenant` requires a second factor of every staff account.
    pub async fn mfa_required(&self, tenant: &str) -> Result<bool, StoreError> {
        Ok(self.org_setting(tenant, REQUIRE_MFA).await?.is_some_and(|v| v == "on"))
    }
}
