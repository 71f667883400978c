//! When to try again: exponential back-off from `retry_first` up to `retry_max`, like
//! Postfix's minimal and maximal backoff times, with a little jitter so that a burst of
//! failures does not come back as one burst.

use crate::config::DeliveryConfig;

/// Seconds to wait after the `attempts`-th failed attempt (1 for the first). `salt` (from
/// the message id) spreads retries of different messages by up to a tenth.
pub fn backoff_secs(config: &DeliveryConfig, attempts: i64, salt: u64) -> i64 {
    let first = config.retry_first.as_secs().max(1);
    let max = config.retry_max.as_secs().max(first);
    let factor = u64::from(config.retry_factor.max(1));
    let mut wait = first;
    for _ in 1..attempts.clamp(1, 64) {
        wait = wait.saturating_mul(factor);
        if wait >= max {
            wait = max;
            break;
        }
    }
    let jitter = if wait >= 10 { salt % (wait / 10 + 1) } else { 0 };
    i64::try_from(wait.saturating_add(jitter).min(max + max / 10)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Interval;

    #[test]
    fn backs_off_exponentially_to_the_maximum() {
        let c = DeliveryConfig {
            retry_first: Interval::secs(300),
            retry_max: Interval::secs(4 * 3600),
            ..Default::default()
        };
        let plain: Vec<i64> = (1..=8).map(|a| backoff_secs(&c, a, 0)).collect();
        assert_eq!(plain, vec![300, 600, 1200, 2400, 4800, 9600, 14400, 14400]);
        for a in 1..10 {
            let w = backoff_secs(&c, a, u64::MAX);
            assert!(w >= plain[(a as usize - 1).min(7)] && w <= 14400 + 1440, "{a}: {w}");
        }
    }
}
