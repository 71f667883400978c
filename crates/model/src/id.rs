//! Identifiers.
//!
//! Object ids are UUIDv7 (time-ordered, so queue scans and audit exports sort by age) written
//! in Crockford base32: 26 characters, case-insensitive, no ambiguous letters, safe in SMTP
//! replies, file names and URLs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A 128-bit, time-ordered identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(u128);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("an id has 26 characters, this one has {0}")]
    Length(usize),
    #[error("'{0}' is not a character of an id")]
    Character(char),
    #[error("id out of range")]
    Overflow,
}

impl Id {
    /// A new id: the current time in milliseconds followed by random bits.
    pub fn new() -> Self {
        Id(uuid::Uuid::now_v7().as_u128())
    }

    pub fn from_u128(value: u128) -> Self {
        Id(value)
    }

    pub fn as_u128(self) -> u128 {
        self.0
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Milliseconds since the Unix epoch at which a v7 id was minted.
    pub fn unix_millis(self) -> u64 {
        (self.0 >> 80) as u64
    }
}

impl Default for Id {
    fn default() -> Self {
        Id::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 26 symbols of 5 bits = 130 bits; the first symbol carries the top 3 bits.
        let mut out = [0u8; 26];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = CROCKFORD[(v & 31) as usize];
            v >>= 5;
        }
        // SAFETY of the conversion: every byte comes from the ASCII alphabet above.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Id {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != 26 {
            return Err(IdError::Length(chars.len()));
        }
        let mut v: u128 = 0;
        for (i, c) in chars.into_iter().enumerate() {
            let digit = match c.to_ascii_uppercase() {
                'O' => 0,
                'I' | 'L' => 1,
                u => CROCKFORD.iter().position(|&a| a as char == u).ok_or(IdError::Character(c))? as u128,
            };
            if i == 0 && digit > 7 {
                return Err(IdError::Overflow);
            }
            v = (v << 5) | digit;
        }
        Ok(Id(v))
    }
}

serde_as_text!(Id);

/// The id of one message as carepost knows it, from acceptance to archive.
pub type MessageId = Id;

/// A tenant: one organization whose keys, users, policies and data are kept apart from
/// every other's. A single-organization install has just `default`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TenantId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a tenant id is 1 to 63 characters of a-z, 0-9 and '-', not starting with '-': '{0}'")]
pub struct TenantIdError(pub String);

impl TenantId {
    pub fn new(name: &str) -> Result<Self, TenantIdError> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(TenantId(name.to_owned())) } else { Err(TenantIdError(name.to_owned())) }
    }

    pub fn default_tenant() -> Self {
        TenantId("default".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        TenantId::default_tenant()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::new(s)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = Id::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Id::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn id_parse_rejects_bad_input() {
        assert_eq!("abc".parse::<Id>(), Err(IdError::Length(3)));
        assert!(matches!("8ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<Id>(), Err(IdError::Overflow)));
        assert!(matches!("0000000000000000000000000U".parse::<Id>(), Err(IdError::Character('U'))));
        assert!("é".repeat(26).parse::<Id>().is_err());
    }

    #[test]
    fn tenant_ids_are_slugs() {
        assert!(TenantId::new("clinic-7").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("-x").is_err());
        assert!(TenantId::new("Upper").is_err());
        assert!(TenantId::new(&"a".repeat(64)).is_err());
    }

    proptest! {
        #[test]
        fn id_text_round_trips(v in any::<u128>()) {
            let id = Id::from_u128(v);
            let text = id.to_string();
            prop_assert_eq!(text.len(), 26);
            prop_assert_eq!(text.parse::<Id>().unwrap(), id);
            prop_assert_eq!(text.to_lowercase().parse::<Id>().unwrap(), id);
        }

        #[test]
        fn id_parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<Id>();
        }
    }
}
