//! Durations as the configuration writes them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written like `30s`, `5m`, `4h`, `5d` or `1h30m` in the configuration.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Interval(pub Duration);

impl Interval {
    pub const fn secs(s: u64) -> Self {
        Interval(Duration::from_secs(s))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a duration such as 30s, 5m, 4h, 5d or 1h30m")]
pub struct IntervalError(String);

impl FromStr for Interval {
    type Err = IntervalError;

    fn from_str(text: &str) -> Result<Self, IntervalError> {
        let bad = || IntervalError(text.to_owned());
        let mut total: u64 = 0;
        let mut number: Option<u64> = None;
        for c in text.trim().chars() {
            if let Some(d) = c.to_digit(10) {
                number = Some(
                    number.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(u64::from(d))).ok_or_else(bad)?,
                );
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return Err(bad()),
            };
            let n = number.take().ok_or_else(bad)?;
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        }
        if number.is_some() || text.trim().is_empty() {
            return Err(bad());
        }
        Ok(Interval::secs(total))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.0.as_secs();
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= size {
                write!(f, "{}{unit}", s / size)?;
                s %= size;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

serde_as_text!(Interval);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_print() {
        for (text, secs, shown) in [
            ("30s", 30, "30s"),
            ("5m", 300, "5m"),
            ("1h30m", 5400, "1h30m"),
            ("5d", 432000, "5d"),
            ("0s", 0, "0s"),
            ("90m", 5400, "1h30m"),
        ] {
            let i: Interval = text.parse().unwrap();
            assert_eq!(i.as_secs(), secs);
            assert_eq!(i.to_string(), shown);
        }
        for bad in ["", "5", "m", "5x", "-5m", "99999999999999999999d"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }
}
