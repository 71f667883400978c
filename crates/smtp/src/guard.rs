//! Blocking attackers: failed sign-ins are counted per client address and per account, and
//! an address that fails too often is refused at connection time for a while.
//!
//! Blocks live in the store so that they survive restarts and so that `carepost block`
//! can add and remove them while the server runs; the server keeps them in memory and
//! re-reads them every few seconds. Failure counters are in memory only: a restart forgets
//! them, which costs an attacker nothing but also gains them little.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use carepost_audit::{Audit, Event, Outcome};
use carepost_model::Timestamp;
use carepost_store::Store;
use carepost_store::accounts::BlockRow;

use crate::network::Network;

/// How often blocks are re-read from the store (to see `carepost block add|remove`).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Failure counters never hold more than this many keys: an attacker rotating through
/// addresses cannot grow them without bound.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct GuardSettings {
    pub failures_per_ip: u32,
    pub failures_per_account: u32,
    pub window: Duration,
    pub block_for: Duration,
}

/// A block in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBlock {
    pub network: Network,
    pub until: Option<Timestamp>,
    pub reason: String,
}

#[derive(Default)]
struct Failures {
    by_ip: HashMap<IpAddr, VecDeque<Instant>>,
    by_account: HashMap<String, VecDeque<Instant>>,
}

fn record<K: std::hash::Hash + Eq>(map: &mut HashMap<K, VecDeque<Instant>>, key: K, now: Instant, window: Duration) -> usize {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
    }
    let times = map.entry(key).or_default();
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
    times.push_back(now);
    times.len()
}

pub struct Guard {
    settings: GuardSettings,
    failures: Mutex<Failures>,
    blocks: RwLock<Vec<ActiveBlock>>,
    store: Store,
    audit: Audit,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("settings", &self.settings).finish()
    }
}

fn active(rows: Vec<BlockRow>) -> Vec<ActiveBlock> {
    rows.into_iter()
        .filter_map(|r| match r.network.parse::<Network>() {
            Ok(network) => Some(ActiveBlock { network, until: r.until.map(Timestamp::from_micros), reason: r.reason }),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a stored block");
                None
            }
        })
        .collect()
}

impl Guard {
    pub async fn load(settings: GuardSettings, store: Store, audit: Audit) -> Result<Guard, carepost_store::StoreError> {
        let blocks = active(store.active_blocks(Timestamp::now().as_micros()).await?);
        Ok(Guard { settings, failures: Mutex::new(Failures::default()), blocks: RwLock::new(blocks), store, audit })
    }

    /// Re-reads blocks from the store.
    pub async fn refresh(&self) -> Result<(), carepost_store::StoreError> {
        let blocks = active(self.store.active_blocks(Timestamp::now().as_micros()).await?);
        *self.blocks.write().unwrap_or_else(|p| p.into_inner()) = blocks;
        Ok(())
    }

    /// The block that refuses `ip`, if any.
    pub fn blocked(&self, ip: IpAddr) -> Option<ActiveBlock> {
        let now = Timestamp::now();
        let blocks = self.blocks.read().unwrap_or_else(|p| p.into_inner());
        blocks.iter().find(|b| b.network.contains(ip) && b.until.is_none_or(|u| u > now)).cloned()
    }

    /// Records a successful sign-in: audited, and the address's failures are forgiven.
    pub async fn signed_in(&self, ip: IpAddr, account_id: &str, mechanism: &str, app_password: Option<&str>) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).by_ip.remove(&ip);
        let mut event = Event::new(format!("account:{account_id}"), "smtp.auth")
            .target(format!("account:{account_id}"))
            .ip(Some(ip))
            .detail("mechanism", mechanism);
        if let Some(name) = app_password {
            event = event.detail("app_password", name);
        }
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a sign-in");
        }
    }

    /// Records a failed sign-in. Returns the new block when this failure made `ip` blocked.
    pub async fn failed(&self, ip: IpAddr, login: &str, mechanism: &str) -> Option<ActiveBlock> {
        let now = Instant::now();
        let (by_ip, by_account) = {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let window = self.settings.window;
            let by_ip = record(&mut f.by_ip, ip, now, window);
            let by_account = if login.is_empty() { 0 } else { record(&mut f.by_account, login.to_lowercase(), now, window) };
            (by_ip, by_account)
        };
        let event = Event::new("smtp", "smtp.auth")
            .ip(Some(ip))
            .outcome(Outcome::Failure)
            .detail("mechanism", mechanism)
            .detail("failures_from_ip", by_ip)
            .detail_hashed("login", login.to_lowercase().as_bytes());
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a failed sign-in");
        }
        let ip_over = by_ip >= self.settings.failures_per_ip as usize;
        let account_over = by_account >= self.settings.failures_per_account as usize;
        if !(ip_over || account_over) {
            return None;
        }
        let reason = if ip_over {
            format!("{by_ip} failed sign-ins from this address")
        } else {
            format!("failed sign-ins for an account under attack ({by_account})")
        };
        Some(self.block_automatically(ip, reason).await)
    }

    async fn block_automatically(&self, ip: IpAddr, reason: String) -> ActiveBlock {
        let network = Network::host(ip);
        let now = Timestamp::now();
        let until = now.plus_seconds(i64::try_from(self.settings.block_for.as_secs()).unwrap_or(i64::MAX));
        let block = ActiveBlock { network, until: Some(until), reason: reason.clone() };
        {
            let mut blocks = self.blocks.write().unwrap_or_else(|p| p.into_inner());
            blocks.retain(|b| b.network != network);
            blocks.push(block.clone());
        }
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).by_ip.remove(&ip);
        let row = BlockRow {
            network: network.to_string(),
            until: Some(until.as_micros()),
            reason: reason.clone(),
            created_by: "smtp".into(),
            created_at: now.as_micros(),
        };
        if let Err(e) = self.store.put_block(row).await {
            tracing::error!(error = %e, "cannot store an automatic block; it holds until restart");
        }
        let event = Event::new("smtp", "smtp.block")
            .target(format!("ip:{network}"))
            .ip(Some(ip))
            .outcome(Outcome::Denied)
            .detail("until", until.to_rfc3339())
            .detail("reason", &reason);
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a block");
        }
        tracing::warn!(%network, until = %until, "client blocked after failed sign-ins");
        block
    }
}

impl Guard {
    /// Audits something a session refused as an attack (a forged From, ...).
    pub async fn audit_refusal(&self, event: Event) {
        if let Err(e) = self.audit.append(event.outcome(Outcome::Denied)).await {
            tracing::error!(error = %e, "cannot audit a refusal");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_forget_old_failures() {
        let mut map = HashMap::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        assert_eq!(record(&mut map, 1, t0, w), 1);
        assert_eq!(record(&mut map, 1, t0 + Duration::from_secs(5), w), 2);
        assert_eq!(record(&mut map, 1, t0 + Duration::from_secs(12), w), 2);
        assert_eq!(record(&mut map, 1, t0 + Duration::from_secs(30), w), 1);
    }
}
