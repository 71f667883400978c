//! Local accounts, their app passwords, and blocked client networks.
//!
//! Login names and sender addresses are usually e-mail addresses, so they are sealed under
//! the account's own data key (object `account/<id>`) and found through blind indexes. Login
//! names are unique across tenants: SMTP AUTH names an account without naming its tenant.
//! Password hashes are argon2id strings made by the vault; this module only stores them.

use carepost_model::{Address, Id, TenantId, Timestamp};
use carepost_vault::{DataKey, KeyRing};
use sqlx::Row;

use crate::{Store, StoreError, Tx, keys};

/// What an account may do. Stored as its name; checked by every caller that grants access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including organization settings and other accounts.
    Admin,
    /// The compliance officer: reads the audit log and reports, changes no settings.
    Compliance,
    /// Sends mail (SMTP submission, the web) and sees its own messages.
    Sender,
    /// An application: API keys only; no web sign-in and no SMTP sign-in.
    ApiOnly,
}

/// The role every account has unless told otherwise.
pub const DEFAULT_ROLE: Role = Role::Sender;

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Compliance, Role::Sender, Role::ApiOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Compliance => "compliance",
            Role::Sender => "sender",
            Role::ApiOnly => "api_only",
        }
    }

    /// Whether the role signs in to the staff web pages.
    pub fn may_sign_in_to_web(self) -> bool {
        !matches!(self, Role::ApiOnly)
    }

    /// Whether the role signs in to SMTP submission (password or app password).
    pub fn may_submit_over_smtp(self) -> bool {
        !matches!(self, Role::ApiOnly)
    }

    /// Whether the role reads the audit log and reports.
    pub fn may_read_audit(self) -> bool {
        matches!(self, Role::Admin | Role::Compliance)
    }

    /// Whether the role changes organization settings (require MFA, accounts).
    pub fn may_change_settings(self) -> bool {
        matches!(self, Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    /// Takes the stored names, and `api-only` as people type it.
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| format!("unknown role '{s}': one of admin, compliance, sender, api_only"))
    }
}

/// An account with its sealed fields opened.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub tenant: TenantId,
    pub login: String,
    pub role: Role,
    /// The addresses the account may use as envelope sender.
    pub addresses: Vec<Address>,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("login", &carepost_model::Sensitive::new(&self.login))
            .field("role", &self.role)
            .field("addresses", &self.addresses.len())
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl Account {
    /// Whether the account may use `address` as its envelope sender (compared the way users
    /// expect: case-insensitively).
    pub fn may_send_as(&self, address: &Address) -> bool {
        let wanted = address.canonical();
        self.addresses.iter().any(|a| a.canonical() == wanted)
    }
}

/// What sign-in checks against: the account, its password hash and its app passwords.
#[derive(Clone)]
pub struct AccountCredentials {
    pub account: Account,
    pub password_hash: Option<String>,
    /// `(id, name, keyed hash)` of every app password that is not revoked.
    pub app_passwords: Vec<AppPassword>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl std::fmt::Debug for AppPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppPassword({}, {})", self.id, self.name)
    }
}

/// A blocked client address or network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    /// An address (`192.0.2.7`) or CIDR network (`192.0.2.0/24`), as the caller canonicalised it.
    pub network: String,
    /// Microseconds since the epoch; `None` blocks until removed.
    pub until: Option<i64>,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
}

fn account_object(id: &str) -> String {
    format!("account/{id}")
}

fn login_index(ring: &KeyRing, tenant: &TenantId, login: &str) -> Result<Vec<u8>, StoreError> {
    Ok(ring.blind_index(tenant, "login", login.to_lowercase().as_bytes())?)
}

/// The keyed hash an app password is stored as. App passwords are long random secrets, so a
/// keyed hash (not a slow password hash) is enough, and checking one costs microseconds.
pub fn app_password_hash(ring: &KeyRing, tenant: &TenantId, secret: &str) -> Result<Vec<u8>, StoreError> {
    let normalized: String =
        secret.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_lowercase();
    Ok(ring.blind_index(tenant, "app-password", normalized.as_bytes())?)
}

