//! What every kind of account keeps for signing in, written once for both kinds: sessions
//! (only a hash of the id), failed sign-ins and the lock they lead to, and the TOTP secret
//! with its last accepted time step. Staff accounts keep these in `accounts` and
//! `staff_sessions`, portal recipients in `portal_accounts` and `portal_sessions`; the
//! columns have the same names and meaning in both, so one statement serves either table.
//! The rules (when to lock, when a session ends) are the identity room's; this module stores.

use sqlx::Row;

use crate::{Store, StoreError, Tx};

/// Which kind of account a sign-in row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// Staff and API accounts: `accounts`, `staff_sessions`.
    Staff,
    /// Portal recipients: `portal_accounts`, `portal_sessions`.
    Portal,
}

impl AccountKind {
    fn accounts(self) -> &'static str {
        match self {
            AccountKind::Staff => "accounts",
            AccountKind::Portal => "portal_accounts",
        }
    }

    fn sessions(self) -> &'static str {
        match self {
            AccountKind::Staff => "staff_sessions",
            AccountKind::Portal => "portal_sessions",
        }
    }

    /// Only staff sessions hold a WebAuthn ceremony in progress.
    fn has_ceremony(self) -> bool {
        self == AccountKind::Staff
    }

    fn name(self) -> &'static str {
        match self {
            AccountKind::Staff => "account",
            AccountKind::Portal => "portal account",
        }
    }
}

/// Statements differ between the kinds only by table name, which comes from the closed
/// [`AccountKind`], never from input.
fn sql(kind_sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(kind_sql)
}

/// A session as stored; the caller keeps the id, the store only its hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub account_id: String,
    pub stage: String,
    /// A WebAuthn ceremony in progress (staff sessions only; the portal's table has no such
    /// column, so it is always `None` there).
    #[sqlx(default)]
    pub ceremony: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// When failed sign-ins lock an account, in microseconds: `failures` within `window` lock it
/// for `lock_for`. One policy per kind of account, for every way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub failures: i64,
    pub window: i64,
    pub lock_for: i64,
}

impl Default for Lockout {
    /// Five failures within 15 minutes lock for 15 minutes (`[staff]`'s defaults).
    fn default() -> Self {
        Lockout { failures: 5, window: 15 * 60 * 1_000_000, lock_for: 15 * 60 * 1_000_000 }
    }
}

/// A sign-in failure as recorded: how many in the current window, and the lock if one began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: i64,
    pub locked_until: Option<i64>,
}

/// Ends every session of an account, inside a caller's transaction.
pub(crate) async fn end_account_sessions(tx: &mut Tx, kind: AccountKind, account_id: &str) -> Result<(), StoreError> {
    sqlx::query(sql(format!("DELETE FROM {} WHERE account_id = $1", kind.sessions())))
        .bind(account_id)
        .execute(tx.conn().await?)
        .await?;
    Ok(())
}

impl Store {
    pub async fn insert_session(&self, kind: AccountKind, id_hash: Vec<u8>, s: SessionRow) -> Result<(), StoreError> {
        if s.ceremony.is_some() && !kind.has_ceremony() {
            return Err(StoreError::Conflict("portal sessions hold no security-key ceremony".into()));
        }
        self.write(move |tx| {
            Box::pin(async move {
                let statement = if kind.has_ceremony() {
                    format!(
                        "INSERT INTO {} (id_hash, account_id, stage, created_at, last_seen_at, expires_at, ceremony) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        kind.sessions()
                    )
                } else {
                    format!(
                        "INSERT INTO {} (id_hash, account_id, stage, created_at, last_seen_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        kind.sessions()
                    )
                };
                let query = sqlx::query(sql(statement))
                    .bind(&id_hash)
                    .bind(&s.account_id)
                    .bind(&s.stage)
                    .bind(s.created_at)
                    .bind(s.last_seen_at)
                    .bind(s.expires_at);
                let query = if kind.has_ceremony() { query.bind(&s.ceremony) } else { query };
                query.execute(tx.conn().await?).await?;
                Ok(())
            })
        })
        .await
    }

    pub async fn session(&self, kind: AccountKind, id_hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query_as(sql(format!("SELECT * FROM {} WHERE id_hash = $1", kind.sessions())))
            .bind(id_hash)
            .fetch_optional(self.pool())
            .await?;
        Ok(row)
    }

