//! The key under which carepost counts a client for rate limits, failed sign-ins and
//! automatic blocks.
//!
//! An IPv4 address is one client. An IPv6 client usually holds a whole /64 (SLAAC, privacy
//! addresses, one subscriber's allocation) and can rotate through it at will, so per-address
//! guards that keyed on the full IPv6 address would count every new address as a new
//! client. SMTP, the web pages and the API all key on [`ClientKey`] so that they agree.

use std::fmt;
use std::net::IpAddr;

/// Bits of an IPv6 address that name one client.
pub const IPV6_CLIENT_PREFIX: u8 = 64;

/// The address as the connection shows it: IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is the
/// IPv4 address, so that a dual-stack listener counts IPv4 clients as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// One client for counting purposes: an IPv4 address, or the /64 of an IPv6 address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match canonical_ip(ip) {
            IpAddr::V6(v6) => {
                let mask = u128::MAX << (128 - u32::from(IPV6_CLIENT_PREFIX));
                ClientKey(IpAddr::V6((u128::from(v6) & mask).into()))
            }
            v4 => ClientKey(v4),
        }
    }

    /// The first address of the client's block.
    pub fn base(self) -> IpAddr {
        self.0
    }

    /// The block's prefix length: 32 for IPv4, 64 for IPv6.
    pub fn prefix(self) -> u8 {
        if self.0.is_ipv4() { 32 } else { IPV6_CLIENT_PREFIX }
    }
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        ClientKey::of(ip)
    }
}

/// `192.0.2.7` or `2001:db8:1:2::/64`: the form `carepost block` takes.
impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ipv4() { write!(f, "{}", self.0) } else { write!(f, "{}/{}", self.0, IPV6_CLIENT_PREFIX) }
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn ipv6_clients_are_their_slash_64() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(key("2001:db8:1:2:a:b:c:d").to_string(), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1").prefix(), 64);
    }

    #[test]
    fn ipv4_clients_are_their_address() {
        assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"), "IPv4-mapped is IPv4");
        assert_eq!(key("192.0.2.7").prefix(), 32);
        assert_eq!(key("::1").to_string(), "::/64");
    }
}
