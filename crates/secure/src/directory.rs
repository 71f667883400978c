//! The recipient key directory.
//!
//! Keys come from three places: an operator imports them (`carepost keys import`), carepost
//! learns S/MIME certificates from validly signed inbound mail, and OpenPGP keys are looked up
//! through WKD and cached. A stored key names its holder, so its address and the key itself
//! are sealed; look-ups go through the blind index of the address.
//!
//! Anyone can sign a message with a self-made certificate for any address, so a learned key
//! is not trusted on its own word: it must come from mail whose author domain is proven
//! (checked by intake), it never replaces or outranks a key already known for the address
//! (a different one is held for review), and without a configured trust anchor it is not used
//! until an operator confirms it (`carepost keys confirm`).
//!
//! [`KeyDirectory::lookup`] returns only keys usable now: expired, not yet valid and revoked
//! keys, keys without an encryption capability, and learned keys awaiting review, are never
//! offered to delivery.

use std::sync::Arc;

use carepost_model::{Address, Id, TenantId, Timestamp};
use carepost_store::recipient_keys::{self, Learned, LookupResult, RecipientKeyRow, state};
use carepost_store::{Store, StoreError, keys};
use carepost_vault::{KeyRing, VaultError};
use time::OffsetDateTime;

use crate::keys::{CertificateInfo, KeyError, OpenPgpKey, Unusable};
use crate::smime::{ChainStatus, RecipientCert, SmimeCapabilities, TrustAnchor};
use crate::wkd::{ReqwestWkdClient, WkdError};

/// How long a WKD answer (a key, or "none published") is trusted before asking again.
pub const WKD_CACHE_SECONDS: i64 = 24 * 3600;
/// How long after a failed WKD look-up (network, TLS) it is tried again: soon enough to
/// pick up a key, rarely enough that an unreachable domain does not slow every message.
pub const WKD_RETRY_SECONDS: i64 = 3600;

/// Why the directory could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing or opening a stored key failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The input is neither kind of key.
    #[error("not an X.509 certificate or OpenPGP public key: {0}")]
    Unrecognized(String),
    /// The key has no e-mail address to file it under.
    #[error("the {kind} names no e-mail address to file it under")]
    NoAddress {
        /// "certificate" or "OpenPGP key".
        kind: &'static str,
    },
    /// The key may not be used for encryption now.
    #[error("the {kind} {fingerprint} cannot be used for encryption: {reason}")]
    Unusable {
        /// "certificate" or "OpenPGP key".
        kind: &'static str,
        /// Its fingerprint.
        fingerprint: String,
        /// Why not.
        reason: Unusable,
    },
    /// A stored key no longer parses.
    #[error("stored key {0} is damaged")]
    Corrupt(String),
    /// A signed message's signature did not verify.
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    /// The signer's certificate is for someone other than the sender.
    #[error("the signer's certificate is not for the sender's address")]
    SignerMismatch,
}

/// S/MIME certificate or OpenPGP key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An X.509 certificate for S/MIME.
    Smime,
    /// An OpenPGP public key.
    Pgp,
}

impl KeyKind {
    /// The name stored and shown: `smime` or `pgp`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Smime => "smime",
            KeyKind::Pgp => "pgp",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            KeyKind::Smime => "certificate",
            KeyKind::Pgp => "OpenPGP key",
        }
    }
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Imported by an operator.
    Import,
    /// Learned from a validly signed inbound message.
    Learned,
    /// Found through the OpenPGP Web Key Directory.
    Wkd,
}

impl KeySource {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Import => "import",
            KeySource::Learned => "learned",
            KeySource::Wkd => "wkd",
        }
    }
}

/// How far a stored key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Imported, found through WKD, or learned with a chain to a configured trust anchor.
    Trusted,
    /// Learned without a trust anchor: not used until an operator confirms it.
    Unconfirmed,
    /// Confirmed by an operator.
    Confirmed,
    /// Learned for an address that already had another key: never used; for review.
    Held,
}

