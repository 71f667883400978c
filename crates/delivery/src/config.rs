//! `[delivery]`: how carepost sends mail out. Every key has a default; unknown keys are an
//! error. docs/config.md describes each key.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use carepost_model::{Interval, IntervalError};
use serde::{Deserialize, Serialize};

/// How carepost protects the hop to the smart host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmartHostTls {
    /// STARTTLS with a certificate valid for the smart host's name (PKIX); never in clear.
    #[default]
    Required,
    /// STARTTLS when offered, unverified; clear otherwise. Protected messages are held.
    Opportunistic,
    /// Never STARTTLS: a trusted internal hop (loopback, a private link). Protected messages
    /// are held, because carepost cannot vouch for the hop.
    None,
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Whether `serve` runs the queue runner at all.
    pub enabled: bool,
    /// The name given in EHLO; empty means the top-level `hostname`.
    pub helo_name: String,
    /// `host:port` (or `[host]:port`) all mail goes to instead of the recipients' MX hosts.
    pub smart_host: String,
    pub smart_host_tls: SmartHostTls,
    /// AUTH PLAIN user name for the smart host; empty means no AUTH.
    pub smart_host_username: String,
    /// File holding the smart host password (one line), relative to data_dir.
    pub smart_host_password_file: PathBuf,
    /// Per-domain next hops: domain (or `.domain` for its subdomains) to `[host]:port`
    /// (no MX look-up), `host:port` (MX look-up of host), or `mx` (normal MX routing, also
    /// when a smart host is set).
    pub transport: BTreeMap<String, String>,
    /// Recipient domains whose mail must go over TLS with a verified certificate.
    pub tls_required_domains: Vec<String>,
    /// Use DANE (TLSA records under DNSSEC) when the recipient domain publishes them.
    pub dane: bool,
    /// Use MTA-STS policies when the recipient domain publishes one.
    pub mta_sts: bool,
    /// Validate DNSSEC in carepost's own resolver (needed for DANE).
    pub dnssec: bool,
    /// Send daily TLS reports (RFC 8460) to recipient domains that ask for them.
    pub tls_rpt: bool,
    /// DNS servers (`ip` or `ip:port`); empty means the system's resolv.conf.
    pub dns_servers: Vec<String>,
    /// Extra trusted root certificates (PEM file, relative to data_dir) for PKIX checks of
    /// SMTP peers and MTA-STS policy hosts, besides the public web roots.
    pub tls_ca_file: PathBuf,
    /// First retry after a temporary failure.
    pub retry_first: Interval,
    /// Each later retry waits this many times longer than the one before...
    pub retry_factor: u32,
    /// ...but never longer than this.
    pub retry_max: Interval,
    /// A message that could not be delivered for this long is returned to its sender.
    pub max_lifetime: Interval,
    /// Tell the sender (once) when a message is still undelivered after this long; "0s" never.
    pub delay_notice_after: Interval,
    /// SMTP connections open at once, over all destinations.
    pub max_connections: usize,
    /// SMTP connections open at once to one destination.
    pub max_connections_per_destination: usize,
    /// Messages sent over one connection before it is closed and a new one opened.
    pub max_messages_per_connection: usize,
    /// Recipients per SMTP transaction.
    pub max_recipients_per_transaction: usize,
    /// How long an idle connection is kept for more mail to the same destination.
    pub connection_idle: Interval,
    /// Recipients claimed from the queue at once.
    pub claim_batch: usize,
    /// How long a claimed recipient stays leased to this process before another may take it.
    pub lease: Interval,
    pub connect_timeout: Interval,
    /// Greeting, EHLO, STARTTLS, TLS handshake and AUTH.
    pub greeting_timeout: Interval,
    /// MAIL, RCPT, DATA, RSET and QUIT replies.
    pub command_timeout: Interval,
    /// Sending the message and waiting for the final reply.
    pub data_timeout: Interval,
    /// Timeout of the MTA-STS policy fetch.
    pub mta_sts_timeout: Interval,
    /// Sign outgoing mail with the domain's DKIM keys (`carepost dkim generate`).
    pub dkim_sign: bool,
    /// Selector prefix of generated DKIM keys: `PREFIXyyyymmdd-ed` and `-rsa`.
    pub dkim_selector_prefix: String,
    /// After `carepost dkim rotate`, new keys start signing after this delay (time to publish
    /// them), and old keys stay published this long after that.
    pub dkim_rotation_overlap: Interval,
    /// Mailbox (local part) for DMARC and TLS-RPT reports in `carepost dns records`.
    pub report_local_part: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            helo_name: String::new(),
            smart_host: String::new(),
            smart_host_tls: SmartHostTls::Required,
            smart_host_username: String::new(),
            smart_host_password_file: PathBuf::new(),
            transport: BTreeMap::new(),
            tls_required_domains: Vec::new(),
            dane: true,
            mta_sts: true,
            dnssec: true,
            tls_rpt: true,
            dns_servers: Vec::new(),
            tls_ca_file: PathBuf::new(),
            retry_first: Interval::secs(300),
            retry_factor: 2,
            retry_max: Interval::secs(4 * 3600),
            max_lifetime: Interval::secs(5 * 86400),
            delay_notice_after: Interval::secs(4 * 3600),
            max_connections: 100,
            max_connections_per_destination: 20,
            max_messages_per_connection: 1000,
            max_recipients_per_transaction: 50,
            connection_idle: Interval::secs(2),
            claim_batch: 256,
            lease: Interval::secs(1800),
            connect_timeout: Interval::secs(30),
            greeting_timeout: Interval::secs(300),
            command_timeout: Interval::secs(300),
            data_timeout: Interval::secs(600),
            mta_sts_timeout: Interval::secs(10),
            dkim_sign: true,
            dkim_selector_prefix: "cp".into(),
            dkim_rotation_overlap: Interval::secs(2 * 86400),
            report_local_part: "postmaster".into(),
        }
    }
}

impl DeliveryConfig {
    /// The transport entry for `domain`: an exact entry wins over a `.parent` entry, and a
    /// nearer parent over a farther one.
    pub fn transport_for(&self, domain: &str) -> Option<&str> {
        if let Some(t) = self.transport.get(domain) {
            return Some(t);
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(t) = self.transport.get(&format!(".{parent}")) {
                return Some(t);
            }
            rest = parent;
        }
        None
    }

    /// Whether `domain` (or a parent listed as `.parent`) is configured TLS-required.
    pub fn tls_required(&self, domain: &str) -> bool {
        self.tls_required_domains.iter().any(|d| {
            let d = d.trim().to_ascii_lowercase();
            match d.strip_prefix('.') {
                Some(parent) => domain.ends_with(&format!(".{parent}")),
                None => d == domain,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_and_tls_required_match_domains_and_parents() {
        let mut c = DeliveryConfig::default();
        c.transport.insert("partner.org".into(), "[10.0.0.5]:25".into());
        c.transport.insert(".partner.org".into(), "relay.partner.org:2525".into());
        c.tls_required_domains = vec!["bank.example".into(), ".health.example".into()];
        assert_eq!(c.transport_for("partner.org"), Some("[10.0.0.5]:25"));
        assert_eq!(c.transport_for("a.b.partner.org"), Some("relay.partner.org:2525"));
        assert_eq!(c.transport_for("other.org"), None);
        assert!(c.tls_required("bank.example"));
        assert!(!c.tls_required("sub.bank.example"));
        assert!(c.tls_required("x.health.example"));
        assert!(!c.tls_required("health.example"));
    }
}
