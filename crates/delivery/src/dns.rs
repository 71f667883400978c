//! DNS as delivery needs it: MX, addresses, TLSA with the DNSSEC status of each answer, and
//! TXT. Routing and TLS policy use the [`Dns`] trait, so that tests (and sites with their own
//! naming) can inject answers; [`HickoryDns`] is the production resolver.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

/// An answer and whether DNSSEC validated it ("secure" in RFC 4035 terms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secured<T> {
    pub records: T,
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    /// Lowercased, without the trailing dot; empty for the null MX ".".
    pub exchange: String,
}

/// A TLSA record (RFC 6698): certificate usage, selector, matching type, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsaRecord {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN).
    #[error("{name}: no such domain")]
    NoSuchDomain { name: String, secure: bool },
    /// The name exists but has no record of this type (NODATA).
    #[error("{name}: no {kind} records")]
    NoRecords { name: String, kind: &'static str, secure: bool },
    /// DNSSEC says the answer was tampered with or is broken.
    #[error("{name}: DNSSEC validation failed")]
    Bogus { name: String },
    /// A server failure or time-out: try again later.
    #[error("{name}: {reason}")]
    Temporary { name: String, reason: String },
}

impl DnsError {
    /// "Nothing there" as opposed to "could not find out".
    pub fn is_absent(&self) -> bool {
        matches!(self, DnsError::NoSuchDomain { .. } | DnsError::NoRecords { .. })
    }
}

pub type DnsResult<T> = Result<Secured<T>, DnsError>;

/// The look-ups delivery makes. Names are given without a trailing dot.
pub trait Dns: Send + Sync {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, DnsResult<Vec<MxRecord>>>;
    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, DnsResult<Vec<IpAddr>>>;
    fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, DnsResult<Vec<TlsaRecord>>>;
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, DnsResult<Vec<String>>>;
}

/// The production resolver: hickory with DNSSEC validation.
pub struct HickoryDns {
    resolver: TokioResolver,
}

impl HickoryDns {
    /// `servers` empty means the system configuration (resolv.conf).
    pub fn new(servers: &[std::net::SocketAddr], dnssec: bool) -> Result<Self, DnsError> {
        let setup = |reason: String| DnsError::Temporary { name: "resolver".into(), reason };
        let (config, mut opts) = if servers.is_empty() {
            match hickory_resolver::system_conf::read_system_conf() {
                Ok(system) => system,
                Err(e) => {
                    // Without a resolver every look-up fails temporarily and mail waits in
                    // the queue; that beats refusing to start the rest of carepost.
                    tracing::error!(error = %e, "cannot read the system's DNS configuration; set delivery.dns_servers");
                    (ResolverConfig::from_name_servers(Vec::new()), ResolverOpts::default())
                }
            }
        } else {
            let config = ResolverConfig::from_name_servers(
                servers
                    .iter()
                    .map(|addr| {
                        let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                        for connection in &mut server.connections {
                            connection.port = addr.port();
                        }
                        server
                    })
                    .collect(),
            );
            (config, ResolverOpts::default())
        };
        opts.validate = dnssec;
        opts.edns0 = true;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(HickoryDns { resolver })
    }

    async fn lookup(&self, name: &str, kind: RecordType, label: &'static str) -> DnsResult<Vec<Record>> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.lookup(fqdn.as_str(), kind).await {
            Ok(lookup) => {
                let records: Vec<Record> =
                    lookup.answers().iter().filter(|r| r.record_type() == kind).cloned().collect();
                let secure = !records.is_empty() && records.iter().all(|r| r.proof == Proof::Secure);
                if records.iter().any(|r| r.proof == Proof::Bogus) {
                    return Err(DnsError::Bogus { name: name.to_owned() });
                }
                if records.is_empty() {
                    return Err(DnsError::NoRecords { name: name.to_owned(), kind: label, secure: false });
                }
                Ok(Secured { records, secure })
            }
            Err(e) => Err(classify(name, label, e)),
        }
    }
}