impl KeyState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Trusted => state::TRUSTED,
            KeyState::Unconfirmed => state::UNCONFIRMED,
            KeyState::Confirmed => state::CONFIRMED,
            KeyState::Held => state::HELD,
        }
    }

    /// The state stored as `text`; anything unknown reads as held (never used).
    pub fn parse(text: &str) -> KeyState {
        match text {
            state::TRUSTED => KeyState::Trusted,
            state::UNCONFIRMED => KeyState::Unconfirmed,
            state::CONFIRMED => KeyState::Confirmed,
            _ => KeyState::Held,
        }
    }

    /// Whether delivery may encrypt to the key.
    pub fn usable(self) -> bool {
        matches!(self, KeyState::Trusted | KeyState::Confirmed)
    }
}

/// What learning from a signed message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnOutcome {
    /// The certificate is stored as the address's first key, in `state` (unconfirmed, or
    /// trusted when it chains to a configured anchor).
    Learned {
        /// The new entry.
        id: String,
        /// Unconfirmed or trusted.
        state: KeyState,
    },
    /// The same certificate was already stored (its capabilities are refreshed).
    Known {
        /// The existing entry.
        id: String,
    },
    /// The address already has a different key: the certificate is stored but never used,
    /// for an operator to confirm or remove.
    Held {
        /// The held entry.
        id: String,
        /// Its SHA-256 fingerprint, for the operator to check with the holder.
        fingerprint: String,
    },
    /// The certificate may not be used for encryption now; nothing stored.
    Unusable,
}

/// What [`KeyDirectory::confirm`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The key was unconfirmed or held, and is now confirmed.
    Confirmed {
        /// Its state before.
        was: KeyState,
    },
    /// The key was already in use; nothing changed.
    AlreadyUsable(KeyState),
    /// The tenant has no such key.
    NotFound,
}

/// A key as listed to an operator.
#[derive(Debug, Clone)]
pub struct ListedKey {
    /// The entry's id, for `carepost keys remove`.
    pub id: String,
    /// Certificate or OpenPGP key.
    pub kind: KeyKind,
    /// The address it is filed under.
    pub address: String,
    /// SHA-256 of the certificate, or the OpenPGP fingerprint.
    pub fingerprint: String,
    /// import, learned or wkd.
    pub source: String,
    /// Whether it is trusted, awaits confirmation, was confirmed or is held for review.
    pub state: KeyState,
    /// When it expires, if it does.
    pub not_after: Option<Timestamp>,
    /// Why the key would not be used now, if it would not.
    pub unusable: Option<Unusable>,
}

/// The keys usable for one recipient now, best first.
#[derive(Debug, Clone, Default)]
pub struct RecipientKeys {
    /// Usable S/MIME certificates.
    pub smime: Vec<RecipientCert>,
    /// Usable OpenPGP keys.
    pub pgp: Vec<OpenPgpKey>,
}

/// A parsed key and the addresses it is for.
enum Parsed {
    Smime(CertificateInfo, Option<SmimeCapabilities>),
    Pgp(OpenPgpKey),
}

impl Parsed {
    fn kind(&self) -> KeyKind {
        match self {
            Parsed::Smime(..) => KeyKind::Smime,
            Parsed::Pgp(_) => KeyKind::Pgp,
        }
    }

    fn fingerprint(&self) -> String {
        match self {
            Parsed::Smime(c, _) => c.fingerprint_sha256.clone(),
            Parsed::Pgp(k) => k.fingerprint.clone(),
        }
    }

    fn emails(&self) -> &[String] {
        match self {
            Parsed::Smime(c, _) => &c.emails,
            Parsed::Pgp(k) => &k.emails,
        }
    }

    fn usable(&self, now: OffsetDateTime) -> Result<(), Unusable> {
        match self {
            Parsed::Smime(c, _) => c.usable_for_encryption(now),
            Parsed::Pgp(k) => k.usable_for_encryption(now),
        }
    }

