//! Tenant secrets and data keys.
//!
//! A [`KeyRing`] holds the master key and the tenant secrets unwrapped from it. Persisting the
//! wrapped forms is the store's job; the key ring only turns wrapped bytes into usable keys
//! and back, so every operation here is synchronous and cheap once a tenant is loaded.

use std::collections::HashMap;
use std::sync::RwLock;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use carepost_model::TenantId;
use zeroize::Zeroizing;

use crate::{MasterKey, Sealer, VaultError, open, seal};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const WRAPPED_DATA_KEY_LEN: usize = 4 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// What a tenant secret is for. Each purpose has its own versions; only the kek rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretPurpose {
    /// Wraps the tenant's data keys.
    Kek,
    /// Keys the HMAC of blind indexes; must stay stable or look-ups stop matching.
    BlindIndex,
    /// Seed of the Ed25519 key that signs audit checkpoints.
    AuditSigning,
    /// Keys the hashes that stand in for sensitive values in logs.
    LogRedaction,
}

impl SecretPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretPurpose::Kek => "kek",
            SecretPurpose::BlindIndex => "blind-index",
            SecretPurpose::AuditSigning => "audit-signing",
            SecretPurpose::LogRedaction => "log-redaction",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Kek, Self::BlindIndex, Self::AuditSigning, Self::LogRedaction].into_iter().find(|p| p.as_str() == text)
    }
}

/// A tenant secret wrapped under the master key, as the store keeps it. `scope` is a tenant id
/// or `*` for installation-wide secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedSecret {
    pub scope: String,
    pub purpose: SecretPurpose,
    pub version: u32,
    pub master_key_id: String,
    pub bytes: Vec<u8>,
}

/// A data key wrapped under a tenant kek: `kek version ‖ nonce ‖ ciphertext ‖ tag`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedDataKey(pub Vec<u8>);

impl WrappedDataKey {
    pub fn kek_version(&self) -> Option<u32> {
        let v: [u8; 4] = self.0.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(v))
    }
}

impl std::fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedDataKey(kek v{:?})", self.kek_version())
    }
}

/// The associated data that binds a sealed object to its tenant and id.
pub fn object_aad(tenant: &TenantId, object: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.as_str().len() + object.len() + 16);
    aad.extend_from_slice(b"carepost/obj/v1\0");
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(object.as_bytes());
    aad
}

/// The data key of one object, already bound to that object's associated data.
pub struct DataKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    aad: Vec<u8>,
}

impl DataKey {
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        seal(&self.key, &self.aad, plaintext)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        open(&self.key, &self.aad, sealed)
    }

    /// For sealing a large object while it streams in.
    pub fn sealer(&self) -> Result<Sealer, VaultError> {
        Sealer::new(&self.key, &self.aad)
    }

    /// Seals a second value of the same object (a column beside its body, say) under the same
    /// data key, told apart by `field` so the two can never be swapped.
    pub fn seal_field(&self, field: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        seal(&self.key, &self.field_aad(field), plaintext)
    }

    pub fn open_field(&self, field: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        open(&self.key, &self.field_aad(field), sealed)
    }

    fn field_aad(&self, field: &str) -> Vec<u8> {
        let mut aad = self.aad.clone();
        aad.push(0);
        aad.extend_from_slice(field.as_bytes());
        aad
    }
}

struct Loaded {
    versions: HashMap<u32, Zeroizing<[u8; KEY_LEN]>>,
    active: u32,
}

/// The master key and the tenant secrets unwrapped under it.
pub struct KeyRing {
    master: MasterKey,
    loaded: RwLock<HashMap<(String, SecretPurpose), Loaded>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({})", self.master.key_id())
    }
}

fn aes(key: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is valid for AES-256-GCM"))
}

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, VaultError> {
    let mut b = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(b.as_mut()).map_err(|_| VaultError::Random)?;
    Ok(b)
}

fn wrap(kek: &[u8; KEY_LEN], aad: &[u8], key: &[u8; KEY_LEN]) -> Result<Vec<u8>, VaultError> {
    let nonce = random_bytes::<NONCE_LEN>()?;
    let mut buf = Vec::with_capacity(NONCE_LEN + KEY_LEN + TAG_LEN);
    buf.extend_from_slice(nonce.as_ref());
    let mut body = key.to_vec();
    aes(kek)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut body)
        .map_err(|_| VaultError::Integrity)?;
    buf.extend_from_slice(&body);
    Ok(buf)
}