fn classify(name: &str, kind: &'static str, e: NetError) -> DnsError {
    match &e {
        NetError::Dns(HickoryDnsError::Nsec { proof, .. }) => {
            let secure = *proof == Proof::Secure;
            // An authenticated denial: NXDOMAIN or NODATA, both "nothing there".
            DnsError::NoRecords { name: name.to_owned(), kind, secure }
        }
        NetError::Dns(HickoryDnsError::DnssecBogus) => DnsError::Bogus { name: name.to_owned() },
        _ if e.is_nx_domain() => DnsError::NoSuchDomain { name: name.to_owned(), secure: false },
        _ if e.is_no_records_found() => DnsError::NoRecords { name: name.to_owned(), kind, secure: false },
        _ => DnsError::Temporary { name: name.to_owned(), reason: e.to_string() },
    }
}

fn host_name(name: &hickory_resolver::proto::rr::Name) -> String {
    name.to_lowercase().to_ascii().trim_end_matches('.').to_owned()
}

impl Dns for HickoryDns {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, DnsResult<Vec<MxRecord>>> {
        Box::pin(async move {
            let answer = self.lookup(domain, RecordType::MX, "MX").await?;
            let records = answer
                .records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(MxRecord { preference: mx.preference, exchange: host_name(&mx.exchange) }),
                    _ => None,
                })
                .collect();
            Ok(Secured { records, secure: answer.secure })
        })
    }

    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, DnsResult<Vec<IpAddr>>> {
        Box::pin(async move {
            if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
                return Ok(Secured { records: vec![ip], secure: false });
            }
            let mut out = Vec::new();
            let mut secure = true;
            let mut last_err = None;
            for (kind, label) in [(RecordType::AAAA, "AAAA"), (RecordType::A, "A")] {
                match self.lookup(host, kind, label).await {
                    Ok(answer) => {
                        secure &= answer.secure;
                        out.extend(answer.records.iter().filter_map(|r| match &r.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        }));
                    }
                    Err(e @ DnsError::NoRecords { secure: s, .. }) => {
                        secure &= s;
                        last_err = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            if out.is_empty() {
                return Err(last_err.unwrap_or(DnsError::NoRecords {
                    name: host.to_owned(),
                    kind: "A",
                    secure: false,
                }));
            }
            Ok(Secured { records: out, secure })
        })
    }

    fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, DnsResult<Vec<TlsaRecord>>> {
        Box::pin(async move {
            let answer = self.lookup(name, RecordType::TLSA, "TLSA").await?;
            let records = answer
                .records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(t) => Some(TlsaRecord {
                        usage: u8::from(t.cert_usage),
                        selector: u8::from(t.selector),
                        matching: u8::from(t.matching),
                        data: t.cert_data.clone(),
                    }),
                    _ => None,
                })
                .collect();
            Ok(Secured { records, secure: answer.secure })
        })
    }

    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, DnsResult<Vec<String>>> {
        Box::pin(async move {
            let answer = self.lookup(name, RecordType::TXT, "TXT").await?;
            let records = answer
                .records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => {
                        let mut joined = Vec::new();
                        for part in t.txt_data.iter() {
                            joined.extend_from_slice(part);
                        }
                        Some(String::from_utf8_lossy(&joined).into_owned())
                    }
                    _ => None,
                })
                .collect();
            Ok(Secured { records, secure: answer.secure })
        })
    }
}

/// Answers from a fixed table: for tests, and for sites that route by their own naming.
/// A name without an entry of the asked type but with some other entry is NODATA; a name
/// without any entry is NXDOMAIN. Every answer is "secure" unless marked otherwise.
#[derive(Default, Clone)]
pub struct StaticDns {
    inner: Arc<RwLock<StaticZone>>,
}

#[derive(Default)]
struct StaticZone {
    mx: HashMap<String, Vec<MxRecord>>,
    ips: HashMap<String, Vec<IpAddr>>,
    tlsa: HashMap<String, Vec<TlsaRecord>>,
    txt: HashMap<String, Vec<String>>,
    insecure: std::collections::HashSet<String>,
    failing: std::collections::HashSet<String>,
}

impl StaticDns {
    pub fn new() -> Self {
        StaticDns::default()
    }