    fn not_after(&self) -> Option<OffsetDateTime> {
        match self {
            Parsed::Smime(c, _) => Some(c.not_after),
            Parsed::Pgp(k) => k.expires,
        }
    }

    fn material(&self) -> Result<Vec<u8>, DirectoryError> {
        match self {
            Parsed::Smime(c, _) => Ok(c.der().to_vec()),
            Parsed::Pgp(k) => {
                let mut out = Vec::new();
                pgp::ser::Serialize::to_writer(k.signed_public_key(), &mut out)
                    .map_err(|e| DirectoryError::Corrupt(e.to_string()))?;
                Ok(out)
            }
        }
    }
}

fn parse_any(bytes: &[u8]) -> Result<Vec<Parsed>, DirectoryError> {
    match CertificateInfo::parse(bytes) {
        Ok(cert) => Ok(vec![Parsed::Smime(cert, None)]),
        Err(cert_err) => match OpenPgpKey::parse_many(bytes) {
            Ok(keys) => Ok(keys.into_iter().map(Parsed::Pgp).collect()),
            Err(pgp_err) => {
                Err(DirectoryError::Unrecognized(format!("as a certificate: {cert_err}; as an OpenPGP key: {pgp_err}")))
            }
        },
    }
}

fn key_object(id: &str) -> String {
    format!("key/{id}")
}

/// The directory of one installation.
#[derive(Clone)]
pub struct KeyDirectory {
    store: Store,
    ring: Arc<KeyRing>,
    wkd: Option<Arc<ReqwestWkdClient>>,
}

impl std::fmt::Debug for KeyDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyDirectory(wkd: {})", self.wkd.is_some())
    }
}

impl KeyDirectory {
    /// `wkd`: the client for WKD look-ups, or `None` to never look keys up on the network.
    pub fn new(store: Store, ring: Arc<KeyRing>, wkd: Option<ReqwestWkdClient>) -> Self {
        KeyDirectory { store, ring, wkd: wkd.map(Arc::new) }
    }

    fn address_index(&self, tenant: &TenantId, address: &str) -> Result<Vec<u8>, VaultError> {
        self.ring.blind_index(tenant, "key-address", address.to_lowercase().as_bytes())
    }

    fn row(
        &self,
        tenant: &TenantId,
        parsed: &Parsed,
        email: &str,
        source: KeySource,
        key_state: KeyState,
    ) -> Result<(RecipientKeyRow, carepost_vault::WrappedDataKey, String), DirectoryError> {
        let material = parsed.material()?;
        let capabilities = match parsed {
            Parsed::Smime(_, Some(caps)) => Some(serde_json::to_string(&caps.algorithms).unwrap_or_default()),
            _ => None,
        };
        let id = Id::new().to_string();
        let object = key_object(&id);
        let (data_key, wrapped) = self.ring.new_data_key(tenant, &object)?;
        let row = RecipientKeyRow {
            id,
            tenant: tenant.to_string(),
            kind: parsed.kind().as_str().to_owned(),
            address_index: self.address_index(tenant, email)?,
            address: data_key.seal_field("address", email.as_bytes())?,
            fingerprint: parsed.fingerprint(),
            material: data_key.seal_field("material", &material)?,
            source: source.as_str().to_owned(),
            capabilities,
            not_after: parsed.not_after().map(|t| Timestamp::from_datetime(t).as_micros()),
            created_at: Timestamp::now().as_micros(),
            state: key_state.as_str().to_owned(),
        };
        Ok((row, wrapped, object))
    }

