//! DKIM signing (RFC 6376, RFC 8463): per-domain Ed25519 and RSA-2048 keys, both signing
//! every message (dual signatures: Ed25519 for verifiers that know it, RSA for the rest),
//! rotation with overlap, and the DNS records to publish.
//!
//! Private keys are sealed under the vault (one data key per key, object `dkim/<id>`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use carepost_audit::Event;
use carepost_model::{Id, TenantId, Timestamp};
use carepost_store::dkim_keys::{self, DkimKeyRow};
use carepost_store::{StoreError, keys};
use carepost_vault::WrappedDataKey;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use carepost_model::header::from_domain;

use crate::{Spool, SpoolError};

/// Headers signed, as RFC 6376 section 5.4.1 recommends for mail that must keep its meaning.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("{0}")]
    Spool(#[from] SpoolError),
    #[error("key generation failed")]
    Generate,
    #[error("DKIM key {0} is damaged: {1}")]
    BadKey(String, String),
    #[error("{0} already has DKIM keys; use `carepost dkim rotate {0}` to replace them")]
    HasKeys(String),
    #[error("'{0}' is not a domain name")]
    BadDomain(String),
}

fn object(id: &str) -> String {
    format!("dkim/{id}")
}

/// Generates one Ed25519 and one RSA-2048 key for `domain`, sealed, active from `active_from`.
pub fn generate(
    spool: &Spool,
    tenant: &TenantId,
    domain: &str,
    selector_base: &str,
    active_from: Timestamp,
) -> Result<Vec<(DkimKeyRow, WrappedDataKey)>, DkimError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| DkimError::Generate)?;
    let ed_public =
        Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).map_err(|_| DkimError::Generate)?.public_key().as_ref().to_vec();
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| DkimError::Generate)?;
    let rsa_pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).map_err(|_| DkimError::Generate)?;
    let rsa_public =
        AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(rsa.public_key()).map_err(|_| DkimError::Generate)?;
    let now = Timestamp::now().as_micros();
    let mut out = Vec::new();
    for (algorithm, suffix, private, public) in [
        ("ed25519", "ed", ed_pkcs8.as_ref().to_vec(), ed_public),
        ("rsa", "rsa", rsa_pkcs8.as_ref().to_vec(), rsa_public.as_ref().to_vec()),
    ] {
        let id = Id::new().to_string();
        let (key, wrapped) = spool.ring().new_data_key(tenant, &object(&id)).map_err(SpoolError::from)?;
        let sealed = key.seal_field("private-key", &private).map_err(SpoolError::from)?;
        out.push((
            DkimKeyRow {
                id,
                tenant: tenant.to_string(),
                domain: domain.to_owned(),
                selector: format!("{selector_base}-{suffix}"),
                algorithm: algorithm.into(),
                public_key: public,
                private_key: sealed,
                created_at: now,
                active_from: active_from.as_micros(),
                retired_at: None,
            },
            wrapped,
        ));
    }
    Ok(out)
}

/// The default selector base for keys made now: `PREFIXyyyymmdd`.
pub fn selector_base(prefix: &str, now: Timestamp) -> String {
    let d = now.to_datetime().date();
    format!("{prefix}{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

fn valid_domain(domain: &str) -> bool {
    carepost_model::Address::parse(&format!("postmaster@{domain}")).is_ok() && !domain.starts_with('[')
}

/// `carepost dkim generate`: the domain's first keys, signing at once.
pub async fn create_first(
    spool: &Spool,
    actor: &str,
    tenant: &TenantId,
    domain: &str,
    selector: &str,
) -> Result<Vec<DkimKeyRow>, DkimError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Err(DkimError::BadDomain(domain));
    }
    let now = Timestamp::now();
    if !published(&spool.store().dkim_keys(Some(&domain)).await.map_err(SpoolError::from)?, now).is_empty() {
        return Err(DkimError::HasKeys(domain));
    }
    let generated = generate(spool, tenant, &domain, selector, now)?;
    store(spool, actor, tenant, &domain, generated, None).await
}