    fn key(name: &str) -> String {
        name.trim_end_matches('.').to_ascii_lowercase()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, StaticZone> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add_mx(&self, domain: &str, preference: u16, exchange: &str) -> &Self {
        let exchange = Self::key(exchange);
        self.write().mx.entry(Self::key(domain)).or_default().push(MxRecord { preference, exchange });
        self
    }

    pub fn add_ip(&self, host: &str, ip: IpAddr) -> &Self {
        self.write().ips.entry(Self::key(host)).or_default().push(ip);
        self
    }

    pub fn add_tlsa(&self, name: &str, record: TlsaRecord) -> &Self {
        self.write().tlsa.entry(Self::key(name)).or_default().push(record);
        self
    }

    pub fn add_txt(&self, name: &str, text: &str) -> &Self {
        self.write().txt.entry(Self::key(name)).or_default().push(text.to_owned());
        self
    }

    /// Answers for `name` are served as DNSSEC-insecure.
    pub fn set_insecure(&self, name: &str) -> &Self {
        self.write().insecure.insert(Self::key(name));
        self
    }

    /// Look-ups of `name` fail temporarily (SERVFAIL).
    pub fn set_failing(&self, name: &str) -> &Self {
        self.write().failing.insert(Self::key(name));
        self
    }

    fn answer<T: Clone>(
        &self,
        name: &str,
        kind: &'static str,
        pick: impl Fn(&StaticZone) -> Option<T>,
    ) -> DnsResult<T> {
        let zone = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = Self::key(name);
        if zone.failing.contains(&key) {
            return Err(DnsError::Temporary { name: key, reason: "SERVFAIL".into() });
        }
        let secure = !zone.insecure.contains(&key);
        if let Some(records) = pick(&zone) {
            return Ok(Secured { records, secure });
        }
        let exists = zone.mx.contains_key(&key)
            || zone.ips.contains_key(&key)
            || zone.tlsa.contains_key(&key)
            || zone.txt.contains_key(&key);
        if exists {
            Err(DnsError::NoRecords { name: key, kind, secure })
        } else {
            Err(DnsError::NoSuchDomain { name: key, secure })
        }
    }
}

impl Dns for StaticDns {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, DnsResult<Vec<MxRecord>>> {
        let key = Self::key(domain);
        Box::pin(async move { self.answer(domain, "MX", |z| z.mx.get(&key).cloned()) })
    }

    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, DnsResult<Vec<IpAddr>>> {
        let key = Self::key(host);
        Box::pin(async move {
            if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
                return Ok(Secured { records: vec![ip], secure: false });
            }
            self.answer(host, "A", |z| z.ips.get(&key).cloned())
        })
    }

    fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, DnsResult<Vec<TlsaRecord>>> {
        let key = Self::key(name);
        Box::pin(async move { self.answer(name, "TLSA", |z| z.tlsa.get(&key).cloned()) })
    }

    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, DnsResult<Vec<String>>> {
        let key = Self::key(name);
        Box::pin(async move { self.answer(name, "TXT", |z| z.txt.get(&key).cloned()) })
    }
}

