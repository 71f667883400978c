//! The metadata store: queue rows, keys, users, audit records and everything else that is not
//! a message body.
//!
//! Two backends behind one API (see [`backend`]): SQLite, embedded and the default (one file,
//! WAL, `synchronous=FULL` so that a committed transaction survives power loss), and
//! PostgreSQL, which several nodes share. Queries run through sqlx's `Any` driver, so nearly
//! all SQL is written once, in the subset both dialects share (`$n` parameters,
//! `ON CONFLICT`, integer timestamps, `CAST(... AS BIGINT)` around aggregates); the few
//! statements where the dialects differ ask [`Tx::backend`] or [`Store::backend`].
//!
//! Writes go through [`Store::write`]: on SQLite concurrent callers' operations run in one
//! transaction and share one fsync, each in its own savepoint so that one failure does not
//! undo the others; on PostgreSQL each operation is its own transaction on a pooled
//! connection (see [`writer`]).

pub mod accounts;
pub mod api_keys;
pub mod audit_log;
mod backend;
pub mod dkim_keys;
mod error;
pub mod events;
pub mod keys;
pub mod leases;
pub mod migrate;
pub mod mta_sts;
pub mod portal;
pub mod queue;
pub mod recipient_keys;
pub mod signin;
pub mod staff;
pub mod suppression;
pub mod webhooks;
mod writer;

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::AnyPool;

pub use backend::Backend;
pub use error::StoreError;
use writer::GroupWriter;
pub use writer::Tx;

/// Connections a pool keeps unless told otherwise: SQLite readers beside its one writer,
/// or PostgreSQL connections shared by readers and writers of one node.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// Where the store lives and how many connections to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// A SQLite file (a path, or `sqlite://path`) or a PostgreSQL URL (`postgres://` or
    /// `postgresql://`; TLS through `sslmode=require`, `verify-ca` or `verify-full`, with
    /// `sslrootcert=` for a private CA).
    pub url: String,
    /// Most connections the pool opens.
    pub pool_size: u32,
}

impl StoreOptions {
    /// The embedded default: a SQLite file.
    pub fn sqlite(path: &Path) -> StoreOptions {
        StoreOptions { url: path.display().to_string(), pool_size: DEFAULT_POOL_SIZE }
    }

    /// Which backend the URL names.
    pub fn backend(&self) -> Backend {
        Backend::of_url(&self.url)
    }

    /// The URL without its password, for messages and logs.
    pub fn display(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else { return self.url.clone() };
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{hidden}@{host}{tail}")
            }
            None => self.url.clone(),
        }
    }
}

/// A handle on the metadata store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: GroupWriter,
    /// Names this process in queue leases and singleton-job leases: random per process, so
    /// that a restarted node never mistakes its predecessor's leases for its own.
    node: Arc<str>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::connect(&StoreOptions::sqlite(path)).await
    }

    /// Opens an existing SQLite database (a path, or `sqlite://path`) read-only, as it is: no
    /// migrations, no writes (a write fails). For copying an installation out
    /// ([`Store::copy_into`]) without changing a byte of it.
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        let node: Arc<str> = carepost_model::Id::new().to_string().into();
        let (pool, writer, backend) = backend::sqlite::open_read_only(url, node.clone()).await?;
        Ok(Store { pool, backend, writer, node })
    }

    /// Opens the store `options` names and applies pending migrations.
    pub async fn connect(options: &StoreOptions) -> Result<Store, StoreError> {
        let node: Arc<str> = carepost_model::Id::new().to_string().into();
        let (pool, writer, backend) = match options.backend() {
            Backend::Sqlite => backend::sqlite::open(options, node.clone()).await?,
            Backend::Postgres => backend::postgres::open(options, node.clone()).await?,
        };
        Ok(Store { pool, backend, writer, node })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This process's name in leases it holds.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Runs `op` in a write transaction and returns its result once that transaction is
    /// durable. If `op` fails, its changes are rolled back, and other callers' operations are
    /// not. On SQLite, operations queued at the same time share one transaction and one fsync
    /// (group commit, each in its own savepoint); on PostgreSQL each is its own transaction.
    pub async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        self.writer.run(op).await
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A pooled connection for reads that span several statements (no transaction).
    pub(crate) async fn reader(&self) -> Result<Tx, StoreError> {
        Ok(Tx::pooled(self.pool.acquire().await?, self.backend, self.node.clone()))
    }

    /// Waits for queued writes, then closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}
