//! PostgreSQL: one pool per node, each write its own transaction.
//!
//! TLS and everything else about the connection come from the URL (`sslmode`,
//! `sslrootcert`, `application_name`, ...), as libpq reads them.

use std::sync::Arc;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use super::Backend;
use crate::writer::GroupWriter;
use crate::{StoreError, StoreOptions};

pub(crate) async fn open(
    options: &StoreOptions,
    node: Arc<str>,
) -> Result<(AnyPool, GroupWriter, Backend), StoreError> {
    sqlx::any::install_default_drivers();
    let connect: AnyConnectOptions = options.url.trim().parse()?;
    let pool = AnyPoolOptions::new()
        .max_connections(options.pool_size.max(1))
        .min_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with(connect)
        .await?;
    // sqlx's migrator takes an advisory lock on PostgreSQL, so nodes starting together apply
    // each migration once.
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok((pool.clone(), GroupWriter::direct(pool, node), Backend::Postgres))
}

/// Transaction-level advisory lock keys (`pg_advisory_xact_lock`). Arbitrary constants, the
/// same on every node; "cp" in the high bytes keeps them apart from other users of the
/// database.
pub(crate) mod lock {
    /// Writers of message events take it shared, readers of the outbox horizon exclusive.
    pub(crate) const EVENTS: i64 = 0x6370_0000_0001;
    /// Appends to the audit chain: one at a time across all nodes.
    pub(crate) const AUDIT: i64 = 0x6370_0000_0002;
    /// Keys learned from signed mail: whether one is held depends on the others.
    pub(crate) const RECIPIENT_KEYS: i64 = 0x6370_0000_0003;
}
