//! Sender authentication on the MX: SPF, DKIM, ARC and DMARC with mail-auth, summed up in
//! an Authentication-Results header (RFC 8601) and a [`SenderAuthentication`] kept with
//! the message.
//!
//! DNS answers are cached in memory (bounded, honouring TTLs). The caches are also how tests
//! give the verifier DNS records without any network: they pre-load them.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use carepost_model::{Address, SenderAuthentication};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MX, MessageAuthenticator, Parameters,
    RecordSet, ResolverCache, SpfResult, Txt,
};

use crate::config::DmarcEnforcement;
use crate::reply::Reply;

/// Entries each cache holds at most; when full, expired entries go, then everything.
const CACHE_ENTRIES: usize = 10_000;

/// A bounded in-memory DNS cache honouring each answer's expiry.
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, std::time::Instant)>>,
}

impl<K: Hash + Eq, V: Clone> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(name).filter(|(_, until)| *until > std::time::Instant::now()).map(|(v, _)| v.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: std::time::Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            let now = std::time::Instant::now();
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (value, valid_until));
    }
}

/// The DNS caches of one verifier.
#[derive(Default)]
pub struct DnsCaches {
    pub txt: TtlCache<Box<str>, Txt>,
    pub mx: TtlCache<Box<str>, RecordSet<MX>>,
    pub ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    pub ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

impl DnsCaches {
    /// Puts a parsed TXT record (SPF, DKIM key, DMARC policy) under `name` for `ttl`.
    pub fn add_txt(&self, name: &str, record: impl Into<Txt>, ttl: Duration) {
        let key: Box<str> = name.to_fqdn().into_owned().into_boxed_str();
        self.txt.insert(key, record.into(), std::time::Instant::now() + ttl);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("smtp.dns_servers: '{0}' is not an IP address or address:port")]
    DnsServer(String),
    #[error("DNS resolver: {0}")]
    Resolver(String),
}

/// What verification found and what to do about it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `Authentication-Results: ...` CRLF, to prepend to the message.
    pub header: String,
    pub result: SenderAuthentication,
    /// Set when DMARC and the configuration say to refuse the message.
    pub reject: Option<Reply>,
}

pub struct SenderVerifier {
    authenticator: MessageAuthenticator,
    caches: DnsCaches,
    hostname: String,
    enforcement: DmarcEnforcement,
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::None => "none",
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
        Policy::Unspecified => "unspecified",
    }
}

fn resolver_config(servers: &[String]) -> Result<Option<ResolverConfig>, InboundError> {
    if servers.is_empty() {
        return Ok(None);
    }
    let mut name_servers = Vec::new();
    for s in servers {
        let addr = s
            .parse::<SocketAddr>()
            .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map_err(|_| InboundError::DnsServer(s.clone()))?;
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for c in &mut ns.connections {
            c.port = addr.port();
        }
        name_servers.push(ns);
    }
    Ok(Some(ResolverConfig::from_parts(None, Vec::new(), name_servers)))
}

/// A mail-auth lookup that answers from this verifier's DNS caches first.
type CachedParameters<'a, P> = Parameters<
    'a,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

impl SenderVerifier {
    /// A verifier using `dns_servers`, or the system's resolver configuration when empty.
    pub fn new(dns_servers: &[String], hostname: &str, enforcement: DmarcEnforcement) -> Result<Self, InboundError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        let authenticator = match resolver_config(dns_servers)? {
            Some(config) => MessageAuthenticator::new(config, opts),
            None => MessageAuthenticator::new_system_conf(),
        }
        .map_err(|e| InboundError::Resolver(e.to_string()))?;
        Ok(SenderVerifier { authenticator, caches: DnsCaches::default(), hostname: hostname.to_owned(), enforcement })
    }

    pub fn caches(&self) -> &DnsCaches {
        &self.caches
    }

    fn params<P>(&self, p: P) -> CachedParameters<'_, P> {
        Parameters::new(p)
            .with_txt_cache(&self.caches.txt)
            .with_mx_cache(&self.caches.mx)
            .with_ipv4_cache(&self.caches.ipv4)
            .with_ipv6_cache(&self.caches.ipv6)
            .with_ptr_cache(&self.caches.ptr)
    }

    /// Verifies one message as received from `ip` after `HELO helo` and `MAIL FROM:<sender>`.
    pub async fn verify(&self, ip: IpAddr, helo: &str, sender: Option<&Address>, message: &[u8]) -> Verdict {
        let ip = carepost_model::canonical_ip(ip);
        let sender_text = sender.map(|a| a.as_str()).unwrap_or("");
        let mail_from_domain = sender.map(|a| a.domain()).unwrap_or(helo);
        let spf = self
            .authenticator
            .verify_spf(self.params(SpfParameters::verify(ip, helo, &self.hostname, sender_text)))
            .await;
        let mut result = SenderAuthentication {
            spf: spf_word(spf.result()).into(),
            dkim: "none".into(),
            dmarc: "none".into(),
            dmarc_policy: "unspecified".into(),
            arc: "none".into(),
            action: "accept".into(),
            dkim_aligned: false,
            from_domain: String::new(),
        };
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            let header = AuthenticationResults::new(&self.hostname)
                .with_spf_mailfrom_result(&spf, ip, sender_text, helo)
                .to_header();
            return Verdict { header, result, reject: None };
        };
        let dkim = self.authenticator.verify_dkim(self.params(&parsed)).await;
        let arc = self.authenticator.verify_arc(self.params(&parsed)).await;
        let dmarc = self
            .authenticator
            .verify_dmarc(self.params(DmarcParameters::new(&parsed, &dkim, mail_from_domain, &spf)))
            .await;
        result.dkim = if dkim.iter().any(|d| matches!(d.result(), DkimResult::Pass)) {
            "pass".into()
        } else {
            dkim.first().map(|d| dkim_word(d.result())).unwrap_or("none").into()
        };
        result.arc = dkim_word(arc.result()).into();
        result.dmarc = dmarc_word(&dmarc.result()).into();
        result.dmarc_policy = policy_word(dmarc.policy()).into();
        result.dkim_aligned = matches!(dmarc.dkim_result(), DmarcResult::Pass);
        result.from_domain = dmarc.domain().to_ascii_lowercase();
        let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        let mut reject = None;
        if failed {
            let action = match (dmarc.policy(), self.enforcement) {
                (_, DmarcEnforcement::Monitor) => "accept",
                (Policy::Reject, DmarcEnforcement::Enforce) => "reject",
                (Policy::Reject | Policy::Quarantine, _) => "quarantine",
                _ => "accept",
            };
            if action == "reject" {
                reject = Some(Reply::new(
                    550,
                    "5.7.1",
                    format!("Message rejected: it fails the DMARC policy of {}", dmarc.domain()),
                ));
            }
            result.action = action.into();
        }
        let header = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, parsed.from())
            .with_spf_mailfrom_result(&spf, ip, sender_text, helo)
            .with_arc_result(&arc, ip)
            .with_dmarc_result(&dmarc)
            .to_header();
        Verdict { header, result, reject }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_servers_are_checked() {
        assert!(resolver_config(&["127.0.0.1:5353".into(), "::1".into()]).unwrap().is_some());
        assert!(resolver_config(&[]).unwrap().is_none());
        assert!(matches!(resolver_config(&["dns.example".into()]), Err(InboundError::DnsServer(_))));
    }
}
