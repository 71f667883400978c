//! SQLite: one file, one writer connection with group commit, a pool of readers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor};

use super::Backend;
use crate::writer::GroupWriter;
use crate::{StoreError, StoreOptions};

/// Settings every connection takes at open. The `Any` driver only passes a URL to SQLite, so
/// these are set by statement rather than through `SqliteConnectOptions`.
const PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    // In WAL mode, FULL syncs the log on every commit: NORMAL could lose the last
    // transactions on power loss, and a 250 reply promises they are not lost.
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA temp_store = MEMORY",
];

async fn configure(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in PRAGMAS {
        conn.execute(*pragma).await?;
    }
    Ok(())
}

fn path_of(url: &str) -> PathBuf {
    let trimmed = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    // Drop any query part a sqlite: URL carried; the file is what matters here.
    PathBuf::from(trimmed.split('?').next().unwrap_or(trimmed))
}

/// The URL the `Any` driver opens `path` with: absolute (a relative path would be read as a
/// host name) and created if missing.
fn url_for(path: &Path) -> Result<AnyConnectOptions, StoreError> {
    let absolute = std::path::absolute(path)
        .map_err(|e| StoreError::Corrupt(format!("cannot resolve the database path {}: {e}", path.display())))?;
    let url = SqliteConnectOptions::new().filename(absolute).create_if_missing(true).to_url_lossy();
    Ok(AnyConnectOptions::from_url(&url)?)
}

pub(crate) async fn open(
    options: &StoreOptions,
    node: Arc<str>,
) -> Result<(AnyPool, GroupWriter, Backend), StoreError> {
    sqlx::any::install_default_drivers();
    let connect = url_for(&path_of(&options.url))?;
    // The writer connects first, alone, so that switching the file to WAL never waits on a
    // reader.
    let mut writer = AnyConnection::connect_with(&connect).await?;
    configure(&mut writer).await?;
    let pool = AnyPoolOptions::new()
        .max_connections(options.pool_size.max(1))
        .min_connections(1)
        .after_connect(|conn, _| Box::pin(configure(conn)))
        .connect_with(connect)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok((pool, GroupWriter::group(writer, node), Backend::Sqlite))
}

/// Opens an existing database for reading only: no migrations, no journal-mode change, and
/// `query_only` on every connection besides the read-only open, so not a byte of the file
/// changes.
pub(crate) async fn open_read_only(url: &str, node: Arc<str>) -> Result<(AnyPool, GroupWriter, Backend), StoreError> {
    sqlx::any::install_default_drivers();
    let path = path_of(url);
    if !path.is_file() {
        return Err(StoreError::NotFound(format!("the database {}", path.display())));
    }
    let absolute = std::path::absolute(&path)
        .map_err(|e| StoreError::Corrupt(format!("cannot resolve the database path {}: {e}", path.display())))?;
    let url = SqliteConnectOptions::new().filename(absolute).read_only(true).to_url_lossy();
    let connect = AnyConnectOptions::from_url(&url)?;
    async fn settle(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        conn.execute("PRAGMA query_only = ON").await?;
        conn.execute("PRAGMA busy_timeout = 10000").await?;
        Ok(())
    }
    let mut writer = AnyConnection::connect_with(&connect).await?;
    settle(&mut writer).await?;
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .after_connect(|conn, _| Box::pin(settle(conn)))
        .connect_with(connect)
        .await?;
    Ok((pool, GroupWriter::group(writer, node), Backend::Sqlite))
}
