//! Several nodes on one chain: which unsigned records are a crash's.
//!
//! Every node signs the heads it wrote itself, at most [`HEAD_SIGN_INTERVAL`] after writing
//! them. On one database the newest unsigned records at any moment are therefore usually a
//! live node's, which it will sign on its next tick: naming them at another node's start would
//! be a false alarm. What is a crash's is a node that stopped without shutting down, and the
//! store can tell: every serving node holds a lease named after it ([`node_lease`]) that it
//! renews while it runs and hands back when it stops cleanly. So:
//!
//! - at start ([`Audit::recover_shared`]), the unsigned tail is named only if no other node
//!   holds a live node lease (then every writer of it has stopped, and a stop without a
//!   signature was a crash, as on one node);
//! - while serving ([`Audit::name_lost_nodes`]), a node lease that ran out without being
//!   handed back means that node died: one live node removes the lease and writes an
//!   `audit.node_lost` record naming the node and when it was last known alive. Its last
//!   records were chained in the database before it died and are covered by the next head a
//!   live node signs; the record says which node's signature is missing for that window.

use carepost_model::Timestamp;

use crate::chain::{Audit, AuditError, HEAD_SIGN_INTERVAL};
use crate::{Event, Outcome};

/// The action of the record a live node writes when another node's lease ran out.
pub const NODE_LOST_ACTION: &str = "audit.node_lost";

/// How long a node counts as alive after it last renewed its node lease. Nodes renew it every
/// third of this; it is longer than the signing interval so a node is never judged dead while
/// its newest records are still within their signing window.
pub const NODE_LEASE: std::time::Duration = std::time::Duration::from_secs(3 * HEAD_SIGN_INTERVAL.as_secs());

const PREFIX: &str = "node:";

/// The lease a serving node holds while it runs, named after its store node id.
pub fn node_lease(node: &str) -> String {
    format!("{PREFIX}{node}")
}

impl Audit {
    /// Takes or renews this node's lease (see the module documentation). Only on a shared
    /// store; on SQLite one process owns the data directory and its lock says so.
    pub async fn renew_node_lease(&self) -> Result<bool, AuditError> {
        let store = &self.inner.store;
        if !store.backend().is_shared() {
            return Ok(true);
        }
        let now = Timestamp::now().as_micros();
        let until = now + NODE_LEASE.as_micros() as i64;
        Ok(store.try_acquire_lease(&node_lease(store.node_id()), store.node_id(), now, until).await?)
    }

    /// Hands this node's lease back at a clean stop, after the last signature.
    pub async fn release_node_lease(&self) -> Result<(), AuditError> {
        let store = &self.inner.store;
        if store.backend().is_shared() {
            store.release_lease(&node_lease(store.node_id()), store.node_id()).await?;
        }
        Ok(())
    }

    /// [`Audit::recover`] for a node that may start beside others: names the unsigned tail
    /// only if no other node is alive to sign it.
    pub async fn recover_shared(&self) -> Result<Option<(i64, i64)>, AuditError> {
        let store = &self.inner.store;
        if store.backend().is_shared() {
            let now = Timestamp::now().as_micros();
            let others_alive =
                store.leases_with_prefix(PREFIX).await?.iter().any(|l| l.holder != store.node_id() && l.until >= now);
            if others_alive {
                return Ok(None);
            }
        }
        self.recover().await
    }

    /// Names every node whose lease ran out without being handed back (it died), once
    /// across all nodes. Returns the nodes this call named.
    pub async fn name_lost_nodes(&self) -> Result<Vec<String>, AuditError> {
        let store = &self.inner.store;
        if !store.backend().is_shared() {
            return Ok(Vec::new());
        }
        let now = Timestamp::now().as_micros();
        let mut named = Vec::new();
        for lease in store.leases_with_prefix(PREFIX).await? {
            if lease.holder == store.node_id() || lease.until >= now {
                continue;
            }
            // Whoever removes the lease writes the record: two live nodes noticing at once
            // name the node once.
            if !store.release_lease(&lease.name, &lease.holder).await? {
                continue;
            }
            let last_alive = lease.until - NODE_LEASE.as_micros() as i64;
            tracing::warn!(node = %lease.holder, "carepost node {} stopped without shutting down", lease.holder);
            self.append(
                Event::new("system", NODE_LOST_ACTION)
                    .target(format!("node:{}", lease.holder))
                    .outcome(Outcome::Failure)
                    .detail("node", lease.holder.clone())
                    .detail("last_alive", Timestamp::from_micros(last_alive).to_rfc3339()),
            )
            .await?;
            named.push(lease.holder);
        }
        Ok(named)
    }
}
