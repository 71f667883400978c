//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy file fetched over HTTPS from
//! `mta-sts.DOMAIN`, and a cache that keeps a policy for its `max_age`, in memory and (with
//! [`MtaSts::persist_in`]) in the store, so a restart neither forgets a policy nor lets an
//! attacker who blocks the policy host (or the TXT look-up) downgrade the domain to
//! opportunistic TLS (RFC 8461 section 5.1).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carepost_model::{TenantId, Timestamp};
use carepost_store::Store;
use carepost_store::mta_sts::StsPolicyRow;
use carepost_vault::KeyRing;
use mail_auth::common::parse::TxtRecordParser;

use crate::dns::Dns;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsMode {
    Enforce,
    Testing,
    None,
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: StsMode,
    /// MX patterns: `mx.example.org` or `*.example.org` (one leftmost label).
    pub mx: Vec<String>,
    pub max_age: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StsError {
    #[error("policy: {0}")]
    Syntax(String),
    #[error("policy fetch: {0}")]
    Fetch(String),
}

/// RFC 8461 section 3.2: the longest max_age a sender honours (about one year).
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// Policy files larger than this are refused (RFC 8461 section 3.3 suggests 64 KiB).
const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Parses a policy file (RFC 8461 section 3.2).
pub fn parse_policy(text: &str) -> Result<StsPolicy, StsError> {
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) =
            line.split_once(':').ok_or_else(|| StsError::Syntax(format!("line without ':': {line:.60}")))?;
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_owned()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => StsMode::Enforce,
                    "testing" => StsMode::Testing,
                    "none" => StsMode::None,
                    other => return Err(StsError::Syntax(format!("unknown mode '{other:.20}'"))),
                })
            }
            "max_age" => {
                let n: u64 = value.parse().map_err(|_| StsError::Syntax("max_age is not a number".into()))?;
                max_age = Some(n.min(MAX_AGE_LIMIT));
            }
            "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
            // Unknown keys are ignored (RFC 8461 section 3.2, extensibility).
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err(StsError::Syntax("version is not STSv1".into()));
    }
    let mode = mode.ok_or_else(|| StsError::Syntax("no mode".into()))?;
    let max_age = max_age.ok_or_else(|| StsError::Syntax("no max_age".into()))?;
    if mode != StsMode::None && mx.is_empty() {
        return Err(StsError::Syntax("no mx".into()));
    }
    Ok(StsPolicy { mode, mx, max_age })
}

impl StsPolicy {
    /// The policy as a policy file, which [`parse_policy`] reads back.
    pub fn to_text(&self) -> String {
        let mode = match self.mode {
            StsMode::Enforce => "enforce",
            StsMode::Testing => "testing",
            StsMode::None => "none",
        };
        let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
        for mx in &self.mx {
            text.push_str(&format!("mx: {mx}\r\n"));
        }
        text.push_str(&format!("max_age: {}\r\n", self.max_age));
        text
    }

    /// Whether an MX host name is allowed by the policy (RFC 8461 section 4.1).
    pub fn mx_matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(parent) => host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *pattern == host,
        })
    }
}

/// The policy id from the `_mta-sts` TXT records, if exactly one valid record exists.
fn policy_id(records: &[String]) -> Option<String> {
    let valid: Vec<String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .filter_map(|r| mail_auth::mta_sts::MtaSts::parse(r.as_bytes()).ok().map(|p| p.id))
        .collect();
    if valid.len() == 1 { valid.into_iter().next() } else { None }
}

/// How the policy host is reached: trust roots and fixed addresses (for tests and private
/// deployments).
#[derive(Debug, Clone, Default)]
pub struct StsFetchOptions {
    /// Extra trusted roots (DER) besides the public web roots.
    pub extra_roots_der: Vec<Vec<u8>>,
    /// Fixed addresses for policy host names, bypassing DNS.
    pub resolve: Vec<(String, SocketAddr)>,
    /// Port of the policy host, 443 except in tests.
    pub port: Option<u16>,
}

#[derive(Clone)]
struct Cached {
    id: String,
    policy: Arc<StsPolicy>,
    /// Unix microseconds.
    expires: i64,
}

