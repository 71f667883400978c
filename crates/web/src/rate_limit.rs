//! A keyed rate limiter: at most `limit` events per key in any `window` (sliding log of the
//! window's events, so a burst at a window's edge cannot double the rate).
//!
//! Memory is bounded: keys whose events have all aged out are dropped when the map grows
//! past its bound, and if every key is live the oldest-looking half is forgotten (an
//! attacker rotating addresses can reset counters, but cannot exhaust memory).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 100_000;

pub struct RateLimiter<K> {
    limit: u32,
    window: Duration,
    events: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K> std::fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RateLimiter({} per {:?})", self.limit, self.window)
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter { limit: limit.max(1), window, events: Mutex::new(HashMap::new()) }
    }

    /// Counts one event for `key`. `Err` carries how long until the key may act again; a
    /// refused event is not counted.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= MAX_KEYS {
                let mut keep = false;
                map.retain(|_, _| {
                    keep = !keep;
                    keep
                });
            }
        }
        let times = map.entry(key.clone()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        if times.len() >= self.limit as usize {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)).max(Duration::from_secs(1)));
        }
        times.push_back(now);
        Ok(())
    }

    /// Events counted for `key` within the window.
    pub fn count(&self, key: &K) -> usize {
        let now = Instant::now();
        let map = self.events.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).map_or(0, |t| t.iter().filter(|t| now.duration_since(**t) < self.window).count())
    }

    /// Forgets `key`'s events (after a successful sign-in, say).
    pub fn forget(&self, key: &K) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_per_window_and_key() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check_at(&"a", t0).unwrap();
        }
        let wait = limiter.check_at(&"a", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(1));
        limiter.check_at(&"b", t0).unwrap();
        limiter.check_at(&"a", t0 + Duration::from_secs(61)).unwrap();
        limiter.forget(&"a");
        assert_eq!(limiter.count(&"a"), 0);
    }
}