async fn address_rows(tx: &mut Tx, account_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let rows = sqlx::query("SELECT address FROM account_addresses WHERE account_id = $1 ORDER BY position")
        .bind(account_id)
        .fetch_all(tx.conn().await?)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("address")?)).collect()
}

fn open_account(row: &sqlx::any::AnyRow, key: &DataKey, sealed_addresses: &[Vec<u8>]) -> Result<Account, StoreError> {
    let id: String = row.try_get("id")?;
    let tenant: String = row.try_get("tenant")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("account {id}: {what}"));
    let login = String::from_utf8(key.open_field("login", &row.try_get::<Vec<u8>, _>("login")?)?)
        .map_err(|_| corrupt("login is not UTF-8"))?;
    let mut addresses = Vec::with_capacity(sealed_addresses.len());
    for sealed in sealed_addresses {
        let text =
            String::from_utf8(key.open_field("address", sealed)?).map_err(|_| corrupt("address is not UTF-8"))?;
        addresses.push(Address::parse(&text).map_err(|e| corrupt(&e.to_string()))?);
    }
    Ok(Account {
        tenant: TenantId::new(&tenant).map_err(|e| corrupt(&e.to_string()))?,
        login,
        role: row.try_get::<String, _>("role")?.parse().map_err(|e: String| corrupt(&e))?,
        addresses,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        has_password: row.try_get::<Option<String>, _>("password_hash")?.is_some(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}

/// A new account to create.
pub struct NewAccount<'a> {
    pub tenant: TenantId,
    pub login: &'a str,
    pub role: Role,
    pub addresses: &'a [Address],
    pub password_hash: Option<String>,
}

impl Store {
    async fn account_data_key(&self, ring: &KeyRing, tenant: &TenantId, id: &str) -> Result<DataKey, StoreError> {
        self.data_key(ring, tenant, &account_object(id)).await
    }

    /// The account `login` names in any tenant, with what sign-in checks against.
    pub async fn account_credentials(
        &self,
        ring: &KeyRing,
        login: &str,
    ) -> Result<Option<AccountCredentials>, StoreError> {
        for tenant in self.tenants_with_keys().await? {
            let index = login_index(ring, &tenant, login)?;
            let row = sqlx::query("SELECT * FROM accounts WHERE tenant = $1 AND login_index = $2")
                .bind(tenant.as_str())
                .bind(&index)
                .fetch_optional(self.pool())
                .await?;
            let Some(row) = row else { continue };
            let id: String = row.try_get("id")?;
            let key = self.account_data_key(ring, &tenant, &id).await?;
            let mut conn = self.reader().await?;
            let sealed = address_rows(&mut conn, &id).await?;
            let account = open_account(&row, &key, &sealed)?;
            let app_rows = sqlx::query(
                "SELECT id, name, secret_hash, created_at, last_used_at FROM app_passwords \
                 WHERE account_id = $1 AND revoked_at IS NULL ORDER BY created_at",
            )
            .bind(&id)
            .fetch_all(self.pool())
            .await?;
            let app_passwords = app_rows
                .iter()
                .map(|r| {
                    Ok(AppPassword {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        secret_hash: r.try_get("secret_hash")?,
                        created_at: r.try_get("created_at")?,
                        last_used_at: r.try_get("last_used_at")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            return Ok(Some(AccountCredentials {
                account,
                password_hash: row.try_get("password_hash")?,
                app_passwords,
            }));
        }
        Ok(None)
    }

    /// The account `login` names, without its secrets.
    pub async fn account(&self, ring: &KeyRing, login: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.account_credentials(ring, login).await?.map(|c| c.account))
    }

    /// The account with id `id`, without its secrets.
    pub async fn account_by_id(&self, ring: &KeyRing, id: &str) -> Result<Option<Account>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT * FROM accounts WHERE id = $1").bind(id).fetch_optional(self.pool()).await?
        else {
            return Ok(None);
        };
        let tenant =
            TenantId::new(&row.try_get::<String, _>("tenant")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = self.account_data_key(ring, &tenant, id).await?;
        let mut conn = self.reader().await?;
        let sealed = address_rows(&mut conn, id).await?;
        Ok(Some(open_account(&row, &key, &sealed)?))
    }

    /// The account's own data key (`account/<id>`), for the fields callers seal themselves
    /// (TOTP secrets, security keys).
    pub async fn account_key(&self, ring: &KeyRing, account: &Account) -> Result<DataKey, StoreError> {
        self.account_data_key(ring, &account.tenant, &account.id).await
    }

    /// Gives an account another role.
    pub async fn set_account_role(&self, account_id: &str, role: Role) -> Result<(), StoreError> {
        let id = account_id.to_owned();
        let changed = self
            .write(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE accounts SET role = $1, updated_at = $2 WHERE id = $3")
                        .bind(role.as_str())
                        .bind(Timestamp::now().as_micros())
                        .bind(&id)
                        .execute(tx.conn().await?)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("account {account_id}")));
        }
        Ok(())
    }

    /// Every account, by tenant then creation time.
    pub async fn accounts(&self, ring: &KeyRing) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query("SELECT * FROM accounts ORDER BY tenant, created_at").fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut conn = self.reader().await?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let tenant =
                TenantId::new(&row.try_get::<String, _>("tenant")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let key = self.account_data_key(ring, &tenant, &id).await?;
            let sealed = address_rows(&mut conn, &id).await?;
            out.push(open_account(row, &key, &sealed)?);
        }
        Ok(out)
    }

    /// Creates an account. Fails with [`StoreError::Conflict`] when the login name is taken
    /// in any tenant.
    pub async fn create_account(&self, ring: &KeyRing, new: NewAccount<'_>) -> Result<Account, StoreError> {
        if self.account_credentials(ring, new.login).await?.is_some() {
            return Err(StoreError::Conflict("an account with this login name already exists".into()));
        }
        let id = Id::new().to_string();
        let object = account_object(&id);
        let (key, wrapped) = ring.new_data_key(&new.tenant, &object)?;
        let now = Timestamp::now().as_micros();
        let index = login_index(ring, &new.tenant, new.login)?;
        let sealed_login = key.seal_field("login", new.login.as_bytes())?;
        let mut addresses: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for a in new.addresses {
            let address_index = ring.blind_index(&new.tenant, "sender", a.canonical().as_bytes())?;
            if addresses.iter().all(|(i, _)| *i != address_index) {
                addresses.push((address_index, key.seal_field("address", a.as_str().as_bytes())?));
            }
        }
        let (tenant, role, hash, account_id) =
            (new.tenant.clone(), new.role.as_str(), new.password_hash.clone(), id.clone());
        self.write(move |tx| {
                Box::pin(async move {
                    keys::put_data_key(tx, &tenant, &object, &wrapped).await?;
                    sqlx::query(
                        "INSERT INTO accounts (id, tenant, login_index, login, role, password_hash, disabled, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
                    )
                    .bind(&account_id)
                    .bind(tenant.as_str())
                    .bind(&index)
                    .bind(&sealed_login)
                    .bind(role)
                    .bind(&hash)
                    .bind(now)
                    .execute(tx.conn().await?)
                    .await?;
                    for (position, (address_index, sealed)) in (0_i64..).zip(&addresses) {
                        sqlx::query(
                            "INSERT INTO account_addresses (account_id, tenant, address_index, address, position) \
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&account_id)
                        .bind(tenant.as_str())
                        .bind(address_index)
                        .bind(sealed)
                        .bind(position)
                            .execute(tx.conn().await?)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await?;
        self.account(ring, new.login).await?.ok_or_else(|| StoreError::NotFound("the new account".into()))
    }

    /// Replaces an account's password hash (`None`: no password sign-in).
    pub async fn set_password_hash(&self, account_id: &str, hash: Option<String>) -> Result<(), StoreError> {
        let id = account_id.to_owned();
        let changed = self
            .write(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3")
                        .bind(&hash)
                        .bind(Timestamp::now().as_micros())
                        .bind(&id)
                        .execute(tx.conn().await?)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("account {account_id}")));
        }
        Ok(())
    }

    pub async fn set_account_disabled(&self, account_id: &str, disabled: bool) -> Result<(), StoreError> {
        let id = account_id.to_owned();
        let changed = self
            .write(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE accounts SET disabled = $1, updated_at = $2 WHERE id = $3")
                        .bind(i64::from(disabled))
                        .bind(Timestamp::now().as_micros())
                        .bind(&id)
                        .execute(tx.conn().await?)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("account {account_id}")));
        }
        Ok(())
    }

    /// Stores a new app password's keyed hash under `name`. Fails with
    /// [`StoreError::Conflict`] when the account already has one of that name.
    pub async fn add_app_password(
        &self,
        account_id: &str,
        name: &str,
        secret_hash: Vec<u8>,
    ) -> Result<String, StoreError> {
        let (account, name, id) = (account_id.to_owned(), name.to_owned(), Id::new().to_string());
        let app_id = id.clone();
        self.write(move |tx| {
                Box::pin(async move {
                    let taken: Option<String> = sqlx::query_scalar("SELECT id FROM app_passwords WHERE account_id = $1 AND name = $2")
                        .bind(&account)
                        .bind(&name)
                        .fetch_optional(tx.conn().await?)
                        .await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict(format!("an app password named '{name}' already exists")));
                    }
                    sqlx::query("INSERT INTO app_passwords (id, account_id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(&app_id)
                        .bind(&account)
                        .bind(&name)
                        .bind(&secret_hash)
                        .bind(Timestamp::now().as_micros())
                        .execute(tx.conn().await?)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(id)
    }

    /// Revokes an account's app password by name. Returns whether one was revoked.
    pub async fn revoke_app_password(&self, account_id: &str, name: &str) -> Result<bool, StoreError> {
        let (account, name) = (account_id.to_owned(), name.to_owned());
        self.write(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE app_passwords SET revoked_at = $1 WHERE account_id = $2 AND name = $3 AND revoked_at IS NULL",
                    )
                    .bind(Timestamp::now().as_micros())
                    .bind(&account)
                    .bind(&name)
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await
    }

    /// Notes that an app password was just used to sign in.
    pub async fn touch_app_password(&self, app_password_id: &str) -> Result<(), StoreError> {
        let id = app_password_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE app_passwords SET last_used_at = $1 WHERE id = $2")
                    .bind(Timestamp::now().as_micros())
                    .bind(&id)
                    .execute(tx.conn().await?)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Blocks in force at `now` (microseconds), oldest first.
    pub async fn active_blocks(&self, now: i64) -> Result<Vec<BlockRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM blocks WHERE until IS NULL OR until > $1 ORDER BY created_at")
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BlockRow {
                    network: r.try_get("network")?,
                    until: r.try_get("until")?,
                    reason: r.try_get("reason")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Adds or replaces the block of `b.network`; expired blocks are swept at the same time.
    pub async fn put_block(&self, b: BlockRow) -> Result<(), StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM blocks WHERE until IS NOT NULL AND until <= $1")
                    .bind(Timestamp::now().as_micros())
                    .execute(tx.conn().await?)
                    .await?;
                sqlx::query(
                    "INSERT INTO blocks (network, until, reason, created_by, created_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (network) DO UPDATE SET until = excluded.until, reason = excluded.reason, \
                         created_by = excluded.created_by, created_at = excluded.created_at",
                )
                .bind(&b.network)
                .bind(b.until)
                .bind(&b.reason)
                .bind(&b.created_by)
                .bind(b.created_at)
                .execute(tx.conn().await?)
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Removes the block of exactly `network`. Returns whether there was one.
    pub async fn remove_block(&self, network: &str) -> Result<bool, StoreError> {
        let network = network.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM blocks WHERE network = $1")
                    .bind(&network)
                    .execute(tx.conn().await?)
                    .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }
}
