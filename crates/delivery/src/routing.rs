//! Where a recipient's mail goes: the smart host, a transport map entry, or the recipient
//! domain's MX hosts (RFC 5321 section 5.1), with the implicit MX and null MX (RFC 7505).

use std::net::IpAddr;

use crate::config::{DeliveryConfig, SmartHostTls};
use crate::dns::{Dns, DnsError};

/// How a next hop is found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Look up the MX records of `domain`, then connect to `port` on those hosts.
    Mx { domain: String, port: u16 },
    /// Connect to `host` (a name or an address) on `port`, without an MX look-up.
    Direct { host: String, port: u16 },
}

/// What kind of route chose the next hop; it decides which TLS policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// The configured smart host, protected as `smart_host_tls` says.
    SmartHost(SmartHostTls),
    /// A transport map entry: the recipient domain's TLS policy applies to the hop.
    Transport,
    /// The recipient domain's own MX hosts.
    Mx,
}

/// A recipient domain's route. Recipients with equal routes share a destination queue and
/// its connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub kind: RouteKind,
    pub hop: NextHop,
    /// The recipient domain (TLS policy is per domain). For the smart host it is empty: all
    /// domains share one queue there.
    pub domain: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a next hop: use host, host:port, [host] or [host]:port")]
pub struct HopError(pub String);

/// Parses `host`, `host:port`, `[host]` or `[host]:port` (and `[IPv6]:port`).
pub fn parse_hop(text: &str, default_port: u16) -> Result<NextHop, HopError> {
    let bad = || HopError(text.to_owned());
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => default_port,
            p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(bad)?,
        };
        if host.is_empty() {
            return Err(bad());
        }
        return Ok(NextHop::Direct { host: host.to_ascii_lowercase(), port });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().map_err(|_| bad())?),
        _ => (text, default_port),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(NextHop::Direct { host: host.to_owned(), port });
    }
    Ok(NextHop::Mx { domain: host.to_ascii_lowercase(), port })
}

/// The route for mail to `domain`. `mx_port` is 25 except in tests.
pub fn route_for(config: &DeliveryConfig, domain: &str, mx_port: u16) -> Result<Route, HopError> {
    let domain = domain.to_ascii_lowercase();
    match config.transport_for(&domain) {
        Some("mx") => {}
        Some(entry) => {
            return Ok(Route { kind: RouteKind::Transport, hop: parse_hop(entry, mx_port)?, domain });
        }
        None if !config.smart_host.trim().is_empty() => {
            let hop = match parse_hop(&config.smart_host, 25)? {
                // A smart host is named, never looked up by MX (Postfix's relayhost takes
                // brackets for that; carepost always means the host itself).
                NextHop::Mx { domain: host, port } => NextHop::Direct { host, port },
                direct => direct,
            };
            return Ok(Route { kind: RouteKind::SmartHost(config.smart_host_tls), hop, domain: String::new() });
        }
        None => {}
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let host = literal.strip_prefix("IPv6:").unwrap_or(literal).to_owned();
        return Ok(Route { kind: RouteKind::Mx, hop: NextHop::Direct { host, port: mx_port }, domain });
    }
    Ok(Route { kind: RouteKind::Mx, hop: NextHop::Mx { domain: domain.clone(), port: mx_port }, domain })
}

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub host: String,
    pub port: u16,
    /// Whether the MX answer that named this host was DNSSEC-validated (DANE needs it).
    pub mx_secure: bool,
    /// True for a host named by the MX records (or the implicit MX), false for a named host.
    pub from_mx: bool,
}

/// Why no host could be found.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RoutingError {
    /// RFC 7505: the domain accepts no mail.
    #[error("the domain publishes a null MX: it accepts no mail")]
    NullMx,
    #[error("the recipient domain does not exist")]
    NoSuchDomain,
    #[error("the recipient domain has no mail server (no MX and no address records)")]
    NoMailServer,
    #[error("DNS: {0}")]
    Temporary(String),
}

impl RoutingError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, RoutingError::Temporary(_))
    }
}

