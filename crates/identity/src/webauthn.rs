//! WebAuthn security keys (webauthn-rs) as a second factor of staff accounts: the relying
//! party, the ceremony a session is in the middle of (kept in the session row), registering
//! a key, and signing in with one. Registered keys are sealed under the account's data key.
//!
//! The browser side is the web door's business: it asks for a challenge, calls
//! `navigator.credentials`, and hands the browser's answer (JSON) back here.

use std::net::IpAddr;

use aws_lc_rs::digest;
use carepost_model::Id;
use carepost_store::StoreError;
use carepost_store::staff::SecurityKeyRow;
use carepost_vault::DataKey;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration,
    Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::{Account, AccountRef, Identity, IdentityError, Kind, SecondStep, Session};

pub use webauthn_rs::Webauthn as RelyingParty;

/// The relying party for `public_url`: its host is the RP id, the URL the only origin.
/// WebAuthn has no relying party on an IP address, so a site reached by address offers
/// TOTP only.
pub fn relying_party(public_url: &str, organization: &str) -> Option<Webauthn> {
    let origin = Url::parse(public_url).ok()?;
    let host = origin.host_str()?.to_owned();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        tracing::info!("security keys are off: web.public_url names an IP address, and WebAuthn needs a host name");
        return None;
    }
    let name = if organization.is_empty() { "carepost" } else { organization };
    match WebauthnBuilder::new(&host, &origin).and_then(|b| b.rp_name(name).build()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "security keys are off: no WebAuthn relying party for web.public_url");
            None
        }
    }
}

/// A ceremony between its `start` and `finish` requests, kept in the session row.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
enum Ceremony {
    Register { name: String, state: SecurityKeyRegistration },
    Authenticate(SecurityKeyAuthentication),
}

impl Ceremony {
    fn to_json(&self) -> Result<String, IdentityError> {
        serde_json::to_string(self).map_err(|e| IdentityError::SecurityKey(e.to_string()))
    }

    fn from_json(text: &str) -> Option<Ceremony> {
        serde_json::from_str(text).ok()
    }
}

/// The WebAuthn user handle of an account: stable, and derived so it reveals nothing more
/// than the account id it comes from.
fn user_handle(account_id: &str) -> Uuid {
    let d = digest::digest(&digest::SHA256, format!("carepost-staff-user\0{account_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d.as_ref()[..16]);
    Uuid::from_bytes(bytes)
}

fn seal(key: &DataKey, credential: &SecurityKey) -> Result<Vec<u8>, IdentityError> {
    let json = serde_json::to_vec(credential).map_err(|e| IdentityError::SecurityKey(e.to_string()))?;
    Ok(key.seal_field("security-key", &json)?)
}

fn open(key: &DataKey, sealed: &[u8]) -> Result<SecurityKey, IdentityError> {
    let json = key.open_field("security-key", sealed)?;
    serde_json::from_slice(&json).map_err(|e| IdentityError::Corrupt(format!("a security key: {e}")))
}

/// What registering a security key came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Kept under `name`.
    Added { name: String },
    /// The browser's answer matched no registration this session started.
    NoCeremony,
    /// The key's attestation did not verify (the reason is for the audit log).
    Refused { reason: String },
    /// This key is registered already (to this or another account).
    Duplicate,
}

/// What the security-key step of a sign-in came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStep {
    Step(SecondStep),
    /// The browser's answer matched no challenge this session started.
    NoCeremony,
    /// Verified but refused: the reason, for the audit log, and the step's outcome.
    Refused {
        reason: String,
        step: SecondStep,
    },
    /// Signed in with the key named `key`.
    Passed {
        key: String,
        step: SecondStep,
    },
}

impl Identity {
    /// The account's security keys: `(name, registered at)`.
    pub async fn security_keys(&self, account: &Account) -> Result<Vec<(String, i64)>, IdentityError> {
        let rows = self.store.staff_security_keys(&account.id).await?;
        Ok(rows.into_iter().map(|k| (k.name, k.created_at)).collect())
    }

    /// The options for registering a new key named `name` (at most 60 printable
    /// characters), as JSON for `navigator.credentials.create`.
    pub async fn start_key_registration(
        &self,
        rp: &Webauthn,
        session: &Session,
        account: &Account,
        name: &str,
    ) -> Result<serde_json::Value, IdentityError> {
        let name: String = name.trim().chars().filter(|c| !c.is_control()).take(60).collect();
        let name = if name.is_empty() { "Security key".to_owned() } else { name };
        let existing = self.store.staff_security_keys(&account.id).await?;
        let exclude = existing.into_iter().map(|k| k.credential_id).collect::<Vec<_>>();
        let (options, registration) = rp
            .start_securitykey_registration(
                user_handle(&account.id),
                &account.login,
                &account.login,
                Some(exclude),
                None,
                None,
            )
            .map_err(|e| IdentityError::SecurityKey(e.to_string()))?;
        self.set_ceremony(session, Some(Ceremony::Register { name, state: registration }.to_json()?)).await?;
        serde_json::to_value(options).map_err(|e| IdentityError::SecurityKey(e.to_string()))
    }

