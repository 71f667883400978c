//! Blocking attackers: failed sign-ins are counted per (login, client) pair and per client,
//! and a client that fails too often is refused at connection time for a while.
//!
//! A client is an IPv4 address or an IPv6 /64 ([`ClientKey`]). The pair counter is what
//! keeps one mistyping device behind a clinic's NAT from locking out the whole clinic: once
//! one login fails `failures_per_login` times from a client, that login alone is refused from
//! that client (until its failures age out of the window), and its further failures no longer
//! count toward the client. The client is blocked only when failures add up across logins
//! (password spraying, or several devices failing at once). Networks in `trusted` are never
//! blocked or refused automatically. The account itself is protected by its persistent
//! lockout (kept with the accounts), which counts failures from every client.
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
use carepost_model::{ClientKey, Timestamp};
use carepost_store::Store;
use carepost_store::accounts::BlockRow;

use carepost_model::Network;

/// How often blocks are re-read from the store (to see `carepost block add|remove`).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Failure counters never hold more than this many keys: an attacker rotating through
/// addresses cannot grow them without bound.
const MAX_TRACKED: usize = 100_000;

/// Refused connections from one blocked network are audited at most this often, so that a
/// client hammering a block cannot flood the audit log.
const REFUSAL_AUDIT_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Failures from one client, across logins, that block it.
    pub failures_per_ip: u32,
    /// Failures of one login from one client that refuse that login from that client.
    pub failures_per_login: u32,
    /// Failures of one login from all clients after which each client that fails for it
    /// again is refused for that login at once.
    pub failures_per_account: u32,
    pub window: Duration,
    pub block_for: Duration,
    /// Networks never blocked or refused automatically (manual blocks still apply).
    pub trusted: Vec<Network>,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            failures_per_ip: 20,
            failures_per_login: 5,
            failures_per_account: 10,
            window: Duration::from_secs(600),
            block_for: Duration::from_secs(3600),
            trusted: Vec::new(),
        }
    }
}

/// A block in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBlock {
    pub network: Network,
    pub until: Option<Timestamp>,
    pub reason: String,
    /// Made by a guard after failed sign-ins (not by an administrator).
    pub automatic: bool,
}

/// What one failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Tally {
    /// Failures counted for the client.
    client: usize,
    /// Failures of this login from this client.
    pair: usize,
    /// Failures of this login from every client.
    login: usize,
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
}

fn make_room<K>(map: &mut HashMap<K, VecDeque<Instant>>, now: Instant, window: Duration) {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
    }
}

fn record<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, VecDeque<Instant>>,
    key: K,
    now: Instant,
    window: Duration,
) -> usize {
    make_room(map, now, window);
    let times = map.entry(key).or_default();
    prune(times, now, window);
    times.push_back(now);
    times.len()
}

fn count<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, VecDeque<Instant>>,
    key: &K,
    now: Instant,
    window: Duration,
) -> usize {
    map.get_mut(key).map_or(0, |times| {
        prune(times, now, window);
        times.len()
    })
}

/// The failure counters: pure bookkeeping, no I/O, so that the rules can be tested alone.
#[derive(Default)]
struct Counters {
    by_client: HashMap<ClientKey, VecDeque<Instant>>,
    by_pair: HashMap<(ClientKey, String), VecDeque<Instant>>,
    by_login: HashMap<String, VecDeque<Instant>>,
}

impl Counters {
    /// Whether `login` is refused from `client` now.
    fn refused(&mut self, s: &GuardSettings, client: ClientKey, login: &str, now: Instant) -> bool {
        if login.is_empty() {
            return false;
        }
        let pair = count(&mut self.by_pair, &(client, login.to_owned()), now, s.window);
        let all = count(&mut self.by_login, &login.to_owned(), now, s.window);
        pair >= s.failures_per_login as usize || (pair > 0 && all >= s.failures_per_account as usize)
    }

