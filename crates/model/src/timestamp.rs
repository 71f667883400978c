//! Wall-clock instants as carepost stores them: microseconds since the Unix epoch, UTC.
//! An integer is portable across SQLite and PostgreSQL and sorts correctly; RFC 3339 is for
//! people.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_datetime(t: OffsetDateTime) -> Self {
        let micros = t.unix_timestamp_nanos() / 1_000;
        Timestamp(micros.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses RFC 3339 (`2026-11-23T10:00:00Z`) or a plain date (`2026-11-23`, midnight UTC).
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
            return Some(Timestamp::from_datetime(t));
        }
        let date = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
        Some(Timestamp::from_datetime(date.midnight().assume_utc()))
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// RFC 3339 with microseconds, as used in exports and the audit log.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime().format(&Rfc3339).unwrap_or_else(|_| self.0.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_rfc3339() {
        let t = Timestamp::parse("2026-11-23T10:00:00.5Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:00:00.5Z");
        assert_eq!(Timestamp::parse("2026-11-23").unwrap().to_rfc3339(), "2026-11-23T00:00:00Z");
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::now() > t.plus_seconds(-1));
    }
}