/// `carepost dkim rotate`: new keys that start signing after `overlap` (time to publish
/// them); the old keys sign until then and stay published for another `overlap`.
pub async fn rotate(
    spool: &Spool,
    actor: &str,
    tenant: &TenantId,
    domain: &str,
    selector: &str,
    overlap: Duration,
) -> Result<Vec<DkimKeyRow>, DkimError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Err(DkimError::BadDomain(domain));
    }
    let overlap = i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX / 4_000_000);
    let now = Timestamp::now();
    let generated = generate(spool, tenant, &domain, selector, now.plus_seconds(overlap))?;
    store(spool, actor, tenant, &domain, generated, Some(now.plus_seconds(overlap.saturating_mul(2)))).await
}

async fn store(
    spool: &Spool,
    actor: &str,
    tenant: &TenantId,
    domain: &str,
    generated: Vec<(DkimKeyRow, WrappedDataKey)>,
    retire_old_at: Option<Timestamp>,
) -> Result<Vec<DkimKeyRow>, DkimError> {
    let rows: Vec<DkimKeyRow> = generated.iter().map(|(r, _)| r.clone()).collect();
    let event = Event::new(actor, if retire_old_at.is_some() { "dkim.rotate" } else { "dkim.generate" })
        .target(format!("domain:{domain}"))
        .detail("selectors", rows.iter().map(|r| r.selector.as_str()).collect::<Vec<_>>().join(","))
        .detail("active_from", Timestamp::from_micros(rows[0].active_from).to_rfc3339());
    let (audit, tenant, domain) = (spool.audit().clone(), tenant.clone(), domain.to_owned());
    spool
        .store()
        .write(move |tx| {
            Box::pin(async move {
                let keep: Vec<String> = generated.iter().map(|(r, _)| r.id.clone()).collect();
                for (row, wrapped) in &generated {
                    keys::put_data_key(tx, &tenant, &object(&row.id), wrapped).await?;
                    dkim_keys::insert(tx, row).await?;
                }
                if let Some(at) = retire_old_at {
                    dkim_keys::schedule_retirement(tx, &domain, at.as_micros(), &keep).await?;
                }
                audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(())
            })
        })
        .await
        .map_err(SpoolError::from)?;
    Ok(rows)
}

/// Keys still in DNS at `now` (current, upcoming, and old ones during their overlap).
pub fn published(keys: &[DkimKeyRow], now: Timestamp) -> Vec<&DkimKeyRow> {
    keys.iter().filter(|k| k.retired_at.is_none_or(|r| r > now.as_micros())).collect()
}

/// The keys that sign at `now`: for each algorithm, the newest key already active.
pub fn signing(keys: &[DkimKeyRow], now: Timestamp) -> Vec<&DkimKeyRow> {
    let mut best: HashMap<&str, &DkimKeyRow> = HashMap::new();
    for k in published(keys, now) {
        if k.active_from > now.as_micros() {
            continue;
        }
        let slot = best.entry(k.algorithm.as_str()).or_insert(k);
        if k.active_from > slot.active_from {
            *slot = k;
        }
    }
    let mut out: Vec<&DkimKeyRow> = best.into_values().collect();
    out.sort_by(|a, b| a.algorithm.cmp(&b.algorithm));
    out
}

/// The TXT record text of a key (`v=DKIM1; k=...; p=...`).
pub fn txt_record(key: &DkimKeyRow) -> String {
    let k = if key.algorithm == "ed25519" { "ed25519" } else { "rsa" };
    format!("v=DKIM1; k={k}; p={}", base64::engine::general_purpose::STANDARD.encode(&key.public_key))
}

/// A ready signer for one key: domain, selector and headers fixed.
enum LoadedKey {
    Ed25519(DkimSigner<Ed25519Key, Done>),
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
}

struct DomainKeys {
    loaded_at: Instant,
    /// `(selector, tenant, key)`.
    keys: Vec<(String, String, Arc<LoadedKey>)>,
}

/// Signs outgoing messages with the keys of their From domain; caches opened keys briefly.
pub struct Signer {
    cache: Mutex<HashMap<String, Arc<DomainKeys>>>,
}

