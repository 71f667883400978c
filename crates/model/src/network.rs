//! Client networks: single addresses and CIDR blocks, for relay_networks and blocks.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block such as `192.0.2.0/24` or `2001:db8::/32`; a bare address is a /32 or
/// /128. Host bits are cleared so that equal networks print the same.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not an IP address or CIDR network such as 192.0.2.0/24")]
pub struct NetworkError(pub String);

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((bits & m).into())
        }
    }
}

use crate::{ClientKey, canonical_ip};

impl Network {
    pub fn host(ip: IpAddr) -> Self {
        let ip = canonical_ip(ip);
        Network { base: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_ipv4() == self.base.is_ipv4() && mask(ip, self.prefix) == self.base
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

/// The block that covers one client: an IPv4 address, or an IPv6 /64.
impl From<ClientKey> for Network {
    fn from(key: ClientKey) -> Self {
        Network { base: key.base(), prefix: key.prefix() }
    }
}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Self, NetworkError> {
        let err = || NetworkError(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let ip = canonical_ip(addr.parse::<IpAddr>().map_err(|_| err())?);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Network { base: mask(ip, prefix), prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.base.is_ipv4() { 32 } else { 128 };
        if self.prefix == host { write!(f, "{}", self.base) } else { write!(f, "{}/{}", self.base, self.prefix) }
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

serde_as_text!(Network);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_addresses_inside_the_block() {
        let n: Network = "192.0.2.77/24".parse().unwrap();
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert!(n.contains("192.0.2.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.5".parse().unwrap()));
        let v6: Network = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert_eq!("127.0.0.1".parse::<Network>().unwrap().to_string(), "127.0.0.1");
        let client = Network::from(ClientKey::of("2001:db8:1:2::7".parse().unwrap()));
        assert_eq!(client.to_string(), "2001:db8:1:2::/64");
        assert_eq!(client.to_string().parse::<Network>().unwrap(), client);
        assert!(
            client.contains("2001:db8:1:2:ffff::1".parse().unwrap())
                && !client.contains("2001:db8:1:3::1".parse().unwrap())
        );
        for bad in ["", "10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "::/129", "x", "10.0.0.0/+8", "1.2.3.4/8/8"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,50}") {
            let _ = s.parse::<Network>();
        }

        #[test]
        fn a_network_contains_its_own_addresses(a in any::<u32>(), p in 0u8..=32) {
            let n: Network = format!("{}/{p}", std::net::Ipv4Addr::from(a)).parse().unwrap();
            prop_assert!(n.contains(IpAddr::V4(a.into())));
        }
    }
}
