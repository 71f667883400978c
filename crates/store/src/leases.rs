//! Leases for singleton jobs: work that must run on one node at a time when several share
//! the store (the portal's expiry sweep, webhook dispatch, retention sweeps). A node holds a
//! job's lease until a time it keeps pushing forward while it runs; if it dies, the lease
//! runs out and another node takes the job. On SQLite there is one node, and it always wins.
//!
//! Times are the caller's (microseconds, like every timestamp in the store), so that tests
//! and callers decide the clock.

use sqlx::Row;

use crate::{Store, StoreError};

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub until: i64,
}

impl Store {
    /// Takes the lease `name` for `holder` until `until` if nobody holds it, it ran out
    /// before `now`, or `holder` holds it already (then it is extended). Returns whether
    /// `holder` holds it now.
    pub async fn try_acquire_lease(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                // One statement, so that two nodes racing for a free or expired lease cannot
                // both win: the row (or the conflict on its key) is the arbiter.
                let done = sqlx::query(
                    "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE leases.holder = excluded.holder OR leases.until < $4",
                )
                .bind(&name)
                .bind(&holder)
                .bind(until)
                .bind(now)
                .execute(tx.conn().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Extends `holder`'s lease `name` to `until`. Returns false if `holder` does not hold
    /// it (any more): the job must stop, another node may have it.
    pub async fn renew_lease(&self, name: &str, holder: &str, until: i64) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query("UPDATE leases SET until = $1 WHERE name = $2 AND holder = $3")
                    .bind(until)
                    .bind(&name)
                    .bind(&holder)
                    .execute(tx.conn().await?)
                    .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Gives up `holder`'s lease `name` (at shutdown), so another node need not wait for it
    /// to run out. Returns whether `holder` held it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(&name)
                    .bind(&holder)
                    .execute(tx.conn().await?)
                    .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Every lease whose name starts with `prefix`, expired or not, by name.
    pub async fn leases_with_prefix(&self, prefix: &str) -> Result<Vec<LeaseRow>, StoreError> {
        let pattern = format!("{}%", prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let rows = sqlx::query("SELECT name, holder, until FROM leases WHERE name LIKE $1 ESCAPE '\\' ORDER BY name")
            .bind(pattern)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LeaseRow { name: r.try_get("name")?, holder: r.try_get("holder")?, until: r.try_get("until")? })
            })
            .collect()
    }

    /// The lease `name` as stored, expired or not.
    pub async fn lease(&self, name: &str) -> Result<Option<LeaseRow>, StoreError> {
        let row = sqlx::query("SELECT name, holder, until FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok(LeaseRow { name: r.try_get("name")?, holder: r.try_get("holder")?, until: r.try_get("until")? }))
            .transpose()
    }

    /// Extends this node's live queue leases to `lease_until` (see
    /// [`queue::renew_leases`](crate::queue::renew_leases)). Returns how many it renewed.
    pub async fn renew_queue_leases(&self, now: i64, lease_until: i64) -> Result<u64, StoreError> {
        self.write(move |tx| Box::pin(crate::queue::renew_leases(tx, now, lease_until))).await
    }
}
