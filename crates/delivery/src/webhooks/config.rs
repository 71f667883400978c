//! `[webhooks]`: whether the dispatcher runs, which URLs are allowed, timeouts and retries.

use serde::{Deserialize, Serialize};

use crate::config::Interval;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Run the webhook dispatcher in `carepost serve`.
    pub enabled: bool,
    /// Allow `http://` URLs on loopback addresses (tests, a local relay); everything else
    /// must be `https://`. It also lets endpoints be on loopback addresses at all.
    pub allow_http_loopback: bool,
    /// Networks (CIDR) endpoints may be in although they are not public: loopback, private,
    /// link-local, CGNAT, unique-local and metadata addresses are refused otherwise.
    pub allowed_networks: Vec<String>,
    /// How long one attempt (one POST) may take, whatever the endpoint does.
    pub timeout: Interval,
    /// First retry after a failed attempt; each later one waits twice as long.
    pub retry_first: Interval,
    /// Longest wait between attempts.
    pub retry_max: Interval,
    /// Stop retrying an event this long after it was first owed.
    pub give_up_after: Interval,
    /// POSTs in flight at once.
    pub concurrency: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            enabled: true,
            allow_http_loopback: false,
            allowed_networks: Vec::new(),
            timeout: Interval::secs(10),
            retry_first: Interval::secs(30),
            retry_max: Interval::secs(3600),
            give_up_after: Interval::secs(86400),
            concurrency: 4,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("'{0}' is not a URL")]
    NotAUrl(String),
    #[error("webhook URLs must be https:// (http:// only to loopback with webhooks.allow_http_loopback = true)")]
    NotHttps,
    #[error("a webhook URL must not carry a user name or password; the signature authenticates carepost")]
    Credentials,
    #[error("a webhook URL is at most 2000 characters")]
    TooLong,
    #[error("the webhook host '{host}' is refused: {reason}")]
    Private { host: String, reason: String },
    #[error("webhooks.allowed_networks: '{0}' is not a network (CIDR, e.g. 10.20.0.0/16 or fd00::/8)")]
    Network(String),
}

/// Checks a webhook URL: https, or http to a loopback address when allowed. Returns it
/// normalized.
pub fn check_url(text: &str, allow_http_loopback: bool) -> Result<reqwest::Url, UrlError> {
    let text = text.trim();
    if text.len() > 2000 {
        return Err(UrlError::TooLong);
    }
    let url = reqwest::Url::parse(text).map_err(|_| UrlError::NotAUrl(text.to_owned()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NotAUrl(text.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http_loopback && is_loopback(&url) => Ok(url),
        _ => Err(UrlError::NotHttps),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_and_allowed_loopback_http_pass() {
        assert!(check_url("https://hooks.example.org/carepost?x=1", false).is_ok());
        assert_eq!(check_url("http://hooks.example.org/", true), Err(UrlError::NotHttps));
        assert_eq!(check_url("http://127.0.0.1:8080/", false), Err(UrlError::NotHttps));
        assert!(check_url("http://127.0.0.1:8080/", true).is_ok());
        assert!(check_url("http://[::1]:8080/", true).is_ok());
        assert!(check_url("http://localhost/", true).is_ok());
        assert_eq!(check_url("http://10.0.0.1/", true), Err(UrlError::NotHttps));
        assert_eq!(check_url("https://user:pw@hooks.example.org/", false), Err(UrlError::Credentials));
        assert!(matches!(check_url("not a url", false), Err(UrlError::NotAUrl(_))));
        assert_eq!(check_url("ftp://hooks.example.org/", true), Err(UrlError::NotHttps));
    }
}