/// The store a cache persists in, and the key ring that seals its rows.
struct Persisted {
    store: Store,
    ring: Arc<KeyRing>,
}

/// The blind-index field of stored policies' domains.
const DOMAIN_FIELD: &str = "mta-sts-domain";

/// What a stored row seals.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    id: String,
    policy: String,
}

/// Fetches and caches MTA-STS policies.
pub struct MtaSts {
    client: reqwest::Client,
    port: Option<u16>,
    cache: Mutex<HashMap<String, Cached>>,
    persisted: Option<Persisted>,
}

impl MtaSts {
    pub fn new(timeout: Duration, options: &StsFetchOptions) -> Result<Self, StsError> {
        let roots = options
            .extra_roots_der
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StsError::Fetch(e.to_string()))?;
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            // RFC 8461 section 3.3: redirects MUST NOT be followed.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent("carepost-mta-sts")
            .tls_certs_merge(roots);
        for (host, addr) in &options.resolve {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().map_err(|e| StsError::Fetch(e.to_string()))?;
        Ok(MtaSts { client, port: options.port, cache: Mutex::new(HashMap::new()), persisted: None })
    }

    /// Keeps learned policies in `store` too (the domain blind-indexed and the policy sealed
    /// under the default tenant's keys), so they outlive the process.
    pub fn persist_in(mut self, store: Store, ring: Arc<KeyRing>) -> Self {
        self.persisted = Some(Persisted { store, ring });
        self
    }

