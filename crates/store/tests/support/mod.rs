//! One test suite, both backends: every test here is an `async fn(Db)`, and `backends!`
//! turns it into a `sqlite` and a `postgres` test. The PostgreSQL tests run on a throwaway
//! cluster (testkit), a fresh database each.

#![allow(dead_code)]

use std::path::Path;

use carepost_store::queue::{MessageRow, RecipientRow, state};
use carepost_store::{Backend, Store, StoreOptions};

/// A store on one backend, and what it lives in.
pub struct Db {
    pub store: Store,
    pub backend: Backend,
    /// The SQLite file's directory (also scratch space on PostgreSQL).
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Db {
    pub async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        Db::open(dir, url).await
    }

    pub async fn postgres() -> Db {
        let url = carepost_testkit::postgres::fresh_database();
        Db::open(tempfile::tempdir().unwrap(), url).await
    }

    async fn open(dir: tempfile::TempDir, url: String) -> Db {
        let store = Store::connect(&StoreOptions { url: url.clone(), pool_size: 4 }).await.unwrap();
        Db { backend: store.backend(), store, dir, url }
    }

    /// A second handle on the same database, as another node (or a restarted process) has.
    pub async fn reopen(&self) -> Store {
        Store::connect(&StoreOptions { url: self.url.clone(), pool_size: 4 }).await.unwrap()
    }

    /// Whether `needle` appears anywhere in what the database keeps: the SQLite files, or
    /// on PostgreSQL a dump of every row (searched as text and as the hex that `bytea`
    /// columns dump as). Close the store first on SQLite so that the WAL is checkpointed.
    pub fn holds(&self, needle: &[u8]) -> bool {
        match self.backend {
            Backend::Sqlite => !carepost_testkit::files_containing(self.dir.path(), needle).is_empty(),
            Backend::Postgres => {
                let dump = carepost_testkit::postgres::cluster().dump(&self.url).into_bytes();
                let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
                dump.windows(needle.len()).any(|w| w == needle) || String::from_utf8_lossy(&dump).contains(&hex)
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A message as the queue stores it, received at `at`, with `recipients` recipients queued and
/// due then; sealed columns hold placeholder bytes. Tests change the fields they are about.
pub fn message_rows(id: &str, recipients: i64, at: i64) -> (MessageRow, Vec<RecipientRow>) {
    let message = MessageRow {
        id: id.into(),
        tenant: "default".into(),
        received_at: at,
        source: "api".into(),
        size: 10,
        body_blob: format!("msg/{id}"),
        envelope: b"sealed".to_vec(),
        arrival: b"sealed".to_vec(),
        message_id_index: None,
        inspection: None,
        state: state::ACTIVE.into(),
        done_at: None,
    };
    let recipients = (0..recipients)
        .map(|idx| RecipientRow {
            message_id: id.into(),
            idx,
            tenant: "default".into(),
            address: b"sealed".to_vec(),
            address_index: vec![idx as u8; 32],
            domain_index: vec![9; 32],
            decision: None,
            state: state::QUEUED.into(),
            attempts: 0,
            next_attempt_at: at,
            lease_until: None,
            last_reply: None,
            method: None,
            delay_notified: false,
            updated_at: at,
        })
        .collect();
    (message, recipients)
}

/// `backends!(a, b)` makes `a::sqlite`, `a::postgres`, `b::sqlite` and `b::postgres` from
/// `async fn a(db: Db)` and `async fn b(db: Db)`.
#[macro_export]
macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::support::Db::sqlite().await).await
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::support::Db::postgres().await).await
                }
            }
        )*
    };
}