    async fn save(
        &self,
        tenant: &TenantId,
        parsed: &Parsed,
        source: KeySource,
        only_address: Option<&str>,
    ) -> Result<Vec<String>, DirectoryError> {
        let mut ids = Vec::new();
        for email in parsed.emails() {
            if only_address.is_some_and(|a| !a.eq_ignore_ascii_case(email)) {
                continue;
            }
            let (row, wrapped, object) = self.row(tenant, parsed, email, source, KeyState::Trusted)?;
            let t = tenant.clone();
            let stored = self
                .store
                .write(move |tx| {
                    Box::pin(async move {
                        let (stored_id, new) = recipient_keys::insert(tx, &row).await?;
                        if new {
                            keys::put_data_key(tx, &t, &object, &wrapped).await?;
                        }
                        Ok(stored_id)
                    })
                })
                .await?;
            ids.push(stored);
        }
        Ok(ids)
    }

    /// Imports every certificate or key in `bytes` (PEM, DER, armored or binary OpenPGP) under
    /// each e-mail address it names. Refuses keys that could not be used for encryption now.
    /// Returns the ids of the stored entries.
    pub async fn import(&self, tenant: &TenantId, bytes: &[u8]) -> Result<Vec<String>, DirectoryError> {
        let now = OffsetDateTime::now_utc();
        let parsed = parse_any(bytes)?;
        for p in &parsed {
            if p.emails().is_empty() {
                return Err(DirectoryError::NoAddress { kind: p.kind().noun() });
            }
            p.usable(now).map_err(|reason| DirectoryError::Unusable {
                kind: p.kind().noun(),
                fingerprint: p.fingerprint(),
                reason,
            })?;
        }
        let mut ids = Vec::new();
        for p in &parsed {
            ids.extend(self.save(tenant, p, KeySource::Import, None).await?);
        }
        Ok(ids)
    }

    async fn open_row(&self, tenant: &TenantId, row: &RecipientKeyRow) -> Result<(String, Parsed), DirectoryError> {
        let data_key = self.store.data_key(&self.ring, tenant, &key_object(&row.id)).await?;
        let address = String::from_utf8(data_key.open_field("address", &row.address)?)
            .map_err(|_| DirectoryError::Corrupt(row.id.clone()))?;
        let material = data_key.open_field("material", &row.material)?;
        let parsed = match row.kind.as_str() {
            "smime" => {
                let caps = row
                    .capabilities
                    .as_deref()
                    .and_then(|c| serde_json::from_str::<Vec<String>>(c).ok())
                    .map(|algorithms| SmimeCapabilities { algorithms });
                Parsed::Smime(
                    CertificateInfo::from_der(&material).map_err(|_| DirectoryError::Corrupt(row.id.clone()))?,
                    caps,
                )
            }
            "pgp" => Parsed::Pgp(OpenPgpKey::parse(&material).map_err(|_| DirectoryError::Corrupt(row.id.clone()))?),
            _ => return Err(DirectoryError::Corrupt(row.id.clone())),
        };
        Ok((address, parsed))
    }

