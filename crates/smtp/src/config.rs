//! `[smtp]` in the configuration file.

use carepost_model::Listen;
use serde::{Deserialize, Serialize};

use carepost_guard::Network;

/// What the MX does when a message fails DMARC and the sender's domain asks for
/// `p=reject` or `p=quarantine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcEnforcement {
    /// `p=reject`: refuse the message (550 5.7.1); `p=quarantine`: accept and hold it.
    #[default]
    Enforce,
    /// Hold every message that fails under `p=reject` or `p=quarantine`; refuse nothing.
    Quarantine,
    /// Record the result in Authentication-Results only.
    Monitor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The MX: mail from the Internet for `local_domains`.
    pub mx_listen: Listen,
    /// Submission with STARTTLS.
    pub submission_listen: Listen,
    /// Submission with implicit TLS.
    pub submissions_listen: Listen,
    /// Domains the MX accepts mail for.
    pub local_domains: Vec<String>,
    /// Client networks that may relay without authenticating (CIDR or single addresses).
    pub relay_networks: Vec<Network>,
    /// The largest message accepted, in bytes (after dot-unstuffing, before carepost's
    /// own trace headers).
    pub max_message_size: u64,
    /// The bytes of message data all sessions together may hold in memory while messages
    /// arrive and are queued; a session that would go past it gets `452 4.3.1` and its client
    /// retries later. At least `max_message_size`.
    pub max_data_memory: u64,
    /// The longest line accepted inside a message, in bytes including CRLF.
    pub max_line_length: usize,
    /// Recipients per message; more get 452 4.5.3.
    pub max_recipients: usize,
    /// Errors per session before carepost closes it with 421.
    pub max_errors: u32,
    /// Simultaneous connections on all listeners together.
    pub max_connections: usize,
    /// Simultaneous connections from one client address (relay networks are exempt).
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send one whole command line.
    pub command_timeout_secs: u64,
    /// Seconds a client has to send one whole message (DATA, or each BDAT chunk).
    pub data_timeout_secs: u64,
    /// Failed sign-ins from one client (an address, or an IPv6 /64), across logins, within
    /// `auth_failure_window_secs`, before that client is blocked for `block_secs`.
    pub auth_failures_per_ip: u32,
    /// Failed sign-ins of one login from one client within the window, after which that
    /// login alone is refused from that client (until its failures age out of the window);
    /// its further failures do not count toward the client.
    pub auth_failures_per_login: u32,
    /// Failed sign-ins of one login from all clients within the window, after which each
    /// client that fails for it again is refused for that login at once.
    pub auth_failures_per_account: u32,
    pub auth_failure_window_secs: u64,
    /// How long an automatic block lasts.
    pub block_secs: u64,
    /// Client networks never blocked or refused automatically after failed sign-ins, by
    /// SMTP or the web (an administrator's `carepost block` still applies). Their failures
    /// still count toward the account's lockout.
    pub trusted_networks: Vec<Network>,
    /// Verify SPF, DKIM, DMARC and ARC of mail arriving on the MX.
    pub verify_senders: bool,
    pub dmarc_enforcement: DmarcEnforcement,
    /// DNS servers (`ip` or `ip:port`) for sender verification; empty: the system's
    /// resolver configuration.
    pub dns_servers: Vec<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            mx_listen: Listen::at("127.0.0.1:2525"),
            submission_listen: Listen::at("127.0.0.1:2587"),
            submissions_listen: Listen::at("127.0.0.1:2465"),
            local_domains: vec!["localhost".into()],
            relay_networks: Vec::new(),
            max_message_size: 25 * 1024 * 1024,
            max_data_memory: 512 * 1024 * 1024,
            max_line_length: 10 * 1024,
            max_recipients: 1000,
            max_errors: 20,
            max_connections: 500,
            max_connections_per_ip: 50,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            auth_failures_per_ip: 20,
            auth_failures_per_login: 5,
            auth_failures_per_account: 10,
            auth_failure_window_secs: 600,
            block_secs: 3600,
            trusted_networks: Vec::new(),
            verify_senders: true,
            dmarc_enforcement: DmarcEnforcement::Enforce,
            dns_servers: Vec::new(),
        }
    }
}

impl SmtpConfig {
    /// Whether `domain` (lowercase) is one the MX accepts mail for.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    pub fn is_relay_client(&self, ip: std::net::IpAddr) -> bool {
        self.relay_networks.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_networks_and_refuses_unknown_keys() {
        let c: SmtpConfig =
            toml::from_str("relay_networks = [\"10.0.0.0/8\", \"::1\"]\nlocal_domains = [\"Clinic.example\"]\n")
                .unwrap();
        assert!(c.is_relay_client("10.1.2.3".parse().unwrap()));
        assert!(c.is_relay_client("::1".parse().unwrap()));
        assert!(!c.is_relay_client("11.0.0.1".parse().unwrap()));
        assert!(c.is_local_domain("clinic.example"));
        assert!(toml::from_str::<SmtpConfig>("relay_networks = [\"10.0.0.0/33\"]").is_err());
        assert!(toml::from_str::<SmtpConfig>("max_mesage_size = 1").is_err());
        assert!(toml::from_str::<SmtpConfig>("dmarc_enforcement = \"monitor\"").is_ok());
        let c: SmtpConfig = toml::from_str("trusted_networks = [\"192.0.2.0/24\", \"2001:db8::/48\"]").unwrap();
        assert_eq!(c.guard_settings().trusted.len(), 2);
        assert!(toml::from_str::<SmtpConfig>("trusted_networks = [\"192.0.2.0/40\"]").is_err());
        assert_eq!(toml::from_str::<SmtpConfig>("").unwrap(), SmtpConfig::default());
    }

    #[test]
    fn the_data_memory_budget_holds_at_least_one_message_of_the_largest_size() {
        let c = SmtpConfig::default();
        assert_eq!(c.data_budget().unwrap().capacity(), 512 * 1024 * 1024);
        let small: SmtpConfig = toml::from_str("max_message_size = 2000\nmax_data_memory = 1999\n").unwrap();
        let e = small.data_budget().unwrap_err().to_string();
        assert!(e.contains("smtp.max_data_memory (1999)") && e.contains("smtp.max_message_size (2000)"), "{e}");
    }
}
