//! `[web]`: the HTTPS listener and the secure portal's limits.
//!
//! Every key has a default; docs/config.md describes each one and
//! `crates/carepost/carepost.example.toml` lists them (tests in the binary crate keep the three
//! in step).

use carepost_model::Interval;
use carepost_model::Listen;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// HTTPS for the portal (and the REST API and admin console).
    pub listen: Listen,
    /// The address people reach carepost at, as written in links (`https://portal.example.org`).
    /// Empty: `https://` and the bound address, good for trying carepost out only.
    pub public_url: String,
    /// The organization named in notices and pages. Empty: the sender's domain.
    pub organization: String,
    /// A portal session that sees no request for this long is signed out.
    pub session_idle: Interval,
    /// A portal session ends this long after sign-in, however active.
    pub session_lifetime: Interval,
    /// Failed sign-ins to one portal account within `failure_window` that lock it.
    pub lockout_failures: u32,
    /// How long a locked account refuses every sign-in (a password reset unlocks it).
    pub lockout_duration: Interval,
    /// Failed sign-ins and code attempts from one client address within `failure_window`
    /// after which the address is blocked (HTTPS and SMTP) for `block_duration`.
    pub ip_failures: u32,
    /// The window over which failures are counted.
    pub failure_window: Interval,
    /// How long an automatic block lasts; `carepost block` lists and lifts blocks.
    pub block_duration: Interval,
    /// Requests one client address may make per minute; more get 429.
    pub requests_per_minute: u32,
    /// One-time codes (address proof, password reset) sent to one address per hour.
    pub codes_per_hour: u32,
    /// How long a one-time code is valid.
    pub code_lifetime: Interval,
    /// Wrong entries one code tolerates before it is void.
    pub code_attempts: u32,
    /// How long a message stays in the portal before it expires and is shredded.
    pub portal_expiry: Interval,
    /// The largest request body (a reply with its attachments), in bytes.
    pub max_upload_bytes: u64,
    /// How long browsers that once reached carepost insist on HTTPS for its host
    /// (`Strict-Transport-Security: max-age`); zero tells them to forget it.
    pub hsts_max_age: Interval,
    /// Whether that also covers every subdomain of carepost's host (`includeSubDomains`).
    pub hsts_include_subdomains: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: Listen::at("127.0.0.1:8443"),
            public_url: String::new(),
            organization: String::new(),
            session_idle: Interval::secs(15 * 60),
            session_lifetime: Interval::secs(8 * 3600),
            lockout_failures: 5,
            lockout_duration: Interval::secs(15 * 60),
            ip_failures: 20,
            failure_window: Interval::secs(15 * 60),
            block_duration: Interval::secs(3600),
            requests_per_minute: 300,
            codes_per_hour: 5,
            code_lifetime: Interval::secs(15 * 60),
            code_attempts: 5,
            portal_expiry: Interval::secs(30 * 86400),
            max_upload_bytes: 25 * 1024 * 1024,
            hsts_max_age: Interval::secs(365 * 86400),
            hsts_include_subdomains: true,
        }
    }
}

/// Why a `[web]` section cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebConfigError {
    #[error("web.public_url must start with https:// and name a host, without a path ending in '/': '{0}'")]
    PublicUrl(String),
    #[error("web.{0} must be more than zero")]
    Zero(&'static str),
}

/// The shortest password a portal recipient may choose: shorter than staff's, since a
/// patient signs in rarely and from a phone.
pub const PORTAL_MIN_PASSWORD: usize = 10;

impl WebConfig {
    /// What the identity room holds portal recipients' accounts to.
    pub fn portal_policy(&self) -> carepost_identity::KindPolicy {
        carepost_identity::KindPolicy {
            lockout: carepost_identity::Lockout {
                failures: i64::from(self.lockout_failures),
                window: crate::micros(self.failure_window.as_secs()),
                lock_for: crate::micros(self.lockout_duration.as_secs()),
            },
            session_idle: crate::micros(self.session_idle.as_secs()),
            session_lifetime: crate::micros(self.session_lifetime.as_secs()),
            passwords: carepost_vault::PasswordPolicy { min_length: PORTAL_MIN_PASSWORD },
        }
    }

    /// Checks what serde cannot: the public URL's shape and the limits that must not be zero.
    pub fn validate(&self) -> Result<(), WebConfigError> {
        if !self.public_url.is_empty() {
            let rest = self.public_url.strip_prefix("https://").unwrap_or("");
            let host = rest.split('/').next().unwrap_or("");
            if host.is_empty() || self.public_url.ends_with('/') || rest.contains(['?', '#', ' ']) {
                return Err(WebConfigError::PublicUrl(self.public_url.clone()));
            }
        }
        for (name, value) in [
            ("lockout_failures", u64::from(self.lockout_failures)),
            ("ip_failures", u64::from(self.ip_failures)),
            ("requests_per_minute", u64::from(self.requests_per_minute)),
            ("codes_per_hour", u64::from(self.codes_per_hour)),
            ("code_attempts", u64::from(self.code_attempts)),
            ("session_idle", self.session_idle.as_secs()),
            ("session_lifetime", self.session_lifetime.as_secs()),
            ("code_lifetime", self.code_lifetime.as_secs()),
            ("portal_expiry", self.portal_expiry.as_secs()),
            ("max_upload_bytes", self.max_upload_bytes),
        ] {
            if value == 0 {
                return Err(WebConfigError::Zero(name));
            }
        }
        Ok(())
    }

    /// The `Strict-Transport-Security` header value every response carries.
    pub fn hsts(&self) -> String {
        let subdomains = if self.hsts_include_subdomains { "; includeSubDomains" } else { "" };
        format!("max-age={}{subdomains}", self.hsts_max_age.as_secs())
    }

    /// The URL links point at: `public_url`, or `https://` and the bound address.
    pub fn public_url_for(&self, bound: std::net::SocketAddr) -> String {
        if self.public_url.is_empty() { format!("https://{bound}") } else { self.public_url.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = WebConfig::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<WebConfig>(&text).unwrap(), c);
        assert_eq!(c.public_url_for("127.0.0.1:8443".parse().unwrap()), "https://127.0.0.1:8443");
        assert_eq!(c.hsts(), "max-age=31536000; includeSubDomains");
        let c = WebConfig { hsts_include_subdomains: false, hsts_max_age: Interval::secs(600), ..c };
        assert_eq!(c.hsts(), "max-age=600");
    }

    #[test]
    fn bad_values_are_refused() {
        for url in ["http://x.org", "https://", "https://x.org/", "https://x.org/p?q"] {
            let c = WebConfig { public_url: url.into(), ..WebConfig::default() };
            assert!(c.validate().is_err(), "{url}");
        }
        let c = WebConfig { public_url: "https://portal.example.org".into(), ..WebConfig::default() };
        assert_eq!(c.public_url_for("127.0.0.1:1".parse().unwrap()), "https://portal.example.org");
        let c = WebConfig { code_attempts: 0, ..WebConfig::default() };
        assert_eq!(c.validate(), Err(WebConfigError::Zero("code_attempts")));
        assert!(toml::from_str::<WebConfig>("listne = \"x\"").is_err());
    }
}
