//! Listening addresses as the configuration names them.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A listening address, or off (`""` in the file).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Listen(pub Option<SocketAddr>);

impl Listen {
    /// A listener on `addr`; an unparsable address is off (for defaults written as text).
    pub fn at(addr: &str) -> Listen {
        Listen(addr.parse().ok())
    }
}

impl fmt::Debug for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("off"),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(a) => s.collect_str(&a),
            None => s.serialize_str(""),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(Listen(None));
        }
        text.parse::<SocketAddr>().map(|a| Listen(Some(a))).map_err(|_| {
            serde::de::Error::custom(format!("'{text}' is not an address:port such as 127.0.0.1:2525 or [::1]:2525"))
        })
    }
}