/// Parses a DNS server given as `ip`, `ip:port` or `[ipv6]:port` (port 53 by default).
pub fn parse_server(text: &str) -> Option<std::net::SocketAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 53));
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
    use hickory_resolver::proto::rr::{Name, Record, rdata};

    /// A tiny authoritative DNS server on a loopback UDP port answering from a fixed zone:
    /// enough to check how [`HickoryDns`] reads answers, NODATA and NXDOMAIN.
    async fn test_server() -> std::net::SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
                let Some(q) = query.queries.first().cloned() else { continue };
                let name = q.name().to_ascii().to_ascii_lowercase();
                let mut reply = Message::response(query.metadata.id, OpCode::Query);
                reply.metadata.authoritative = true;
                reply.metadata.recursion_available = true;
                reply.add_query(q.clone());
                let owner = q.name().clone();
                let answers: Vec<Record> = match (name.as_str(), q.query_type()) {
                    ("zone.test.", RecordType::MX) => vec![
                        Record::from_rdata(
                            owner,
                            60,
                            RData::MX(rdata::MX::new(20, Name::from_ascii("MX2.zone.test.").unwrap())),
                        ),
                        Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::MX(rdata::MX::new(10, Name::from_ascii("mx1.zone.test.").unwrap())),
                        ),
                    ],
                    ("mx1.zone.test.", RecordType::A) => {
                        vec![Record::from_rdata(owner, 60, RData::A(rdata::A::new(127, 0, 0, 9)))]
                    }
                    ("_25._tcp.mx1.zone.test.", RecordType::TLSA) => vec![Record::from_rdata(
                        owner,
                        60,
                        RData::TLSA(rdata::TLSA::new(
                            rdata::tlsa::CertUsage::from(3),
                            rdata::tlsa::Selector::from(1),
                            rdata::tlsa::Matching::from(1),
                            vec![0xab; 32],
                        )),
                    )],
                    ("_mta-sts.zone.test.", RecordType::TXT) => {
                        vec![Record::from_rdata(
                            owner,
                            60,
                            RData::TXT(rdata::TXT::new(vec!["v=STSv1; ".into(), "id=1;".into()])),
                        )]
                    }
                    _ => Vec::new(),
                };
                let known = ["zone.test.", "mx1.zone.test.", "_25._tcp.mx1.zone.test.", "_mta-sts.zone.test."];
                if answers.is_empty() && !known.contains(&name.as_str()) {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
                reply.add_answers(answers);
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn hickory_reads_answers_nodata_and_nxdomain() {
        let server = test_server().await;
        let dns = HickoryDns::new(&[server], false).unwrap();
        let mx = dns.mx("zone.test").await.unwrap();
        let mut hosts: Vec<(u16, String)> = mx.records.iter().map(|r| (r.preference, r.exchange.clone())).collect();
        hosts.sort();
        assert_eq!(hosts, vec![(10, "mx1.zone.test".to_owned()), (20, "mx2.zone.test".to_owned())]);
        assert!(!mx.secure, "no DNSSEC validation asked for");
        let ips = dns.ips("mx1.zone.test").await.unwrap();
        assert_eq!(ips.records, vec!["127.0.0.9".parse::<IpAddr>().unwrap()]);
        let tlsa = dns.tlsa("_25._tcp.mx1.zone.test").await.unwrap();
        assert_eq!(tlsa.records, vec![TlsaRecord { usage: 3, selector: 1, matching: 1, data: vec![0xab; 32] }]);
        assert_eq!(dns.txt("_mta-sts.zone.test").await.unwrap().records, vec!["v=STSv1; id=1;".to_owned()]);
        assert!(matches!(dns.mx("mx1.zone.test").await, Err(DnsError::NoRecords { .. })), "NODATA");
        assert!(matches!(dns.mx("nowhere.zone.test").await, Err(DnsError::NoSuchDomain { .. })), "NXDOMAIN");
        assert_eq!(parse_server("192.0.2.1"), Some("192.0.2.1:53".parse().unwrap()));
        assert_eq!(parse_server("[::1]:5353"), Some("[::1]:5353".parse().unwrap()));
        assert_eq!(parse_server("resolver"), None);
    }

    #[tokio::test]
    async fn static_dns_tells_nxdomain_from_nodata_and_failure() {
        let dns = StaticDns::new();
        dns.add_mx("a.test", 10, "MX.A.test.")
            .add_ip("mx.a.test", "127.0.0.1".parse().unwrap())
            .set_insecure("mx.a.test");
        dns.set_failing("broken.test");
        let mx = dns.mx("A.test").await.unwrap();
        assert_eq!(mx.records, vec![MxRecord { preference: 10, exchange: "mx.a.test".into() }]);
        assert!(mx.secure);
        assert!(!dns.ips("mx.a.test").await.unwrap().secure);
        assert!(matches!(dns.mx("mx.a.test").await, Err(DnsError::NoRecords { .. })));
        assert!(matches!(dns.mx("nowhere.test").await, Err(DnsError::NoSuchDomain { .. })));
        assert!(matches!(dns.mx("broken.test").await, Err(DnsError::Temporary { .. })));
        assert_eq!(dns.ips("[127.0.0.2]").await.unwrap().records, vec!["127.0.0.2".parse::<IpAddr>().unwrap()]);
    }
}