    /// Every stored key of a tenant, with whether it would be used now.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ListedKey>, DirectoryError> {
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        for row in self.store.recipient_keys(tenant.as_str()).await? {
            let (address, parsed) = self.open_row(tenant, &row).await?;
            out.push(ListedKey {
                id: row.id.clone(),
                kind: parsed.kind(),
                address,
                fingerprint: row.fingerprint.clone(),
                source: row.source.clone(),
                state: KeyState::parse(&row.state),
                not_after: row.not_after.map(Timestamp::from_micros),
                unusable: parsed.usable(now).err(),
            });
        }
        Ok(out)
    }

    /// Removes a key and crypto-shreds its stored copy.
    pub async fn remove(&self, tenant: &TenantId, id: &str) -> Result<bool, DirectoryError> {
        let (t, id) = (tenant.clone(), id.to_owned());
        Ok(self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let removed = recipient_keys::delete(tx, t.as_str(), &id).await?;
                    if removed {
                        keys::shred_data_key(tx, &t, &key_object(&id)).await?;
                    }
                    Ok(removed)
                })
            })
            .await?)
    }

    /// The keys usable for `address` now, newest expiry first. Looks the address up through
    /// WKD when no OpenPGP key is stored and the last look-up is older than a day.
    pub async fn lookup(&self, tenant: &TenantId, address: &Address) -> Result<RecipientKeys, DirectoryError> {
        self.lookup_at(tenant, address, OffsetDateTime::now_utc()).await
    }

    /// [`KeyDirectory::lookup`] as of `now`.
    pub async fn lookup_at(
        &self,
        tenant: &TenantId,
        address: &Address,
        now: OffsetDateTime,
    ) -> Result<RecipientKeys, DirectoryError> {
        let canonical = address.canonical();
        let index = self.address_index(tenant, &canonical)?;
        let mut found = self.stored_keys(tenant, &canonical, &index, now).await?;
        if found.pgp.is_empty()
            && let Some(key) = self.wkd_lookup(tenant, &canonical, &index, now).await?
        {
            found.pgp.push(key);
        }
        Ok(found)
    }

    async fn stored_keys(
        &self,
        tenant: &TenantId,
        canonical: &str,
        index: &[u8],
        now: OffsetDateTime,
    ) -> Result<RecipientKeys, DirectoryError> {
        let mut smime: Vec<(OffsetDateTime, RecipientCert)> = Vec::new();
        let mut pgp: Vec<(Option<OffsetDateTime>, OpenPgpKey)> = Vec::new();
        for row in self.store.recipient_keys_for(tenant.as_str(), index).await? {
            // A learned key awaiting review ranks below verified TLS and the portal, which every
            // plan ends in: it is simply not offered.
            if !state::usable(&row.state) {
                continue;
            }
            let (stored_for, parsed) = self.open_row(tenant, &row).await?;
            if !stored_for.eq_ignore_ascii_case(canonical) || parsed.usable(now).is_err() {
                continue;
            }
            match parsed {
                Parsed::Smime(cert, caps) => {
                    let not_after = cert.not_after;
                    let mut rc = RecipientCert::from_info(cert);
                    if let Some(caps) = caps {
                        rc = rc.with_capabilities(&caps);
                    }
                    smime.push((not_after, rc));
                }
                Parsed::Pgp(key) => {
                    if key.has_email(canonical) {
                        pgp.push((key.expires, key));
                    }
                }
            }
        }
        // Newest expiry first; a key without expiry counts as newest.
        smime.sort_by_key(|k| std::cmp::Reverse(k.0));
        pgp.sort_by(|a, b| match (a.0, b.0) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Less,
            (_, None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
        });
        Ok(RecipientKeys {
            smime: smime.into_iter().map(|x| x.1).collect(),
            pgp: pgp.into_iter().map(|x| x.1).collect(),
        })
    }

    async fn wkd_lookup(
        &self,
        tenant: &TenantId,
        canonical: &str,
        index: &[u8],
        now: OffsetDateTime,
    ) -> Result<Option<OpenPgpKey>, DirectoryError> {
        let Some(client) = &self.wkd else { return Ok(None) };
        let now_ts = Timestamp::from_datetime(now);
        if let Some((checked, result)) = self.store.last_lookup(tenant.as_str(), index, "wkd").await? {
            let ttl = if result == LookupResult::Failed { WKD_RETRY_SECONDS } else { WKD_CACHE_SECONDS };
            if checked > now_ts.plus_seconds(-ttl).as_micros() {
                // A found key was stored and already considered; a miss or failure is remembered.
                return Ok(None);
            }
        }
        let fetched = crate::wkd::fetch_key_at(client.as_ref(), canonical, now).await;
        let (key, result) = match fetched {
            Ok(key) => (Some(key), LookupResult::Found),
            Err(WkdError::NotFound | WkdError::AddressMismatch | WkdError::Unusable(_) | WkdError::Key(_)) => {
                (None, LookupResult::Miss)
            }
            Err(e) => {
                tracing::warn!(error = %carepost_model::Sensitive::new(e.to_string()), "WKD look-up failed; will try again within the hour");
                (None, LookupResult::Failed)
            }
        };
        if let Some(key) = &key {
            self.save(tenant, &Parsed::Pgp(key.clone()), KeySource::Wkd, Some(canonical)).await?;
        }
        let (t, index) = (tenant.to_string(), index.to_vec());
        let at = now_ts.as_micros();
        self.store
            .write(move |tx| {
                Box::pin(async move { recipient_keys::record_lookup(tx, &t, &index, "wkd", at, result).await })
            })
            .await?;
        Ok(key)
    }

    /// Learns the signer's S/MIME certificate from a signed inbound message, when the
    /// signature verifies, the certificate is for the message's sender and it may be used
    /// for encryption. The caller has established that the sender's domain authored the
    /// message (DKIM aligned with From, DMARC pass); a signature alone proves nothing, since
    /// anyone can make a certificate for any address.
    ///
    /// The address's first key is stored trusted when it chains to one of `anchors`, and
    /// unconfirmed otherwise (with `anchors` empty, its chain is not checked, and it is not
    /// used until an operator confirms it). A different key for an address that already has
    /// one is held: stored for review, never used.
    pub async fn learn_from_signed(
        &self,
        tenant: &TenantId,
        message: &[u8],
        sender: &Address,
        anchors: &[TrustAnchor],
    ) -> Result<LearnOutcome, DirectoryError> {
        let signer = crate::smime::verify(message, anchors).map_err(|e| DirectoryError::BadSignature(e.to_string()))?;
        if !anchors.is_empty() && signer.chain != ChainStatus::Trusted {
            return Err(DirectoryError::BadSignature("the certificate does not chain to a trusted root".into()));
        }
        if !signer.certificate.has_email(sender.as_str()) {
            return Err(DirectoryError::SignerMismatch);
        }
        let now = OffsetDateTime::now_utc();
        if signer.certificate.usable_for_encryption(now).is_err() {
            return Ok(LearnOutcome::Unusable);
        }
        let first_state = if anchors.is_empty() { KeyState::Unconfirmed } else { KeyState::Trusted };
        let parsed = Parsed::Smime(signer.certificate, Some(signer.capabilities));
        let canonical = sender.canonical();
        let (row, wrapped, object) = self.row(tenant, &parsed, &canonical, KeySource::Learned, first_state)?;
        let fingerprint = row.fingerprint.clone();
        let t = tenant.clone();
        let learned = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let learned = recipient_keys::insert_learned(tx, &row).await?;
                    if matches!(learned, Learned::Added { .. }) {
                        keys::put_data_key(tx, &t, &object, &wrapped).await?;
                    }
                    Ok(learned)
                })
            })
            .await?;
        Ok(match learned {
            Learned::Known { id, .. } => LearnOutcome::Known { id },
            Learned::Added { id, state } if state == state::HELD => LearnOutcome::Held { id, fingerprint },
            Learned::Added { id, state } => LearnOutcome::Learned { id, state: KeyState::parse(&state) },
        })
    }

    /// An operator confirms a learned key (unconfirmed or held): from now on it is used like
    /// an imported one.
    pub async fn confirm(&self, tenant: &TenantId, id: &str) -> Result<Confirmation, DirectoryError> {
        let (t, id) = (tenant.to_string(), id.to_owned());
        let was =
            self.store.write(move |tx| Box::pin(async move { recipient_keys::confirm(tx, &t, &id).await })).await?;
        Ok(match was.map(|s| KeyState::parse(&s)) {
            None => Confirmation::NotFound,
            Some(s) if s.usable() => Confirmation::AlreadyUsable(s),
            Some(s) => Confirmation::Confirmed { was: s },
        })
    }
}

impl From<KeyError> for DirectoryError {
    fn from(e: KeyError) -> Self {
        DirectoryError::Unrecognized(e.to_string())
    }
}
