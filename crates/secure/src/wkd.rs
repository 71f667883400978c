//! OpenPGP Web Key Directory (draft-koch-openpgp-webkey-service): where a
//! recipient's key is published, and fetching it from there.
//!
//! The URL functions are pure. Fetching goes through [`WkdHttp`], so the
//! caller decides how HTTPS is done; [`ReqwestWkdClient`] is the production
//! implementation (rustls, the system's roots plus any extra ones).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use time::OffsetDateTime;

use crate::keys::{KeyError, OpenPgpKey, Unusable};

/// Largest key answer accepted; real keys are a few kilobytes.
const MAX_KEY_BYTES: usize = 1 << 20;

/// Why a WKD look-up failed.
#[derive(Debug, thiserror::Error)]
pub enum WkdError {
    /// The address is not `local@domain` with an ASCII host name.
    #[error("not a usable e-mail address for WKD: {0}")]
    BadAddress(String),
    /// The HTTP client could not be built.
    #[error("HTTP client setup: {0}")]
    Client(String),
    /// A request failed (connection, TLS, unexpected status).
    #[error("HTTP: {0}")]
    Http(String),
    /// The answer was larger than a key has any reason to be.
    #[error("answer larger than {MAX_KEY_BYTES} bytes")]
    TooLarge,
    /// Neither method published a key for the address.
    #[error("no key published for the address")]
    NotFound,
    /// What was published is not an OpenPGP key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The published keys have no valid user id with the address.
    #[error("published key has no user id for the address")]
    AddressMismatch,
    /// The published key for the address may not be used.
    #[error("published key is unusable: {0}")]
    Unusable(Unusable),
}

/// The two places a key for one address may be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WkdUrls {
    /// `https://openpgpkey.DOMAIN/.well-known/openpgpkey/DOMAIN/hu/HASH?l=LOCAL`
    pub advanced: String,
    /// `https://DOMAIN/.well-known/openpgpkey/hu/HASH?l=LOCAL`
    pub direct: String,
}

/// The WKD URLs for `address`.
///
/// The hash is the z-base-32 encoding of the SHA-1 of the local part with
/// ASCII letters lowercased; the `l` parameter carries the local part as
/// written, percent-encoded. The domain is lowercased and must be an ASCII
/// host name (an internationalized domain must be given in its A-label form).
pub fn wkd_urls(address: &str) -> Result<WkdUrls, WkdError> {
    let (local, domain) = address.trim().rsplit_once('@').ok_or_else(|| WkdError::BadAddress(address.to_string()))?;
    let domain = domain.to_ascii_lowercase();
    let valid_domain = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if local.is_empty() || !valid_domain {
        return Err(WkdError::BadAddress(address.to_string()));
    }
    let hash = hashed_local_part(local);
    let l = percent_encode(local);
    Ok(WkdUrls {
        advanced: format!("https://openpgpkey.{domain}/.well-known/openpgpkey/{domain}/hu/{hash}?l={l}"),
        direct: format!("https://{domain}/.well-known/openpgpkey/hu/{hash}?l={l}"),
    })
}

/// z-base-32(SHA-1(local part with ASCII letters lowercased)).
pub fn hashed_local_part(local: &str) -> String {
    let lowered = local.to_ascii_lowercase();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, lowered.as_bytes());
    zbase32(digest.as_ref())
}

/// z-base-32 (RFC 6189 §5.1.6 alphabet), most significant bits first, no padding.
fn zbase32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// How WKD answers are fetched. Implementations return `Ok(Some(body))` for
/// a 200 answer, `Ok(None)` for a 404 and `Err` for any other failure
/// (unknown host, connection, TLS, other status); in every case but a usable
/// key the look-up moves on from the advanced to the direct method.
pub trait WkdHttp: Send + Sync {
    /// GETs `url` over HTTPS.
    fn get(&self, url: &str) -> impl Future<Output = Result<Option<Vec<u8>>, WkdError>> + Send;
}

/// Looks up the key for `address`: the advanced method first, then the
/// direct one. The answer must hold a key with a validly self-certified user
/// id for the address that may be used for encryption now; the first such key
/// is returned.
pub async fn fetch_key(http: &impl WkdHttp, address: &str) -> Result<OpenPgpKey, WkdError> {
    fetch_key_at(http, address, OffsetDateTime::now_utc()).await
}

/// [`fetch_key`] with key validity judged at `now`.
pub async fn fetch_key_at(http: &impl WkdHttp, address: &str, now: OffsetDateTime) -> Result<OpenPgpKey, WkdError> {
    let urls = wkd_urls(address)?;
    let advanced_error = match attempt(http, &urls.advanced, address, now).await {
        Ok(key) => return Ok(key),
        Err(e) => e,
    };
    match attempt(http, &urls.direct, address, now).await {
        Ok(key) => Ok(key),
        // A key the advanced host did publish says more than what the direct
        // host did or did not say; otherwise (typically: no openpgpkey
        // sub-domain at all) the direct method's answer is the answer.
        Err(direct_error) => match advanced_error {
            WkdError::Key(_) | WkdError::AddressMismatch | WkdError::Unusable(_) => Err(advanced_error),
            _ => Err(direct_error),
        },
    }
}