    /// Records activity on a session, and optionally moves it to another stage.
    pub async fn touch_session(
        &self,
        kind: AccountKind,
        id_hash: &[u8],
        now: i64,
        stage: Option<&str>,
    ) -> Result<(), StoreError> {
        let (hash, stage) = (id_hash.to_vec(), stage.map(str::to_owned));
        self.write(move |tx| {
            Box::pin(async move {
                let statement = format!(
                    "UPDATE {} SET last_seen_at = $1, stage = COALESCE($2, stage) WHERE id_hash = $3",
                    kind.sessions()
                );
                sqlx::query(sql(statement)).bind(now).bind(&stage).bind(&hash).execute(tx.conn().await?).await?;
                Ok(())
            })
        })
        .await
    }

    /// Ends one session, or (with `account_id`) every session of an account.
    pub async fn end_sessions(
        &self,
        kind: AccountKind,
        id_hash: Option<Vec<u8>>,
        account_id: Option<String>,
    ) -> Result<u64, StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let statement = format!("DELETE FROM {} WHERE id_hash = $1 OR account_id = $2", kind.sessions());
                let done =
                    sqlx::query(sql(statement)).bind(&id_hash).bind(&account_id).execute(tx.conn().await?).await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    /// Counts a failed sign-in under `policy`. The failure that reaches the threshold locks
    /// the account and ends its sessions: someone is guessing, and a session they may already
    /// hold must not outlive the lock.
    pub async fn signin_failed(
        &self,
        kind: AccountKind,
        account_id: &str,
        now: i64,
        policy: Lockout,
    ) -> Result<FailureCount, StoreError> {
        let id = account_id.to_owned();
        let Lockout { failures: threshold, window, lock_for } = policy;
        self.write(move |tx| {
            Box::pin(async move {
                // Two nodes counting failures of one account at once must not both count
                // from the same number.
                tx.lock_row(kind.accounts(), "id", &id).await?;
                let statement = format!("SELECT failures, first_failure_at FROM {} WHERE id = $1", kind.accounts());
                let row = sqlx::query(sql(statement))
                    .bind(&id)
                    .fetch_optional(tx.conn().await?)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("{} {id}", kind.name())))?;
                let first: Option<i64> = row.try_get("first_failure_at")?;
                let (failures, first) = match first {
                    Some(f) if now - f < window => (row.try_get::<i64, _>("failures")? + 1, f),
                    _ => (1, now),
                };
                let locked_until = (failures >= threshold).then_some(now.saturating_add(lock_for));
                let (failures, first) = if locked_until.is_some() { (0, None) } else { (failures, Some(first)) };
                let statement = format!(
                    "UPDATE {} SET failures = $1, first_failure_at = $2, locked_until = COALESCE($3, locked_until) \
                     WHERE id = $4",
                    kind.accounts()
                );
                sqlx::query(sql(statement))
                    .bind(failures)
                    .bind(first)
                    .bind(locked_until)
                    .bind(&id)
                    .execute(tx.conn().await?)
                    .await?;
                if locked_until.is_some() {
                    end_account_sessions(tx, kind, &id).await?;
                }
                Ok(FailureCount { failures, locked_until })
            })
        })
        .await
    }

    /// Forgets an account's failures after a complete sign-in.
    pub async fn signin_succeeded(&self, kind: AccountKind, account_id: &str) -> Result<(), StoreError> {
        let id = account_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let statement =
                    format!("UPDATE {} SET failures = 0, first_failure_at = NULL WHERE id = $1", kind.accounts());
                sqlx::query(sql(statement)).bind(&id).execute(tx.conn().await?).await?;
                Ok(())
            })
        })
        .await
    }

    /// Stores a TOTP secret being set up (`confirm = false`) or makes the pending one active
    /// (`confirm = true`, `secret` ignored).
    pub async fn set_totp(
        &self,
        kind: AccountKind,
        account_id: &str,
        secret: Option<Vec<u8>>,
        confirm: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let id = account_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let statement = if confirm {
                    format!(
                        "UPDATE {} SET totp = totp_pending, totp_pending = NULL, updated_at = $2 \
                         WHERE id = $3 AND totp_pending IS NOT NULL AND $1 IS NULL",
                        kind.accounts()
                    )
                } else {
                    format!("UPDATE {} SET totp_pending = $1, updated_at = $2 WHERE id = $3", kind.accounts())
                };
                let done =
                    sqlx::query(sql(statement)).bind(&secret).bind(now).bind(&id).execute(tx.conn().await?).await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("{} {id} with a TOTP secret to confirm", kind.name())));
                }
                Ok(())
            })
        })
        .await
    }

    /// Accepts a TOTP time step once: false when it (or a later one) was used already.
    pub async fn use_totp_step(&self, kind: AccountKind, account_id: &str, step: i64) -> Result<bool, StoreError> {
        let id = account_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let statement = format!(
                    "UPDATE {} SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
                    kind.accounts()
                );
                let done = sqlx::query(sql(statement)).bind(step).bind(&id).execute(tx.conn().await?).await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }
}
