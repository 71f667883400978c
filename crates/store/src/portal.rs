//! Rows of the secure portal: messages kept for pick-up, single-purpose links, opens,
//! recipient accounts and one-time codes (their sessions, failures and TOTP are kept by
//! [`crate::signin`], as staff accounts' are). Sealing, blind indexes and hashing
//! of tokens are the callers' (secure and web); this module only stores what it is given.

use sqlx::Row;

use crate::events::{self, NewEvent, kind};
use crate::{Store, StoreError, Tx};

/// States of a portal message.
pub mod state {
    pub const ACTIVE: &str = "active";
    pub const RETRACTED: &str = "retracted";
    pub const EXPIRED: &str = "expired";
}

/// What a link token is good for.
pub mod purpose {
    /// The recipient's link in the notification.
    pub const PICKUP: &str = "pickup";
    /// The sender's link in the receipt: status and retraction.
    pub const SENDER: &str = "sender";
    /// One-time codes: proof of address, password reset.
    pub const VERIFY: &str = "verify";
    pub const RESET: &str = "reset";
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PortalMessageRow {
    pub id: String,
    pub tenant: String,
    pub source_message: String,
    /// The queue recipient (idx) the copy was made for; `None` for copies made before
    /// carepost recorded it.
    pub source_recipient: Option<i64>,
    pub recipient_index: Vec<u8>,
    pub recipient: Vec<u8>,
    pub envelope: Vec<u8>,
    pub body_blob: String,
    pub size: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: String,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_by: Option<String>,
}

/// Stores a new portal message with its link tokens (`(hash, purpose)`).
pub async fn insert_message(tx: &mut Tx, m: &PortalMessageRow, tokens: &[(Vec<u8>, &str)]) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO portal_messages (id, tenant, source_message, recipient_index, recipient, envelope, body_blob, size, \
         created_at, expires_at, state, source_recipient) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&m.id)
    .bind(&m.tenant)
    .bind(&m.source_message)
    .bind(&m.recipient_index)
    .bind(&m.recipient)
    .bind(&m.envelope)
    .bind(&m.body_blob)
    .bind(m.size)
    .bind(m.created_at)
    .bind(m.expires_at)
    .bind(&m.state)
    .bind(m.source_recipient)
    .execute(tx.conn().await?)
    .await?;
    for (hash, purpose) in tokens {
        sqlx::query("INSERT INTO portal_tokens (token_hash, purpose, message_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(*purpose)
            .bind(&m.id)
            .bind(m.created_at)
            .execute(tx.conn().await?)
            .await?;
    }
    Ok(())
}

/// Marks an active message withdrawn (`retracted` or `expired`) and records the event in the
/// history of the queue recipient it was made for. Returns false when it was not active
/// (already withdrawn, or unknown), changing nothing.
pub async fn withdraw(tx: &mut Tx, id: &str, new_state: &str, at: i64, by: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE portal_messages SET state = $1, withdrawn_at = $2, withdrawn_by = $3 WHERE id = $4 AND state = 'active'",
    )
    .bind(new_state)
    .bind(at)
    .bind(by)
    .bind(id)
    .execute(tx.conn().await?)
    .await?;
    let changed = done.rows_affected() == 1;
    if changed {
        let event_kind = if new_state == state::EXPIRED { kind::EXPIRED } else { kind::RETRACTED };
        record_for_source(tx, id, event_kind, at).await?;
    }
    Ok(changed)
}

