//! Connection limits: overall and per client (an address, or an IPv6 /64).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use carepost_model::ClientKey;

#[derive(Debug)]
struct Counts {
    total: usize,
    by_ip: HashMap<ClientKey, usize>,
}

/// Counts open sessions. A [`Permit`] is one session; dropping it frees the slot.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    Total,
    PerIp,
}

#[derive(Debug)]
pub struct Permit {
    ip: ClientKey,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimiter {
            max_total,
            max_per_ip,
            counts: Arc::new(Mutex::new(Counts { total: 0, by_ip: HashMap::new() })),
        }
    }

    /// Takes a slot for a session from `ip`; `exempt` clients (relay networks) skip the
    /// per-address limit but still count towards the total.
    pub fn acquire(&self, ip: IpAddr, exempt: bool) -> Result<Permit, LimitExceeded> {
        let ip = ClientKey::of(ip);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max_total {
            return Err(LimitExceeded::Total);
        }
        let mine = c.by_ip.get(&ip).copied().unwrap_or(0);
        if !exempt && mine >= self.max_per_ip {
            return Err(LimitExceeded::PerIp);
        }
        c.total += 1;
        c.by_ip.insert(ip, mine + 1);
        Ok(Permit { ip, counts: self.counts.clone() })
    }

    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_address() {
        let l = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = l.acquire(a, false).unwrap();
        let _p2 = l.acquire(a, false).unwrap();
        assert_eq!(l.acquire(a, false).unwrap_err(), LimitExceeded::PerIp);
        let _p3 = l.acquire(b, false).unwrap();
        assert_eq!(l.acquire(b, true).unwrap_err(), LimitExceeded::Total);
        drop(p1);
        assert_eq!(l.open(), 2);
        let _p4 = l.acquire(a, false).unwrap();
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let l = ConnectionLimiter::new(10, 2);
        let _p1 = l.acquire("2001:db8:1:2::1".parse().unwrap(), false).unwrap();
        let _p2 = l.acquire("2001:db8:1:2::2".parse().unwrap(), false).unwrap();
        assert_eq!(l.acquire("2001:db8:1:2:ffff::9".parse().unwrap(), false).unwrap_err(), LimitExceeded::PerIp);
        let _p3 = l.acquire("2001:db8:1:3::1".parse().unwrap(), false).unwrap();
    }
}