/// How long opened keys are reused before the store is asked again (picks up rotations).
const KEY_CACHE: Duration = Duration::from_secs(60);

impl Default for Signer {
    fn default() -> Self {
        Signer { cache: Mutex::new(HashMap::new()) }
    }
}

impl Signer {
    async fn keys_for(&self, spool: &Spool, domain: &str) -> Result<Arc<DomainKeys>, DkimError> {
        if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(domain)
            && hit.loaded_at.elapsed() < KEY_CACHE
        {
            return Ok(hit.clone());
        }
        let rows = spool.store().dkim_keys(Some(domain)).await.map_err(SpoolError::from)?;
        let mut keys = Vec::new();
        for row in signing(&rows, Timestamp::now()) {
            let bad = |e: String| DkimError::BadKey(row.selector.clone(), e);
            let tenant = TenantId::new(&row.tenant).map_err(|e| bad(e.to_string()))?;
            let dk = spool.store().data_key(spool.ring(), &tenant, &object(&row.id)).await.map_err(SpoolError::from)?;
            let der = dk.open_field("private-key", &row.private_key).map_err(|e| bad(e.to_string()))?;
            let key = match row.algorithm.as_str() {
                "ed25519" => LoadedKey::Ed25519(
                    DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&der).map_err(|e| bad(e.to_string()))?)
                        .domain(domain)
                        .selector(row.selector.as_str())
                        .headers(SIGNED_HEADERS.iter().copied()),
                ),
                _ => LoadedKey::Rsa(
                    DkimSigner::from_key(
                        RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
                            .map_err(|e| bad(e.to_string()))?,
                    )
                    .domain(domain)
                    .selector(row.selector.as_str())
                    .headers(SIGNED_HEADERS.iter().copied()),
                ),
            };
            keys.push((row.selector.clone(), row.tenant.clone(), Arc::new(key)));
        }
        let entry = Arc::new(DomainKeys { loaded_at: Instant::now(), keys });
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(domain.to_owned(), entry.clone());
        Ok(entry)
    }

    /// The DKIM-Signature header fields to put in front of `message`, or none when its
    /// From domain has no keys of `tenant`: one tenant's keys never sign another tenant's
    /// mail, whatever its From says. Signing runs off the reactor (RSA is milliseconds of CPU).
    pub async fn sign(&self, spool: &Spool, tenant: &TenantId, message: bytes::Bytes) -> Result<Vec<u8>, DkimError> {
        let Some(domain) = from_domain(&message) else { return Ok(Vec::new()) };
        let keys = self.keys_for(spool, &domain).await?;
        let tenant = tenant.to_string();
        if !keys.keys.iter().any(|(_, t, _)| *t == tenant) {
            return Ok(Vec::new());
        }
        let signed = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (selector, _, key) in keys.keys.iter().filter(|(_, t, _)| *t == tenant) {
                let signature = match key.as_ref() {
                    LoadedKey::Ed25519(signer) => signer.sign(&message),
                    LoadedKey::Rsa(signer) => signer.sign(&message),
                };
                match signature {
                    Ok(sig) => out.extend_from_slice(sig.to_header().as_bytes()),
                    Err(e) => tracing::warn!(selector = %selector, error = %e, "DKIM signing failed"),
                }
            }
            out
        })
        .await
        .map_err(|e| DkimError::BadKey("signer".into(), e.to_string()))?;
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(alg: &str, active_from: i64, retired_at: Option<i64>, id: &str) -> DkimKeyRow {
        DkimKeyRow {
            id: id.into(),
            tenant: "default".into(),
            domain: "d".into(),
            selector: id.into(),
            algorithm: alg.into(),
            public_key: vec![],
            private_key: vec![],
            created_at: 0,
            active_from,
            retired_at,
        }
    }

    use mail_auth::common::parse::TxtRecordParser;

    #[derive(Default)]
    struct TxtCache(Mutex<HashMap<Box<str>, mail_auth::Txt>>);

    impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for TxtCache {
        fn get<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().get(name).cloned()
        }

        fn remove<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().remove(name)
        }

        fn insert(&self, key: Box<str>, value: mail_auth::Txt, _: std::time::Instant) {
            self.0.lock().unwrap().insert(key, value);
        }
    }

    #[test]
    fn rotation_overlaps_signing_and_publishing() {
        let keys = vec![
            row("ed25519", 0, Some(300), "old-ed"),
            row("rsa", 0, Some(300), "old-rsa"),
            row("ed25519", 150, None, "new-ed"),
            row("rsa", 150, None, "new-rsa"),
        ];
        let ids = |v: Vec<&DkimKeyRow>| v.into_iter().map(|k| k.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(signing(&keys, Timestamp::from_micros(100))), vec!["old-ed", "old-rsa"]);
        assert_eq!(ids(signing(&keys, Timestamp::from_micros(200))), vec!["new-ed", "new-rsa"]);
        assert_eq!(
            published(&keys, Timestamp::from_micros(200)).len(),
            4,
            "old keys stay published during the overlap"
        );
        assert_eq!(ids(published(&keys, Timestamp::from_micros(301))), vec!["new-ed", "new-rsa"]);
    }

    #[tokio::test]
    async fn generated_keys_sign_and_verify_and_stay_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = carepost_spool::testing::spool(dir.path()).await;
        let tenant = TenantId::default();
        let rows = create_first(&spool, "cli", &tenant, "Clinic.Example", "cp20260101").await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(matches!(
            create_first(&spool, "cli", &tenant, "clinic.example", "x").await,
            Err(DkimError::HasKeys(_))
        ));
        let ed = rows.iter().find(|r| r.algorithm == "ed25519").unwrap();
        assert_eq!(ed.public_key.len(), 32);
        assert!(txt_record(ed).starts_with("v=DKIM1; k=ed25519; p="));

        let message = bytes::Bytes::from_static(
            b"From: Billing <billing@clinic.example>\r\nTo: p@example.net\r\nSubject: hi\r\n\r\nbody\r\n",
        );
        let signer = Signer::default();
        let other = TenantId::new("other").unwrap();
        assert!(
            signer.sign(&spool, &other, message.clone()).await.unwrap().is_empty(),
            "another tenant's mail is not signed"
        );
        let headers = String::from_utf8(signer.sign(&spool, &tenant, message.clone()).await.unwrap()).unwrap();
        assert_eq!(headers.matches("DKIM-Signature:").count(), 2, "{headers}");
        assert!(headers.contains("a=ed25519-sha256") && headers.contains("a=rsa-sha256"));
        assert!(headers.contains("s=cp20260101-ed") && headers.contains("d=clinic.example"));

        // Verify both signatures with mail-auth against the published keys (served from a
        // preloaded cache: no DNS).
        let mut signed = headers.into_bytes();
        signed.extend_from_slice(&message);
        let parsed = mail_auth::AuthenticatedMessage::parse(&signed).unwrap();
        let cache = TxtCache::default();
        for key in &rows {
            let record =
                <mail_auth::common::verify::DomainKey as TxtRecordParser>::parse(txt_record(key).as_bytes()).unwrap();
            let name = format!("{}._domainkey.clinic.example.", key.selector);
            cache.0.lock().unwrap().insert(name.into_boxed_str(), mail_auth::Txt::from(record));
        }
        let resolver = mail_auth::MessageAuthenticator::new_system_conf().unwrap();
        let outputs = resolver.verify_dkim(mail_auth::Parameters::new(&parsed).with_txt_cache(&cache)).await;
        assert_eq!(outputs.len(), 2);
        for out in &outputs {
            assert_eq!(out.result(), &mail_auth::DkimResult::Pass, "{out:?}");
        }

        // The private keys are on disk only sealed.
        let key = spool.store().data_key(spool.ring(), &tenant, &object(&ed.id)).await.unwrap();
        let pkcs8 = key.open_field("private-key", &ed.private_key).unwrap();
        spool.store().close().await;
        // PKCS#8 for Ed25519 holds the 32-byte private seed after a 16-byte prefix.
        assert!(carepost_testkit::files_containing(dir.path(), &pkcs8[16..48]).is_empty());
    }
}
