//! API keys of the REST API: how they are made and hashed (only the hash is kept), the
//! rules a new key is held to, and the check of a presented key.

use std::net::IpAddr;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carepost_model::{Network, TenantId};
use carepost_store::StoreError;
use carepost_store::api_keys::NewApiKey;

use crate::{ApiKey, Identity, IdentityError};

/// Every key starts with this, so secret scanners and people can recognize it.
pub const KEY_PREFIX: &str = "cpk_";
/// The scopes a key can have.
pub const SCOPES: &[&str] = &["send", "status", "admin"];

/// A new key: `cpk_` and 256 random bits in base64url. Returns the key and the part shown
/// for identification (its first 12 characters).
pub fn generate() -> Result<(String, String), aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)?;
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let shown = key[..12].to_owned();
    Ok((key, shown))
}

/// The SHA-256 the store keeps of a key.
pub fn hash(key: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, key.as_bytes()).as_ref().to_vec()
}

/// Whether `text` has the shape of a key (before any look-up).
pub fn well_formed(text: &str) -> bool {
    text.len() == KEY_PREFIX.len() + 43
        && text.starts_with(KEY_PREFIX)
        && text[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a presented key was refused; for the audit log (the client hears less).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefused {
    /// Not a key carepost made, or one it does not know.
    Unknown,
    Revoked(ApiKey),
    Expired(ApiKey),
    /// Used from an address outside the key's networks.
    Network(ApiKey),
}

impl KeyRefused {
    pub fn reason(&self) -> &'static str {
        match self {
            KeyRefused::Unknown => "unknown key",
            KeyRefused::Revoked(_) => "revoked",
            KeyRefused::Expired(_) => "expired",
            KeyRefused::Network(_) => "address not allowed",
        }
    }

    pub fn key(&self) -> Option<&ApiKey> {
        match self {
            KeyRefused::Unknown => None,
            KeyRefused::Revoked(k) | KeyRefused::Expired(k) | KeyRefused::Network(k) => Some(k),
        }
    }
}

/// A key to create, as the operator asked for it.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub tenant: TenantId,
    pub name: String,
    pub scopes: Vec<String>,
    /// CIDRs, already checked by the caller.
    pub networks: Vec<String>,
    pub rate_per_minute: u32,
    /// Addresses and `@domain`s (see [`crate::permission::listed_sender`]), checked and
    /// lowercased by the caller.
    pub allowed_from: Vec<String>,
    pub expires_at: Option<i64>,
}

impl Identity {
    /// The key a request presents: known, unrevoked, unexpired, and used from one of its
    /// networks (a listed network that no longer reads admits no one).
    pub async fn api_key(&self, token: &str, ip: IpAddr) -> Result<Result<ApiKey, KeyRefused>, IdentityError> {
        let key = if well_formed(token) { self.store.api_key_by_hash(&hash(token)).await? } else { None };
        let Some(key) = key else { return Ok(Err(KeyRefused::Unknown)) };
        if !key.is_usable(crate::now()) {
            return Ok(Err(if key.revoked_at.is_some() { KeyRefused::Revoked(key) } else { KeyRefused::Expired(key) }));
        }
        let in_network = |n: &String| n.parse::<Network>().is_ok_and(|n| n.contains(ip));
        if !key.networks.is_empty() && !key.networks.iter().any(in_network) {
            return Ok(Err(KeyRefused::Network(key)));
        }
        Ok(Ok(key))
    }

    /// Creates a key and returns its secret (shown once) with the stored key. Names are
    /// unique among a tenant's active keys; scopes must be known ones; the rate and the
    /// expiry must allow some use.
    pub async fn create_api_key(&self, request: KeyRequest) -> Result<(String, ApiKey), IdentityError> {
        let refuse = |text: String| Err(IdentityError::Refused(text));
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return refuse("a key name has 1 to 100 printable characters".into());
        }
        let mut scopes: Vec<String> = Vec::new();
        for s in request.scopes.iter().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
            if !SCOPES.contains(&s.as_str()) {
                return refuse(format!("unknown scope '{s}': use {}", SCOPES.join(", ")));
            }
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        if scopes.is_empty() {
            return refuse(format!("give at least one scope: {}", SCOPES.join(", ")));
        }
        if request.rate_per_minute == 0 {
            return refuse("the rate must be more than zero".into());
        }
        if request.expires_at.is_some_and(|e| e <= crate::now()) {
            return refuse("the expiry is in the past".into());
        }
        let (secret, prefix) = generate().map_err(|_| IdentityError::Random)?;
        let new = NewApiKey {
            tenant: request.tenant,
            name,
            prefix,
            secret_hash: hash(&secret),
            scopes,
            networks: request.networks,
            rate_per_minute: request.rate_per_minute,
            allowed_from: request.allowed_from,
            expires_at: request.expires_at,
        };
        match self.store.create_api_key(new).await {
            Err(StoreError::Conflict(reason)) => refuse(reason),
            other => Ok((secret, other?)),
        }
    }

    /// Every key, oldest first (never their secrets).
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, IdentityError> {
        Ok(self.store.api_keys().await?)
    }

    pub async fn api_key_by_id(&self, id: &str) -> Result<Option<ApiKey>, IdentityError> {
        Ok(self.store.api_key(id).await?)
    }

    /// Revokes a key; it stops working at once. False when it was revoked already.
    pub async fn revoke_api_key(&self, key: &ApiKey) -> Result<bool, IdentityError> {
        Ok(self.store.revoke_api_key(&key.id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_well_formed_and_hashed() {
        let (a, shown) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a) && a.starts_with(&shown) && shown.len() == 12);
        assert!(!well_formed("cpk_short") && !well_formed(&a.replace("cpk_", "xxx_")));
        assert_eq!(hash(&a).len(), 32);
        assert_ne!(hash(&a), hash(&b));
    }

    #[tokio::test]
    async fn keys_are_checked_for_revocation_expiry_and_network() {
        let f = crate::test_support::fixture().await;
        let request = KeyRequest {
            tenant: TenantId::default(),
            name: "lab".into(),
            scopes: vec!["Send".into(), "send".into()],
            networks: vec!["192.0.2.0/24".into()],
            rate_per_minute: 60,
            allowed_from: vec![],
            expires_at: None,
        };
        let (secret, key) = f.identity.create_api_key(request.clone()).await.unwrap();
        assert_eq!(key.scopes, ["send"]);
        assert!(
            matches!(f.identity.create_api_key(request.clone()).await, Err(IdentityError::Refused(_))),
            "a name once"
        );
        let bad = KeyRequest { name: "other".into(), scopes: vec!["root".into()], ..request.clone() };
        assert!(matches!(f.identity.create_api_key(bad).await, Err(IdentityError::Refused(_))));
        let here: IpAddr = "192.0.2.7".parse().unwrap();
        let there: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(f.identity.api_key(&secret, here).await.unwrap(), Ok(key.clone()));
        assert!(matches!(f.identity.api_key(&secret, there).await.unwrap(), Err(KeyRefused::Network(_))));
        assert_eq!(f.identity.api_key("cpk_nope", here).await.unwrap(), Err(KeyRefused::Unknown));
        assert!(f.identity.revoke_api_key(&key).await.unwrap());
        let refused = f.identity.api_key(&secret, here).await.unwrap().unwrap_err();
        assert_eq!(refused.reason(), "revoked");
        assert!(!crate::permission::key_allows(&key, "status"));
        assert!(crate::permission::key_allows(&key, "send"));
    }
}