/// The hosts to try for `hop`, best first. Hosts of equal preference are shuffled so that
/// load spreads as RFC 5321 section 5.1 asks.
pub async fn candidates(dns: &dyn Dns, hop: &NextHop) -> Result<Vec<Candidate>, RoutingError> {
    let (domain, port) = match hop {
        NextHop::Direct { host, port } => {
            return Ok(vec![Candidate { host: host.clone(), port: *port, mx_secure: false, from_mx: false }]);
        }
        NextHop::Mx { domain, port } => (domain, *port),
    };
    match dns.mx(domain).await {
        Ok(answer) => {
            let mut records = answer.records;
            if records.len() == 1 && records[0].exchange.is_empty()
                || records.iter().any(|r| r.exchange.is_empty() && r.preference == 0)
            {
                return Err(RoutingError::NullMx);
            }
            records.retain(|r| !r.exchange.is_empty());
            let mut salt = [0u8; 8];
            let _ = aws_lc_rs::rand::fill(&mut salt);
            let salt = u64::from_le_bytes(salt);
            records.sort_by_key(|r| (r.preference, shuffle_key(salt, &r.exchange)));
            let mut seen = std::collections::HashSet::new();
            Ok(records
                .into_iter()
                .filter(|r| seen.insert(r.exchange.clone()))
                .map(|r| Candidate { host: r.exchange, port, mx_secure: answer.secure, from_mx: true })
                .collect())
        }
        Err(DnsError::NoRecords { secure, .. }) => {
            // RFC 5321 section 5.1: no MX records, so the domain itself is the implicit MX,
            // if it has an address.
            match dns.ips(domain).await {
                Ok(_) => Ok(vec![Candidate { host: domain.clone(), port, mx_secure: secure, from_mx: true }]),
                Err(e) if e.is_absent() => Err(RoutingError::NoMailServer),
                Err(e) => Err(RoutingError::Temporary(e.to_string())),
            }
        }
        Err(DnsError::NoSuchDomain { .. }) => Err(RoutingError::NoSuchDomain),
        Err(e) => Err(RoutingError::Temporary(e.to_string())),
    }
}

fn shuffle_key(salt: u64, host: &str) -> u64 {
    // FNV-1a over the host, keyed by a per-look-up salt: a fresh order each time.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
    for b in host.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::StaticDns;

    #[test]
    fn hops_parse() {
        assert_eq!(parse_hop("[10.0.0.5]:2525", 25), Ok(NextHop::Direct { host: "10.0.0.5".into(), port: 2525 }));
        assert_eq!(parse_hop("[Relay.Example]", 25), Ok(NextHop::Direct { host: "relay.example".into(), port: 25 }));
        assert_eq!(parse_hop("relay.example:587", 25), Ok(NextHop::Mx { domain: "relay.example".into(), port: 587 }));
        assert_eq!(parse_hop("127.0.0.1:2526", 25), Ok(NextHop::Direct { host: "127.0.0.1".into(), port: 2526 }));
        assert_eq!(parse_hop("[::1]:26", 25), Ok(NextHop::Direct { host: "::1".into(), port: 26 }));
        for bad in ["", "[x", "[]:25", "host:port", "a b"] {
            assert!(parse_hop(bad, 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn smart_host_transport_and_mx_routes() {
        let mut c = DeliveryConfig::default();
        assert_eq!(
            route_for(&c, "Example.org", 25).unwrap().hop,
            NextHop::Mx { domain: "example.org".into(), port: 25 }
        );
        c.smart_host = "relay.internal:2526".into();
        c.smart_host_tls = SmartHostTls::None;
        c.transport.insert("partner.org".into(), "[10.1.1.1]".into());
        c.transport.insert("direct.org".into(), "mx".into());
        let r = route_for(&c, "example.org", 25).unwrap();
        assert_eq!(r.kind, RouteKind::SmartHost(SmartHostTls::None));
        assert_eq!(r.hop, NextHop::Direct { host: "relay.internal".into(), port: 2526 });
        assert_eq!(r, route_for(&c, "other.net", 25).unwrap(), "all domains share the smart host queue");
        assert_eq!(route_for(&c, "partner.org", 25).unwrap().kind, RouteKind::Transport);
        assert_eq!(route_for(&c, "direct.org", 25).unwrap().kind, RouteKind::Mx);
        c.smart_host.clear();
        assert_eq!(
            route_for(&c, "[127.0.0.1]", 2525).unwrap().hop,
            NextHop::Direct { host: "127.0.0.1".into(), port: 2525 }
        );
    }

    #[tokio::test]
    async fn mx_order_implicit_mx_and_null_mx() {
        let dns = StaticDns::new();
        dns.add_mx("a.test", 20, "backup.a.test").add_mx("a.test", 10, "mx1.a.test").add_mx("a.test", 10, "mx2.a.test");
        dns.add_ip("implicit.test", "127.0.0.1".parse().unwrap());
        dns.add_mx("null.test", 0, ".");
        dns.add_txt("nohost.test", "v=spf1 -all");
        let hop = |d: &str| NextHop::Mx { domain: d.into(), port: 25 };
        let hosts: Vec<String> = candidates(&dns, &hop("a.test")).await.unwrap().into_iter().map(|c| c.host).collect();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[2], "backup.a.test");
        assert!(hosts[..2].contains(&"mx1.a.test".to_owned()) && hosts[..2].contains(&"mx2.a.test".to_owned()));
        let implicit = candidates(&dns, &hop("implicit.test")).await.unwrap();
        assert_eq!(implicit[0].host, "implicit.test");
        assert_eq!(candidates(&dns, &hop("null.test")).await, Err(RoutingError::NullMx));
        assert_eq!(candidates(&dns, &hop("missing.test")).await, Err(RoutingError::NoSuchDomain));
        assert_eq!(candidates(&dns, &hop("nohost.test")).await, Err(RoutingError::NoMailServer));
        dns.set_failing("down.test");
        assert!(matches!(candidates(&dns, &hop("down.test")).await, Err(RoutingError::Temporary(_))));
    }
}