    /// Verifies a new key's attestation (`credential`, the browser's JSON) and keeps its
    /// credential, sealed. A ceremony is used once.
    pub async fn finish_key_registration(
        &self,
        rp: &Webauthn,
        session: &Session,
        account: &Account,
        credential: &str,
    ) -> Result<Registered, IdentityError> {
        self.set_ceremony(session, None).await?;
        let ceremony = session.ceremony.as_deref().and_then(Ceremony::from_json);
        let credential = serde_json::from_str::<RegisterPublicKeyCredential>(credential);
        let (Some(Ceremony::Register { name, state }), Ok(credential)) = (ceremony, credential) else {
            return Ok(Registered::NoCeremony);
        };
        let security_key = match rp.finish_securitykey_registration(&credential, &state) {
            Ok(k) => k,
            Err(e) => return Ok(Registered::Refused { reason: e.to_string() }),
        };
        let key = self.account_key(Kind::Staff, &account.tenant, &account.id).await?;
        let row = SecurityKeyRow {
            id: Id::new().to_string(),
            name: name.clone(),
            credential_id: AsRef::<[u8]>::as_ref(security_key.cred_id()).to_vec(),
            credential: seal(&key, &security_key)?,
            created_at: crate::now(),
            last_used_at: None,
        };
        match self.store.add_staff_security_key(&account.id, row).await {
            Err(StoreError::Conflict(_)) => Ok(Registered::Duplicate),
            other => other.map(|()| Registered::Added { name }).map_err(Into::into),
        }
    }

    /// The challenge for the account's security keys, as JSON for `navigator.credentials.get`;
    /// `None` when the account has none.
    pub async fn start_key_sign_in(
        &self,
        rp: &Webauthn,
        session: &Session,
        account: &Account,
    ) -> Result<Option<serde_json::Value>, IdentityError> {
        let key = self.account_key(Kind::Staff, &account.tenant, &account.id).await?;
        let rows = self.store.staff_security_keys(&account.id).await?;
        let keys = rows.iter().map(|r| open(&key, &r.credential)).collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Ok(None);
        }
        let (challenge, state) =
            rp.start_securitykey_authentication(&keys).map_err(|e| IdentityError::SecurityKey(e.to_string()))?;
        self.set_ceremony(session, Some(Ceremony::Authenticate(state).to_json()?)).await?;
        Ok(Some(serde_json::to_value(challenge).map_err(|e| IdentityError::SecurityKey(e.to_string()))?))
    }

    /// The key's signature over the challenge, verified against the registered public key;
    /// a pass completes the sign-in like an authenticator code does. A ceremony is used once.
    pub async fn finish_key_sign_in(
        &self,
        rp: &Webauthn,
        session: &Session,
        account: &Account,
        credential: &str,
        ip: IpAddr,
    ) -> Result<KeyStep, IdentityError> {
        if self.key_step_locked(session).await? {
            return Ok(KeyStep::Step(SecondStep::Locked));
        }
        self.set_ceremony(session, None).await?;
        let ceremony = session.ceremony.as_deref().and_then(Ceremony::from_json);
        let credential = serde_json::from_str::<PublicKeyCredential>(credential);
        let (Some(Ceremony::Authenticate(state)), Ok(credential)) = (ceremony, credential) else {
            return Ok(KeyStep::NoCeremony);
        };
        let who = AccountRef::staff(account);
        let result = match rp.finish_securitykey_authentication(&credential, &state) {
            Ok(r) => r,
            Err(e) => {
                let step = self.second_step(&who, session, false, ip).await?;
                return Ok(KeyStep::Refused { reason: e.to_string(), step });
            }
        };
        // Keep the key's new signature counter, so a cloned key shows up.
        let key = self.account_key(Kind::Staff, &account.tenant, &account.id).await?;
        let mut used = String::new();
        for row in self.store.staff_security_keys(&account.id).await? {
            let mut sk = open(&key, &row.credential)?;
            if sk.cred_id() == result.cred_id() {
                sk.update_credential(&result);
                self.store.used_staff_security_key(&row.id, seal(&key, &sk)?, crate::now()).await?;
                used = row.name;
            }
        }
        let step = self.second_step(&who, session, true, ip).await?;
        Ok(KeyStep::Passed { key: used, step })
    }
}
