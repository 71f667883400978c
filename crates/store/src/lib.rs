//! The metadata store: queue rows, keys, users, audit records and everything else that is not
//! a message body.
//!
//! SQLite through sqlx by default (one file, WAL, `synchronous=FULL` so that a committed
//! transaction survives power loss). SQL lives only in this crate, written in the subset that
//! SQLite and PostgreSQL share (`$n` parameters, `ON CONFLICT`, integer timestamps), so that a
//! PostgreSQL backend can sit behind the same API and pass the same tests.
//!
//! Writes on the hot path go through the [`GroupWriter`]: concurrent callers' operations run
//! in one transaction and share one fsync, each in its own savepoint so that one failure does
//! not undo the others.

pub mod accounts;
pub mod api_keys;
pub mod audit_log;
pub mod dkim_keys;
mod error;
pub mod events;
pub mod keys;
pub mod mta_sts;
pub mod portal;
pub mod queue;
pub mod recipient_keys;
pub mod staff;
pub mod suppression;
pub mod webhooks;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqlitePool};

pub use error::StoreError;
pub use writer::{GroupWriter, Tx};

/// A handle on the metadata store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    writer: GroupWriter,
}

fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str("sqlite://")
        .expect("a constant URL parses")
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode, FULL syncs the log on every commit: NORMAL could lose the last
        // transactions on power loss, and a 250 reply promises they are not lost.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let options = connect_options(path);
        let pool = SqlitePoolOptions::new().max_connections(8).min_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer_conn = sqlx::SqliteConnection::connect_with(&options).await?;
        Ok(Store { pool, writer: GroupWriter::start(writer_conn) })
    }

    pub fn writer(&self) -> &GroupWriter {
        &self.writer
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits for queued writes, then closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    pub async fn store() -> (tempfile::TempDir, super::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open(&dir.path().join("t.db")).await.unwrap();
        (dir, store)
    }

    /// Every file under `dir` whose bytes contain `needle`.
    pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                    found.push(path);
                }
            }
        }
        found
    }
}