/// One method: fetch, then pick a key for the address.
async fn attempt(http: &impl WkdHttp, url: &str, address: &str, now: OffsetDateTime) -> Result<OpenPgpKey, WkdError> {
    match http.get(url).await? {
        Some(body) => select_key(&body, address, now),
        None => Err(WkdError::NotFound),
    }
}

/// The first key in a WKD answer that names `address` and is usable now.
fn select_key(body: &[u8], address: &str, now: OffsetDateTime) -> Result<OpenPgpKey, WkdError> {
    let keys = OpenPgpKey::parse_many(body)?;
    let mut matching = keys.into_iter().filter(|k| k.has_email(address)).peekable();
    if matching.peek().is_none() {
        return Err(WkdError::AddressMismatch);
    }
    let mut reason = None;
    for key in matching {
        match key.usable_for_encryption(now) {
            Ok(()) => return Ok(key),
            Err(why) => reason = Some(why),
        }
    }
    Err(WkdError::Unusable(reason.unwrap_or(Unusable::NoEncryptionKey)))
}

/// Settings for [`ReqwestWkdClient`].
#[derive(Debug, Clone)]
pub struct WkdClientConfig {
    /// Extra trusted root certificates (DER).
    pub extra_roots_der: Vec<Vec<u8>>,
    /// Trust only `extra_roots_der`, not the system's roots.
    pub only_extra_roots: bool,
    /// Fixed addresses for host names, bypassing DNS (a local test server, or
    /// a site-specific override).
    pub resolve: Vec<(String, SocketAddr)>,
    /// Time limit for each request.
    pub timeout: Duration,
}

impl Default for WkdClientConfig {
    fn default() -> Self {
        WkdClientConfig {
            extra_roots_der: Vec::new(),
            only_extra_roots: false,
            resolve: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// [`WkdHttp`] over reqwest with rustls: HTTPS only, at most 3 redirects,
/// answers capped at 1 MiB.
#[derive(Debug, Clone)]
pub struct ReqwestWkdClient {
    client: reqwest::Client,
}

impl ReqwestWkdClient {
    /// Builds the client.
    pub fn new(config: &WkdClientConfig) -> Result<Self, WkdError> {
        let roots = config
            .extra_roots_der
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| WkdError::Client(e.to_string()))?;
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::limited(3))
            .timeout(config.timeout)
            .user_agent("carepost-wkd");
        builder = if config.only_extra_roots { builder.tls_certs_only(roots) } else { builder.tls_certs_merge(roots) };
        for (host, addr) in &config.resolve {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().map_err(|e| WkdError::Client(e.to_string()))?;
        Ok(ReqwestWkdClient { client })
    }
}

impl WkdHttp for ReqwestWkdClient {
    async fn get(&self, url: &str) -> Result<Option<Vec<u8>>, WkdError> {
        // Connection and TLS failures are errors, not "nothing published":
        // a host that cannot prove who it is must not look like an empty one.
        let mut response = self.client.get(url).send().await.map_err(|e| WkdError::Http(error_chain(&e)))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(WkdError::Http(format!("status {} from {url}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| WkdError::Http(e.to_string()))? {
            if body.len() + chunk.len() > MAX_KEY_BYTES {
                return Err(WkdError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

/// An error with its causes, which is where reqwest says what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_match_the_draft_example() {
        // draft-koch-openpgp-webkey-service §3.1.
        let urls = wkd_urls("Joe.Doe@Example.ORG").unwrap();
        assert_eq!(
            urls.advanced,
            "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
        );
        assert_eq!(
            urls.direct,
            "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
        );
    }

    #[test]
    fn local_part_is_percent_encoded_in_the_query() {
        let urls = wkd_urls("a+b c@example.org").unwrap();
        assert!(urls.direct.ends_with("?l=a%2Bb%20c"), "{}", urls.direct);
    }

    #[test]
    fn bad_addresses_are_refused() {
        for address in
            ["", "no-at-sign", "@example.org", "a@", "a@exa mple.org", "a@example.org/x", "a@-x.org", "a@ex..org"]
        {
            assert!(matches!(wkd_urls(address), Err(WkdError::BadAddress(_))), "{address}");
        }
    }

    #[test]
    fn zbase32_of_known_values() {
        assert_eq!(zbase32(&[]), "");
        assert_eq!(zbase32(&[0]), "yy");
        assert_eq!(zbase32(&[0xff]), "9h");
    }
}