    /// Counts one failure. A login's failures beyond `failures_per_login` from one client do
    /// not count toward the client: that pair is refused on its own.
    fn fail(&mut self, s: &GuardSettings, client: ClientKey, login: &str, now: Instant) -> Tally {
        let (pair, login_n) = if login.is_empty() {
            (0, 0)
        } else {
            (
                record(&mut self.by_pair, (client, login.to_owned()), now, s.window),
                record(&mut self.by_login, login.to_owned(), now, s.window),
            )
        };
        let counts_for_client = login.is_empty() || pair <= s.failures_per_login as usize;
        let client_n = if counts_for_client {
            record(&mut self.by_client, client, now, s.window)
        } else {
            count(&mut self.by_client, &client, now, s.window)
        };
        Tally { client: client_n, pair, login: login_n }
    }

    /// A good sign-in forgives the pair's failures (not the client's: other logins failing
    /// from the same network are none of this one's business).
    fn forgive(&mut self, client: ClientKey, login: &str) {
        self.by_pair.remove(&(client, login.to_owned()));
    }

    fn forget_client(&mut self, client: ClientKey) {
        self.by_client.remove(&client);
    }
}

pub struct Guard {
    settings: GuardSettings,
    counters: Mutex<Counters>,
    blocks: RwLock<Vec<ActiveBlock>>,
    refusals_audited: Mutex<HashMap<Network, Instant>>,
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
            Ok(network) => Some(ActiveBlock {
                network,
                until: r.until.map(Timestamp::from_micros),
                automatic: r.created_by == AUTOMATIC_BY,
                reason: r.reason,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a stored block");
                None
            }
        })
        .collect()
}

fn normalized(login: &str) -> String {
    login.trim().to_lowercase()
}

impl Guard {
    pub async fn load(
        settings: GuardSettings,
        store: Store,
        audit: Audit,
    ) -> Result<Guard, carepost_store::StoreError> {
        let blocks = active(store.active_blocks(Timestamp::now().as_micros()).await?);
        Ok(Guard {
            settings,
            counters: Mutex::new(Counters::default()),
            blocks: RwLock::new(blocks),
            refusals_audited: Mutex::new(HashMap::new()),
            store,
            audit,
        })
    }

    /// Re-reads blocks from the store.
    pub async fn refresh(&self) -> Result<(), carepost_store::StoreError> {
        let blocks = active(self.store.active_blocks(Timestamp::now().as_micros()).await?);
        *self.blocks.write().unwrap_or_else(|p| p.into_inner()) = blocks;
        Ok(())
    }

    /// Whether `ip` is in a trusted network, which automatic blocks never touch.
    pub fn trusted(&self, ip: IpAddr) -> bool {
        self.settings.trusted.iter().any(|n| n.contains(ip))
    }

    /// The block that refuses `ip`, if any.
    pub fn blocked(&self, ip: IpAddr) -> Option<ActiveBlock> {
        let now = Timestamp::now();
        let trusted = self.trusted(ip);
        let blocks = self.blocks.read().unwrap_or_else(|p| p.into_inner());
        // A trusted network is spared automatic blocks, even ones stored before it was
        // trusted or made by another node; an administrator's block still holds.
        blocks
            .iter()
            .find(|b| b.network.contains(ip) && b.until.is_none_or(|u| u > now) && !(trusted && b.automatic))
            .cloned()
    }