    fn cached(&self, domain: &str, now: i64) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(domain).filter(|c| c.expires > now).cloned()
    }

    fn remember(&self, domain: &str, cached: Cached) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(domain.to_owned(), cached);
    }

    /// The unexpired policy stored for `domain`, if any. A row that cannot be read counts
    /// as none (and is replaced by the next fetch).
    async fn load(&self, domain: &str, now: i64) -> Option<Cached> {
        let p = self.persisted.as_ref()?;
        let tenant = TenantId::default();
        let read = async {
            let index = p.ring.blind_index(&tenant, DOMAIN_FIELD, domain.as_bytes()).map_err(|e| e.to_string())?;
            let Some(row) = p.store.mta_sts_policy(&index, now).await.map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let key = p.store.data_key(&p.ring, &tenant, &object(&index)).await.map_err(|e| e.to_string())?;
            let sealed: Sealed =
                serde_json::from_slice(&key.open_field("policy", &row.policy).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            let policy = parse_policy(&sealed.policy).map_err(|e| e.to_string())?;
            Ok::<_, String>(Some(Cached { id: sealed.id, policy: Arc::new(policy), expires: row.expires_at }))
        };
        match read.await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(domain = %carepost_model::Sensitive::new(domain), error = %e, "cannot read a stored MTA-STS policy");
                None
            }
        }
    }

    async fn save(&self, domain: &str, cached: &Cached, now: i64) {
        let Some(p) = self.persisted.as_ref() else { return };
        let tenant = TenantId::default();
        let write = async {
            let index = p.ring.blind_index(&tenant, DOMAIN_FIELD, domain.as_bytes()).map_err(|e| e.to_string())?;
            let object = object(&index);
            let (key, wrapped) = p.ring.new_data_key(&tenant, &object).map_err(|e| e.to_string())?;
            let plain = serde_json::to_vec(&Sealed { id: cached.id.clone(), policy: cached.policy.to_text() })
                .map_err(|e| e.to_string())?;
            let row = StsPolicyRow {
                domain_index: index,
                policy: key.seal_field("policy", &plain).map_err(|e| e.to_string())?,
                fetched_at: now,
                expires_at: cached.expires,
            };
            p.store.put_mta_sts_policy(row, tenant.clone(), object, wrapped).await.map_err(|e| e.to_string())
        };
        if let Err(e) = write.await {
            tracing::warn!(domain = %carepost_model::Sensitive::new(domain), error = %e, "cannot store an MTA-STS policy; it is kept in memory only");
        }
    }

    /// The policy in force for `domain`, or `None`. A policy stays in force until its
    /// max_age runs out, across restarts: a missing or failing TXT look-up, or a failure to
    /// fetch a changed policy, keeps the cached one (RFC 8461 section 5.1); with nothing
    /// cached they mean "no policy".
    pub async fn policy(&self, dns: &dyn Dns, domain: &str) -> Option<Arc<StsPolicy>> {
        let domain = domain.to_ascii_lowercase();
        let now = Timestamp::now().as_micros();
        let cached = match self.cached(&domain, now) {
            Some(c) => Some(c),
            None => {
                let stored = self.load(&domain, now).await;
                if let Some(c) = &stored {
                    self.remember(&domain, c.clone());
                }
                stored
            }
        };
        let id = match dns.txt(&format!("_mta-sts.{domain}")).await {
            Ok(answer) => policy_id(&answer.records),
            Err(_) => None,
        };
        let Some(id) = id else {
            return cached.map(|c| c.policy);
        };
        if let Some(c) = &cached
            && c.id == id
        {
            return Some(c.policy.clone());
        }
        match self.fetch(&domain).await {
            Ok(policy) => {
                let max_age = i64::try_from(policy.max_age).unwrap_or(i64::MAX / 2_000_000);
                let fresh = Cached {
                    id,
                    policy: Arc::new(policy),
                    expires: now.saturating_add(max_age.saturating_mul(1_000_000)),
                };
                self.remember(&domain, fresh.clone());
                self.save(&domain, &fresh, now).await;
                Some(fresh.policy)
            }
            Err(e) => {
                tracing::info!(domain = %carepost_model::Sensitive::new(domain.as_str()), error = %e, "MTA-STS policy fetch failed");
                cached.map(|c| c.policy)
            }
        }
    }

    async fn fetch(&self, domain: &str) -> Result<StsPolicy, StsError> {
        let url = match self.port {
            Some(port) => format!("https://mta-sts.{domain}:{port}/.well-known/mta-sts.txt"),
            None => format!("https://mta-sts.{domain}/.well-known/mta-sts.txt"),
        };
        let fetch = |e: &dyn std::error::Error| StsError::Fetch(error_chain(e));
        let mut response = self.client.get(&url).send().await.map_err(|e| fetch(&e))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(StsError::Fetch(format!("status {}", response.status())));
        }
        let media = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !media.starts_with("text/plain") {
            return Err(StsError::Fetch(format!("media type '{media:.40}' is not text/plain")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fetch(&e))? {
            if body.len() + chunk.len() > MAX_POLICY_BYTES {
                return Err(StsError::Fetch("policy larger than 64 KiB".into()));
            }
            body.extend_from_slice(&chunk);
        }
        parse_policy(&String::from_utf8_lossy(&body))
    }
}

/// The data-key object a stored policy is sealed under.
fn object(domain_index: &[u8]) -> String {
    format!("mta-sts/{}", hex::encode(domain_index))
}

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
    fn parses_the_rfc_example_and_matches_mx_patterns() {
        let p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mode, StsMode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert!(p.mx_matches("mail.example.com"));
        assert!(p.mx_matches("MX1.example.net."));
        assert!(!p.mx_matches("a.b.example.net"), "a wildcard covers one label only");
        assert!(!p.mx_matches("example.net"));
        assert!(!p.mx_matches("evil.example.com"));
        assert_eq!(parse_policy(&p.to_text()).unwrap(), p, "the stored form reads back");
    }

    #[test]
    fn refuses_malformed_policies() {
        for bad in [
            "mode: enforce\nmx: a.b\nmax_age: 1\n",
            "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.b\n",
            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: soon\n",
            "garbage",
        ] {
            assert!(parse_policy(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap().max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn txt_record_needs_exactly_one_valid_version() {
        assert_eq!(policy_id(&["v=STSv1; id=20240101T000000;".into()]), Some("20240101T000000".into()));
        assert_eq!(policy_id(&["v=STSv1; id=a;".into(), "v=STSv1; id=b;".into()]), None);
        assert_eq!(policy_id(&["v=spf1 -all".into()]), None);
    }
}