fn unwrap(kek: &[u8; KEY_LEN], aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    if wrapped.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
        return Err(VaultError::Format);
    }
    let nonce: [u8; NONCE_LEN] = wrapped[..NONCE_LEN].try_into().map_err(|_| VaultError::Format)?;
    let mut body = Zeroizing::new(wrapped[NONCE_LEN..].to_vec());
    let plain = aes(kek)
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
        .map_err(|_| VaultError::Integrity)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(plain);
    Ok(key)
}

fn secret_aad(scope: &str, purpose: SecretPurpose, version: u32) -> Vec<u8> {
    format!("carepost/secret/v1\0{scope}\0{}\0{version}", purpose.as_str()).into_bytes()
}

fn data_key_aad(tenant: &TenantId, object: &str, version: u32) -> Vec<u8> {
    let mut aad = object_aad(tenant, object);
    aad.extend_from_slice(b"\0dek\0");
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

impl KeyRing {
    pub fn new(master: MasterKey) -> Self {
        KeyRing { master, loaded: RwLock::new(HashMap::new()) }
    }

    pub fn master_key_id(&self) -> String {
        self.master.key_id()
    }

    /// Makes a new random secret, installs it as the active version and returns the wrapped
    /// form for the store to persist.
    pub fn generate_secret(
        &self,
        scope: &str,
        purpose: SecretPurpose,
        version: u32,
    ) -> Result<WrappedSecret, VaultError> {
        let secret = random_bytes::<KEY_LEN>()?;
        let wrapped = WrappedSecret {
            scope: scope.to_owned(),
            purpose,
            version,
            master_key_id: self.master.key_id(),
            bytes: wrap(self.master.bytes(), &secret_aad(scope, purpose, version), &secret)?,
        };
        self.insert(scope, purpose, version, secret, true);
        Ok(wrapped)
    }

    /// Unwraps a persisted secret and keeps it; the highest installed version becomes active.
    pub fn install(&self, wrapped: &WrappedSecret) -> Result<(), VaultError> {
        if wrapped.master_key_id != self.master.key_id() {
            return Err(VaultError::WrongMasterKey {
                expected: wrapped.master_key_id.clone(),
                found: self.master.key_id(),
            });
        }
        let aad = secret_aad(&wrapped.scope, wrapped.purpose, wrapped.version);
        let secret = unwrap(self.master.bytes(), &aad, &wrapped.bytes)?;
        self.insert(&wrapped.scope, wrapped.purpose, wrapped.version, secret, false);
        Ok(())
    }

    fn insert(
        &self,
        scope: &str,
        purpose: SecretPurpose,
        version: u32,
        secret: Zeroizing<[u8; KEY_LEN]>,
        activate: bool,
    ) {
        let mut map = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry((scope.to_owned(), purpose))
            .or_insert_with(|| Loaded { versions: HashMap::new(), active: version });
        entry.versions.insert(version, secret);
        if activate || version > entry.active {
            entry.active = version;
        }
    }

    /// Forgets a secret version: after a kek rotation has rewrapped everything under the old
    /// one, or when the transaction persisting a new one failed. The highest remaining version
    /// becomes active.
    pub fn forget(&self, scope: &str, purpose: SecretPurpose, version: u32) {
        let mut map = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        let key = (scope.to_owned(), purpose);
        if let Some(entry) = map.get_mut(&key) {
            entry.versions.remove(&version);
            match entry.versions.keys().max() {
                Some(&highest) => entry.active = highest,
                None => {
                    map.remove(&key);
                }
            }
        }
    }

    pub fn active_version(&self, scope: &str, purpose: SecretPurpose) -> Option<u32> {
        let map = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(scope.to_owned(), purpose)).map(|l| l.active)
    }

    pub fn is_loaded(&self, scope: &str, purpose: SecretPurpose) -> bool {
        self.active_version(scope, purpose).is_some()
    }

    fn with_secret<T>(
        &self,
        scope: &str,
        purpose: SecretPurpose,
        version: Option<u32>,
        f: impl FnOnce(u32, &[u8; KEY_LEN]) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let map = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        let not_loaded = || VaultError::SecretNotLoaded {
            scope: scope.to_owned(),
            purpose: purpose.as_str(),
            version: version.unwrap_or(0),
        };
        let loaded = map.get(&(scope.to_owned(), purpose)).ok_or_else(not_loaded)?;
        let v = version.unwrap_or(loaded.active);
        let secret = loaded.versions.get(&v).ok_or_else(not_loaded)?;
        f(v, secret)
    }

    /// The active version of an installation-wide or tenant secret, for keys derived from it
    /// (the audit signing key, the log redaction key).
    pub fn secret_bytes(&self, scope: &str, purpose: SecretPurpose) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
        self.with_secret(scope, purpose, None, |_, s| Ok(Zeroizing::new(*s)))
    }

    /// Rewraps a secret under another master key, for master key rotation.
    pub fn rewrap_secret(&self, wrapped: &WrappedSecret, new_master: &MasterKey) -> Result<WrappedSecret, VaultError> {
        let aad = secret_aad(&wrapped.scope, wrapped.purpose, wrapped.version);
        let secret = unwrap(self.master.bytes(), &aad, &wrapped.bytes)?;
        Ok(WrappedSecret {
            bytes: wrap(new_master.bytes(), &aad, &secret)?,
            master_key_id: new_master.key_id(),
            ..wrapped.clone()
        })
    }

    /// A fresh data key for `object`, and its wrapped form under the tenant's active kek.
    pub fn new_data_key(&self, tenant: &TenantId, object: &str) -> Result<(DataKey, WrappedDataKey), VaultError> {
        let key = random_bytes::<KEY_LEN>()?;
        let wrapped = self.wrap_data_key(tenant, object, &key)?;
        Ok((DataKey { key, aad: object_aad(tenant, object) }, wrapped))
    }

    fn wrap_data_key(
        &self,
        tenant: &TenantId,
        object: &str,
        key: &[u8; KEY_LEN],
    ) -> Result<WrappedDataKey, VaultError> {
        self.with_secret(tenant.as_str(), SecretPurpose::Kek, None, |version, kek| {
            let mut out = Vec::with_capacity(WRAPPED_DATA_KEY_LEN);
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(&wrap(kek, &data_key_aad(tenant, object, version), key)?);
            Ok(WrappedDataKey(out))
        })
    }

    /// Unwraps the data key of `object`. A key wrapped for another object or tenant fails.
    pub fn open_data_key(
        &self,
        tenant: &TenantId,
        object: &str,
        wrapped: &WrappedDataKey,
    ) -> Result<DataKey, VaultError> {
        if wrapped.0.len() != WRAPPED_DATA_KEY_LEN {
            return Err(VaultError::Format);
        }
        let version = wrapped.kek_version().ok_or(VaultError::Format)?;
        let key = self.with_secret(tenant.as_str(), SecretPurpose::Kek, Some(version), |v, kek| {
            unwrap(kek, &data_key_aad(tenant, object, v), &wrapped.0[4..])
        })?;
        Ok(DataKey { key, aad: object_aad(tenant, object) })
    }

    /// Rewraps a data key under the tenant's active kek; the payload it protects is untouched.
    pub fn rewrap_data_key(
        &self,
        tenant: &TenantId,
        object: &str,
        wrapped: &WrappedDataKey,
    ) -> Result<WrappedDataKey, VaultError> {
        let version = wrapped.kek_version().ok_or(VaultError::Format)?;
        if wrapped.0.len() != WRAPPED_DATA_KEY_LEN {
            return Err(VaultError::Format);
        }
        let key = self.with_secret(tenant.as_str(), SecretPurpose::Kek, Some(version), |v, kek| {
            unwrap(kek, &data_key_aad(tenant, object, v), &wrapped.0[4..])
        })?;
        self.wrap_data_key(tenant, object, &key)
    }

    /// A keyed blind index of a value: equal values give equal indexes within a tenant and
    /// field, and nothing about the value can be learned without the tenant's secret.
    pub fn blind_index(&self, tenant: &TenantId, field: &str, value: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.with_secret(tenant.as_str(), SecretPurpose::BlindIndex, None, |_, secret| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(field.as_bytes());
            ctx.update(&[0]);
            ctx.update(value);
            Ok(ctx.sign().as_ref().to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_with_tenant(t: &TenantId) -> (KeyRing, Vec<WrappedSecret>) {
        let ring = KeyRing::new(MasterKey::generate().unwrap());
        let kek = ring.generate_secret(t.as_str(), SecretPurpose::Kek, 1).unwrap();
        let idx = ring.generate_secret(t.as_str(), SecretPurpose::BlindIndex, 1).unwrap();
        (ring, vec![kek, idx])
    }

    #[test]
    fn data_keys_round_trip_and_bind_to_object_and_tenant() {
        let t = TenantId::new("clinic").unwrap();
        let (ring, _) = ring_with_tenant(&t);
        let (dk, wrapped) = ring.new_data_key(&t, "msg/1").unwrap();
        let sealed = dk.seal(b"marker").unwrap();
        let reopened = ring.open_data_key(&t, "msg/1", &wrapped).unwrap();
        assert_eq!(reopened.open(&sealed).unwrap(), b"marker");
        assert!(ring.open_data_key(&t, "msg/2", &wrapped).is_err());
        let other = TenantId::new("other").unwrap();
        ring.generate_secret("other", SecretPurpose::Kek, 1).unwrap();
        assert!(matches!(ring.open_data_key(&other, "msg/1", &wrapped), Err(VaultError::Integrity)));
    }

    #[test]
    fn fields_of_one_object_cannot_be_swapped() {
        let t = TenantId::default();
        let (ring, _) = ring_with_tenant(&t);
        let (dk, _) = ring.new_data_key(&t, "msg/1").unwrap();
        let subject = dk.seal_field("subject", b"s").unwrap();
        assert_eq!(dk.open_field("subject", &subject).unwrap(), b"s");
        assert!(dk.open_field("sender", &subject).is_err());
        assert!(dk.open(&subject).is_err());
    }

    #[test]
    fn wrong_master_key_is_named() {
        let t = TenantId::default();
        let (_ring, wrapped) = ring_with_tenant(&t);
        let stranger = KeyRing::new(MasterKey::generate().unwrap());
        let e = stranger.install(&wrapped[0]).unwrap_err();
        assert!(matches!(e, VaultError::WrongMasterKey { .. }), "{e}");
    }

    #[test]
    fn kek_rotation_rewraps_without_touching_payloads() {
        let t = TenantId::default();
        let (ring, _) = ring_with_tenant(&t);
        let (dk, wrapped_v1) = ring.new_data_key(&t, "o").unwrap();
        let sealed = dk.seal(b"payload").unwrap();
        ring.generate_secret(t.as_str(), SecretPurpose::Kek, 2).unwrap();
        let wrapped_v2 = ring.rewrap_data_key(&t, "o", &wrapped_v1).unwrap();
        assert_eq!(wrapped_v2.kek_version(), Some(2));
        ring.forget(t.as_str(), SecretPurpose::Kek, 1);
        assert!(ring.open_data_key(&t, "o", &wrapped_v1).is_err());
        assert_eq!(ring.open_data_key(&t, "o", &wrapped_v2).unwrap().open(&sealed).unwrap(), b"payload");
    }

    #[test]
    fn master_rotation_keeps_secrets() {
        let t = TenantId::default();
        let (ring, wrapped) = ring_with_tenant(&t);
        let (dk, wdk) = ring.new_data_key(&t, "o").unwrap();
        let sealed = dk.seal(b"p").unwrap();
        let new_master = MasterKey::generate().unwrap();
        let rewrapped: Vec<_> = wrapped.iter().map(|w| ring.rewrap_secret(w, &new_master).unwrap()).collect();
        let fresh = KeyRing::new(new_master);
        for w in &rewrapped {
            fresh.install(w).unwrap();
        }
        assert_eq!(fresh.open_data_key(&t, "o", &wdk).unwrap().open(&sealed).unwrap(), b"p");
    }

    #[test]
    fn blind_index_is_deterministic_per_tenant_and_field() {
        let t = TenantId::default();
        let (ring, _) = ring_with_tenant(&t);
        let a = ring.blind_index(&t, "rcpt", b"x@y.org").unwrap();
        assert_eq!(a, ring.blind_index(&t, "rcpt", b"x@y.org").unwrap());
        assert_ne!(a, ring.blind_index(&t, "sender", b"x@y.org").unwrap());
        assert_ne!(a, ring.blind_index(&t, "rcpt", b"z@y.org").unwrap());
    }
}