    /// Audits a connection or request refused because of `block` (`channel`: "smtp",
    /// "web"), at most once a minute per blocked network.
    pub async fn refused_blocked(&self, ip: IpAddr, block: &ActiveBlock, channel: &str) {
        {
            let now = Instant::now();
            let mut seen = self.refusals_audited.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(&block.network).is_some_and(|t| now.duration_since(*t) < REFUSAL_AUDIT_EVERY) {
                return;
            }
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
            seen.insert(block.network, now);
        }
        let event = Event::new(channel, format!("{channel}.blocked"))
            .target(format!("ip:{}", block.network))
            .ip(Some(ip))
            .outcome(Outcome::Denied)
            .detail("reason", &block.reason);
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a refused client");
        }
    }

    /// Whether `login` is refused from `ip` because it failed too often from there (or
    /// fails from everywhere). Other logins from the same client are not affected.
    pub fn login_refused(&self, ip: IpAddr, login: &str) -> bool {
        if self.trusted(ip) {
            return false;
        }
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).refused(
            &self.settings,
            ClientKey::of(ip),
            &normalized(login),
            Instant::now(),
        )
    }

    /// Audits a sign-in refused by [`Guard::login_refused`] (nothing is counted: the
    /// password was not looked at).
    pub async fn refused_login(&self, ip: IpAddr, login: &str, mechanism: &str) {
        let event = Event::new("smtp", "smtp.auth")
            .ip(Some(ip))
            .outcome(Outcome::Denied)
            .detail("mechanism", mechanism)
            .detail("reason", "too many failures for this login from this client")
            .detail_hashed("login", normalized(login).as_bytes());
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a refused sign-in");
        }
    }

    /// Audits that failed SMTP sign-ins locked an account (the same lock, and the same
    /// record, as the staff pages' `staff.lockout`).
    pub async fn account_locked(&self, ip: IpAddr, account_id: &str) {
        let event = Event::new("smtp", "staff.lockout")
            .target(format!("account:{account_id}"))
            .ip(Some(ip))
            .detail("after", "smtp-password");
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a lockout");
        }
    }

    /// Forgets the failures of `login` from `ip`'s client (after its right password).
    pub fn forgive(&self, ip: IpAddr, login: &str) {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).forgive(ClientKey::of(ip), &normalized(login));
    }

    /// Records a successful sign-in: audited, and the login's failures from this client are
    /// forgiven.
    pub async fn signed_in(
        &self,
        ip: IpAddr,
        login: &str,
        account_id: &str,
        mechanism: &str,
        app_password: Option<&str>,
    ) {
        self.forgive(ip, login);
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

    /// Records a failed sign-in (`login` empty when there is none, as for portal codes).
    /// Returns the new block when this failure made the client blocked.
    pub async fn failed(&self, ip: IpAddr, login: &str, mechanism: &str) -> Option<ActiveBlock> {
        self.failed_with(ip, login, mechanism, None, Outcome::Failure, &[]).await
    }

    /// [`Guard::failed`] with what the audit record should say: the account (when the login
    /// names one), the outcome (`Denied` for an attempt a lock stopped) and details.
    pub async fn failed_with(
        &self,
        ip: IpAddr,
        login: &str,
        mechanism: &str,
        account_id: Option<&str>,
        outcome: Outcome,
        details: &[(&str, &str)],
    ) -> Option<ActiveBlock> {
        let login = normalized(login);
        let client = ClientKey::of(ip);
        let tally = self.counters.lock().unwrap_or_else(|p| p.into_inner()).fail(
            &self.settings,
            client,
            &login,
            Instant::now(),
        );
        let mut event = Event::new("smtp", "smtp.auth")
            .ip(Some(ip))
            .outcome(outcome)
            .detail("mechanism", mechanism)
            .detail("failures_from_ip", tally.client)
            .detail("failures_of_login_from_ip", tally.pair)
            .detail_hashed("login", login.as_bytes());
        if let Some(id) = account_id {
            event = event.target(format!("account:{id}"));
        }
        for (k, v) in details {
            event = event.detail(*k, v);
        }
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "cannot audit a failed sign-in");
        }
        if tally.client < self.settings.failures_per_ip as usize || self.trusted(ip) {
            return None;
        }
        let reason = format!("{} failed sign-ins from this network", tally.client);
        Some(self.block_automatically(ip, client, reason).await)
    }

    async fn block_automatically(&self, ip: IpAddr, client: ClientKey, reason: String) -> ActiveBlock {
        let network = Network::from(client);
        let now = Timestamp::now();
        let until = now.plus_seconds(i64::try_from(self.settings.block_for.as_secs()).unwrap_or(i64::MAX));
        let block = ActiveBlock { network, until: Some(until), reason: reason.clone(), automatic: true };
        {
            let mut blocks = self.blocks.write().unwrap_or_else(|p| p.into_inner());
            blocks.retain(|b| b.network != network);
            blocks.push(block.clone());
        }
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).forget_client(client);
        let row = BlockRow {
            network: network.to_string(),
            until: Some(until.as_micros()),
            reason: reason.clone(),
            created_by: AUTOMATIC_BY.into(),
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

/// The `created_by` of automatic blocks (an administrator's say `cli`).
pub const AUTOMATIC_BY: &str = "smtp";

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GuardSettings {
        GuardSettings {
            failures_per_ip: 12,
            failures_per_login: 5,
            failures_per_account: 10,
            ..GuardSettings::default()
        }
    }

    fn key(ip: &str) -> ClientKey {
        ClientKey::of(ip.parse().unwrap())
    }

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

    #[test]
    fn one_mistyping_login_is_refused_alone() {
        let s = settings();
        let mut c = Counters::default();
        let (nat, now) = (key("192.0.2.7"), Instant::now());
        for n in 1..=5 {
            assert!(!c.refused(&s, nat, "a@clinic.example", now));
            assert_eq!(c.fail(&s, nat, "a@clinic.example", now).pair, n);
        }
        assert!(c.refused(&s, nat, "a@clinic.example", now), "the pair is refused after five");
        assert!(!c.refused(&s, nat, "b@clinic.example", now), "another login from the same client is not");
        assert!(!c.refused(&s, key("198.51.100.1"), "a@clinic.example", now), "nor the same login from elsewhere");
        // A device that keeps retrying does not push the client toward a block.
        for _ in 0..50 {
            assert_eq!(c.fail(&s, nat, "a@clinic.example", now).client, 5);
        }
        // The pair's failures age out of the window.
        assert!(!c.refused(&s, nat, "a@clinic.example", now + s.window));
    }

    #[test]
    fn spraying_many_logins_adds_up_for_the_client() {
        let s = settings();
        let mut c = Counters::default();
        let now = Instant::now();
        let last = (0..12).map(|i| c.fail(&s, key("203.0.113.9"), &format!("user{i}"), now)).last().unwrap();
        assert_eq!(last.client, 12);
        assert_eq!(c.fail(&s, key("203.0.113.9"), "", now).client, 13, "failures without a login count for the client");
    }

    #[test]
    fn a_login_failing_everywhere_is_refused_to_every_failing_client() {
        let s = settings();
        let mut c = Counters::default();
        let now = Instant::now();
        for i in 0..10 {
            c.fail(&s, key(&format!("198.51.100.{i}")), "boss", now);
        }
        assert!(c.refused(&s, key("198.51.100.3"), "boss", now));
        assert!(!c.refused(&s, key("192.0.2.1"), "boss", now), "a client that never failed for it is not refused");
        c.forgive(key("198.51.100.3"), "boss");
        assert!(!c.refused(&s, key("198.51.100.3"), "boss", now), "a good sign-in forgives the pair");
    }

    #[test]
    fn ipv6_clients_are_counted_by_slash_64() {
        let s = settings();
        let mut c = Counters::default();
        let now = Instant::now();
        for i in 1..=5 {
            c.fail(&s, key(&format!("2001:db8:1:2::{i:x}")), "a", now);
        }
        assert!(
            c.refused(&s, key("2001:db8:1:2:dead:beef::1"), "a", now),
            "another address of the same /64 is the same client"
        );
        assert!(!c.refused(&s, key("2001:db8:1:3::1"), "a", now), "the next /64 is another client");
        let rotating =
            (1..=12).map(|i| c.fail(&s, key(&format!("2001:db8:9:9::{i:x}")), &format!("u{i}"), now)).last().unwrap();
        assert_eq!(rotating.client, 12, "rotating addresses within a /64 does not reset the count");
    }
}
