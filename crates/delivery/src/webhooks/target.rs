//! Where webhook POSTs may go. An endpoint URL is chosen by whoever can run `carepost webhook
//! add`, but the POST leaves from inside the network: without a check, a URL naming
//! `169.254.169.254`, `localhost` or a host on the clinic's LAN would make carepost a probe
//! of (and a courier into) places its operator never meant to expose. Loopback, private,
//! link-local, shared (CGNAT), unique-local, multicast, unspecified and cloud metadata
//! addresses are refused unless `webhooks.allowed_networks` lists them (or, for loopback,
//! `webhooks.allow_http_loopback` is on).
//!
//! The check is made at registration, for a clear error, and again on every connection: the
//! HTTP client resolves names through [`CheckedResolver`], which hands it only permitted
//! addresses, so the address checked is the address connected to and a DNS answer that
//! changes after registration (rebinding) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use carepost_model::Network;

use super::{UrlError, WebhooksConfig};

/// An IPv4 address written as IPv6 (mapped `::ffff:a.b.c.d` or NAT64 `64:ff9b::a.b.c.d`)
/// is judged as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return IpAddr::V4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, or `None` for an address on the internet.
pub fn restricted_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4 == Ipv4Addr::new(169, 254, 169, 254) || (a, b, c) == (100, 100, 100) {
                Some("cloud metadata")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_private() {
                Some("private")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (CGNAT)")
            } else if a == 0 || v4.is_broadcast() || a >= 240 {
                Some("reserved")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if (a, b, c) == (192, 0, 0) || (a == 198 && (b == 18 || b == 19)) {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("reserved")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// Which addresses webhook POSTs may reach.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allowed: Vec<Network>,
    loopback: bool,
}

/// Why a target address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address} is a {kind} address; webhooks are not sent to such addresses unless webhooks.allowed_networks lists them"
)]
pub struct Refused {
    pub address: IpAddr,
    pub kind: &'static str,
}

impl TargetPolicy {
    pub fn from_config(config: &WebhooksConfig) -> Result<TargetPolicy, UrlError> {
        let allowed = config
            .allowed_networks
            .iter()
            .map(|n| n.parse::<Network>().map_err(|_| UrlError::Network(n.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TargetPolicy { allowed, loopback: config.allow_http_loopback })
    }

    /// Whether a POST may go to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(kind) = restricted_kind(ip) else { return Ok(()) };
        if self.allowed.iter().any(|n| n.contains(canonical(ip))) || (kind == "loopback" && self.loopback) {
            return Ok(());
        }
        Err(Refused { address: ip, kind })
    }

    /// Checks the host of a URL at registration: an address literal strictly; a name by
    /// what it resolves to now (a name that does not resolve yet is left to the check made
    /// on every connection).
    pub async fn check_url_host(&self, url: &reqwest::Url) -> Result<(), UrlError> {
        let refused =
            |r: Refused| UrlError::Private { host: url.host_str().unwrap_or("").to_owned(), reason: r.to_string() };
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)).map_err(refused),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)).map_err(refused),
            Some(url::Host::Domain(name)) => {
                let port = url.port_or_known_default().unwrap_or(443);
                let Ok(Ok(addrs)) =
                    tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((name, port))).await
                else {
                    return Ok(());
                };
                for addr in addrs {
                    self.check(addr.ip()).map_err(refused)?;
                }
                Ok(())
            }
            None => Err(UrlError::NotAUrl(url.to_string())),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The webhook client's resolver: the system's answer, less every address the policy
/// refuses. With nothing left the connection fails with [`Refused`].
pub struct CheckedResolver {
    policy: Arc<TargetPolicy>,
}

impl CheckedResolver {
    pub fn new(policy: Arc<TargetPolicy>) -> Self {
        CheckedResolver { policy }
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => addrs.collect(),
                Err(e) => return Err(Box::new(e) as BoxError),
            };
            let mut refused = None;
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused.get_or_insert(r);
                        false
                    }
                })
                .collect();
            match refused {
                Some(r) if permitted.is_empty() => Err(Box::new(r) as BoxError),
                _ => Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The [`Refused`] somewhere in an error's chain of causes, if the error is a refusal.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    const KINDS: &[&str] = &[
        "loopback",
        "cloud metadata",
        "link-local",
        "private",
        "shared (CGNAT)",
        "reserved",
        "multicast",
        "unique-local",
    ];
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        // A cause boxed along the way may no longer downcast; its words still say it.
        let text = e.to_string();
        if let Some((address, rest)) = text.split_once(" is a ")
            && let Some((kind, _)) = rest.split_once(" address; webhooks are not sent")
            && let (Ok(address), Some(kind)) = (address.trim().parse::<IpAddr>(), KINDS.iter().find(|k| **k == kind))
        {
            return Some(Refused { address, kind });
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_named() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("169.254.169.254", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("64:ff9b::c0a8:101", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("fd12:3456::1", "unique-local"),
            ("0.0.0.0", "reserved"),
            ("::", "reserved"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(restricted_kind(ip(addr)), Some(kind), "{addr}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "100.128.0.1", "172.32.0.1"] {
            assert_eq!(restricted_kind(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_operator_may_allow_networks() {
        let strict = TargetPolicy::default();
        assert_eq!(strict.check(ip("10.9.8.7")), Err(Refused { address: ip("10.9.8.7"), kind: "private" }));
        assert!(strict.check(ip("93.184.216.34")).is_ok());
        let config = WebhooksConfig {
            allowed_networks: vec!["10.9.0.0/16".into(), "fd00::1".into()],
            ..WebhooksConfig::default()
        };
        let open = TargetPolicy::from_config(&config).unwrap();
        assert!(open.check(ip("10.9.8.7")).is_ok());
        assert!(open.check(ip("10.10.0.1")).is_err());
        assert!(open.check(ip("fd00::1")).is_ok());
        assert!(open.check(ip("127.0.0.1")).is_err(), "loopback only with allow_http_loopback");
        let local =
            TargetPolicy::from_config(&WebhooksConfig { allow_http_loopback: true, ..WebhooksConfig::default() })
                .unwrap();
        assert!(local.check(ip("127.0.0.1")).is_ok() && local.check(ip("::1")).is_ok());
        assert!(local.check(ip("169.254.169.254")).is_err());
        for bad in ["10.0.0.0/33", "fd00::/129", "ten", "10.0.0/8"] {
            let config = WebhooksConfig { allowed_networks: vec![bad.into()], ..WebhooksConfig::default() };
            assert!(TargetPolicy::from_config(&config).is_err(), "{bad}");
        }
        assert!("0.0.0.0/0".parse::<Network>().unwrap().contains(ip("8.8.8.8")));
    }
}