/// Records an event of a portal copy in its queue recipient's history, when the copy knows
/// which recipient that is.
async fn record_for_source(tx: &mut Tx, portal_id: &str, event_kind: &'static str, at: i64) -> Result<(), StoreError> {
    let source = sqlx::query("SELECT source_message, source_recipient FROM portal_messages WHERE id = $1")
        .bind(portal_id)
        .fetch_optional(tx.conn().await?)
        .await?;
    let Some(source) = source else { return Ok(()) };
    let (message, recipient): (String, Option<i64>) =
        (source.try_get("source_message")?, source.try_get("source_recipient")?);
    if let Some(recipient) = recipient {
        events::record(
            tx,
            &NewEvent { method: Some("portal".into()), ..NewEvent::new(&message, recipient, event_kind, at) },
        )
        .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenRow {
    pub seq: i64,
    pub at: i64,
    /// Sealed JSON (client address, user agent).
    pub detail: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub tenant: String,
    pub address_index: Vec<u8>,
    pub address: Vec<u8>,
    pub password_hash: Option<String>,
    pub totp: Option<Vec<u8>>,
    pub totp_pending: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    pub failures: i64,
    pub first_failure_at: Option<i64>,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

impl AccountRow {
    /// A recipient account that has just proved its address: no password, TOTP or failures yet.
    pub fn new(id: String, tenant: String, address_index: Vec<u8>, sealed_address: Vec<u8>, created_at: i64) -> Self {
        AccountRow {
            id,
            tenant,
            address_index,
            address: sealed_address,
            password_hash: None,
            totp: None,
            totp_pending: None,
            totp_last_step: None,
            failures: 0,
            first_failure_at: None,
            locked_until: None,
            created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CodeRow {
    pub id: String,
    pub code_hash: Vec<u8>,
    pub attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// A one-time code about to be sent to a portal recipient; `code_hash` is keyed, never the code.
#[derive(Debug, Clone)]
pub struct NewPortalCode {
    pub id: String,
    pub tenant: String,
    pub address_index: Vec<u8>,
    pub purpose: &'static str,
    pub code_hash: Vec<u8>,
    pub now: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn portal_message(&self, id: &str) -> Result<Option<PortalMessageRow>, StoreError> {
        let row =
            sqlx::query_as("SELECT * FROM portal_messages WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row)
    }

    /// The message and purpose a link token (by its hash) stands for.
    pub async fn portal_token(&self, token_hash: &[u8]) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT purpose, message_id FROM portal_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get("purpose")?, r.try_get("message_id")?))).transpose()
    }

    /// A recipient's messages, newest first.
    pub async fn portal_messages_for(
        &self,
        tenant: &str,
        recipient_index: &[u8],
    ) -> Result<Vec<PortalMessageRow>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT * FROM portal_messages WHERE tenant = $1 AND recipient_index = $2 ORDER BY created_at DESC LIMIT 500",
        )
        .bind(tenant)
        .bind(recipient_index)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// Portal messages made from one queue message.
    pub async fn portal_messages_from(&self, source_message: &str) -> Result<Vec<PortalMessageRow>, StoreError> {
        let rows = sqlx::query_as("SELECT * FROM portal_messages WHERE source_message = $1 ORDER BY created_at")
            .bind(source_message)
            .fetch_all(self.pool())
            .await?;
        Ok(rows)
    }

    /// Active messages whose expiry has passed, oldest first.
    pub async fn portal_expired(&self, now: i64, limit: i64) -> Result<Vec<PortalMessageRow>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT * FROM portal_messages WHERE state = 'active' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// Records one open; returns its sequence number.
    pub async fn add_portal_open(&self, message_id: &str, at: i64, detail: Vec<u8>) -> Result<i64, StoreError> {
        let id = message_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                // Opens of one message on two nodes at once take turns for the next number.
                tx.lock_row("portal_messages", "id", &id).await?;
                let seq: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM portal_opens WHERE message_id = $1")
                        .bind(&id)
                        .fetch_one(tx.conn().await?)
                        .await?;
                sqlx::query("INSERT INTO portal_opens (message_id, seq, at, detail) VALUES ($1, $2, $3, $4)")
                    .bind(&id)
                    .bind(seq)
                    .bind(at)
                    .bind(&detail)
                    .execute(tx.conn().await?)
                    .await?;
                record_for_source(tx, &id, kind::OPENED, at).await?;
                Ok(seq)
            })
        })
        .await
    }

    pub async fn portal_opens(&self, message_id: &str) -> Result<Vec<OpenRow>, StoreError> {
        let rows = sqlx::query_as("SELECT seq, at, detail FROM portal_opens WHERE message_id = $1 ORDER BY seq")
            .bind(message_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows)
    }

    pub async fn portal_account(&self, tenant: &str, address_index: &[u8]) -> Result<Option<AccountRow>, StoreError> {
        let row = sqlx::query_as("SELECT * FROM portal_accounts WHERE tenant = $1 AND address_index = $2")
            .bind(tenant)
            .bind(address_index)
            .fetch_optional(self.pool())
            .await?;
        Ok(row)
    }

    pub async fn portal_account_by_id(&self, id: &str) -> Result<Option<AccountRow>, StoreError> {
        let row =
            sqlx::query_as("SELECT * FROM portal_accounts WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row)
    }

    /// Sets an account's password, creating the account (with `new_row`'s sealed address)
    /// when it has none yet. Clears failures and any lock. Returns the account id.
    pub async fn set_portal_password(
        &self,
        new_row: AccountRow,
        password_hash: String,
        now: i64,
    ) -> Result<String, StoreError> {
        self.insert_portal_account(new_row, Some(password_hash), now).await
    }

    /// The address's account: `new_row` is inserted when the address has none; an existing
    /// one keeps its id and, when `password_hash` is given, takes it (and forgets failures).
    /// Returns the account's id.
    pub async fn insert_portal_account(
        &self,
        new_row: AccountRow,
        password_hash: Option<String>,
        now: i64,
    ) -> Result<String, StoreError> {
        self.write(move |tx| {
                Box::pin(async move {
                    let existing: Option<String> =
                        sqlx::query_scalar("SELECT id FROM portal_accounts WHERE tenant = $1 AND address_index = $2")
                            .bind(&new_row.tenant)
                            .bind(&new_row.address_index)
                            .fetch_optional(tx.conn().await?)
                            .await?;
                    if let Some(id) = existing {
                        let Some(password_hash) = password_hash else { return Ok(id) };
                        sqlx::query(
                            "UPDATE portal_accounts SET password_hash = $1, failures = 0, first_failure_at = NULL, \
                             locked_until = NULL, updated_at = $2 WHERE id = $3",
                        )
                        .bind(&password_hash)
                        .bind(now)
                        .bind(&id)
                        .execute(tx.conn().await?)
                        .await?;
                        return Ok(id);
                    }
                    sqlx::query(
                        "INSERT INTO portal_accounts (id, tenant, address_index, address, password_hash, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    )
                    .bind(&new_row.id)
                    .bind(&new_row.tenant)
                    .bind(&new_row.address_index)
                    .bind(&new_row.address)
                    .bind(&password_hash)
                    .bind(now)
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(new_row.id)
                })
            })
            .await
    }

    /// Stores a new one-time code and voids the address's earlier codes of the same purpose.
    /// The caller checks [`Store::portal_codes_sent_since`] against its limit first.
    pub async fn insert_portal_code(&self, code: NewPortalCode) -> Result<(), StoreError> {
        let NewPortalCode { id, tenant, address_index, purpose: code_purpose, code_hash, now, expires_at } = code;
        self.write(move |tx| {
                Box::pin(async move {
                    // A new code voids the older ones of the same purpose.
                    sqlx::query(
                        "UPDATE portal_codes SET used_at = $1 WHERE tenant = $2 AND address_index = $3 AND purpose = $4 AND used_at IS NULL",
                    )
                    .bind(now)
                    .bind(&tenant)
                    .bind(&address_index)
                    .bind(code_purpose)
                    .execute(tx.conn().await?)
                    .await?;
                    sqlx::query(
                        "INSERT INTO portal_codes (id, tenant, address_index, purpose, code_hash, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&id)
                    .bind(&tenant)
                    .bind(&address_index)
                    .bind(code_purpose)
                    .bind(&code_hash)
                    .bind(now)
                    .bind(expires_at)
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Codes of this purpose the address was sent since `since`.
    pub async fn portal_codes_sent_since(
        &self,
        tenant: &str,
        address_index: &[u8],
        code_purpose: &str,
        since: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM portal_codes WHERE tenant = $1 AND address_index = $2 AND purpose = $3 AND created_at >= $4",
        )
        .bind(tenant)
        .bind(address_index)
        .bind(code_purpose)
        .bind(since)
        .fetch_one(self.pool())
        .await?)
    }

    /// The address's current code of this purpose: unused and unexpired.
    pub async fn current_portal_code(
        &self,
        tenant: &str,
        address_index: &[u8],
        code_purpose: &str,
        now: i64,
    ) -> Result<Option<CodeRow>, StoreError> {
        let row = sqlx::query_as(
            "SELECT * FROM portal_codes WHERE tenant = $1 AND address_index = $2 AND purpose = $3 AND used_at IS NULL \
             AND expires_at > $4 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(address_index)
        .bind(code_purpose)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(row)
    }

    /// Reserves one attempt at a code before it is compared: true when the code is current
    /// (unused, unexpired) and fewer than `max_attempts` entries were reserved for it. The
    /// check and the count are one statement, so parallel guesses cannot compare more than
    /// `max_attempts` times between them.
    pub async fn reserve_portal_code_attempt(&self, id: &str, max_attempts: i64, now: i64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE portal_codes SET attempts = attempts + 1 \
                         WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3",
                )
                .bind(&id)
                .bind(now)
                .bind(max_attempts)
                .execute(tx.conn().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Records the outcome of a reserved attempt: a match uses the code up (true when it was
    /// still unused: two right entries at once sign in one of them); a miss voids it once
    /// `max_attempts` were reserved.
    pub async fn portal_code_entered(
        &self,
        id: &str,
        matched: bool,
        max_attempts: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let sql = if matched {
                    "UPDATE portal_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND $3 > 0"
                } else {
                    "UPDATE portal_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND attempts >= $3"
                };
                let done = sqlx::query(sql).bind(now).bind(&id).bind(max_attempts).execute(tx.conn().await?).await?;
                Ok(matched && done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Reserves one wrong-passphrase slot of a portal message before its passphrase is
    /// compared: false when `max_failures` are used up. Give it back with
    /// [`Store::release_portal_passphrase_attempt`] when the passphrase was right.
    pub async fn reserve_portal_passphrase_attempt(
        &self,
        message_id: &str,
        max_failures: i64,
    ) -> Result<bool, StoreError> {
        let id = message_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE portal_messages SET passphrase_failures = passphrase_failures + 1 \
                         WHERE id = $1 AND passphrase_failures < $2",
                )
                .bind(&id)
                .bind(max_failures)
                .execute(tx.conn().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Gives back a slot reserved for a passphrase that turned out right.
    pub async fn release_portal_passphrase_attempt(&self, message_id: &str) -> Result<(), StoreError> {
        let id = message_id.to_owned();
        self.write(move |tx| {
                Box::pin(async move {
                    sqlx::query("UPDATE portal_messages SET passphrase_failures = passphrase_failures - 1 WHERE id = $1 AND passphrase_failures > 0")
                        .bind(&id)
                        .execute(tx.conn().await?)
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}
