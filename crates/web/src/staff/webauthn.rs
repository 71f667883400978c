//! WebAuthn security keys (webauthn-rs): the relying party, the ceremony a session is in the
//! middle of, and sealing a registered key under the account's data key.
//!
//! The browser side is `/static/webauthn.js`: it asks a `start` endpoint for options, calls
//! `navigator.credentials`, and posts the result as a form field to the `finish` endpoint,
//! so the same CSRF check as every other form applies.

use aws_lc_rs::digest;
use carepost_vault::DataKey;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Url, Uuid};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::error::WebError;

/// The relying party for `public_url`: its host is the RP id, the URL the only origin.
/// WebAuthn has no relying party on an IP address, so a portal reached by address offers
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
pub enum Ceremony {
    Register { name: String, state: SecurityKeyRegistration },
    Authenticate(SecurityKeyAuthentication),
}

impl Ceremony {
    pub fn to_json(&self) -> Result<String, WebError> {
        serde_json::to_string(self).map_err(WebError::internal)
    }

    pub fn from_json(text: &str) -> Option<Ceremony> {
        serde_json::from_str(text).ok()
    }
}

/// The WebAuthn user handle of an account: stable, and derived so it reveals nothing more
/// than the account id it comes from.
pub fn user_handle(account_id: &str) -> Uuid {
    let d = digest::digest(&digest::SHA256, format!("carepost-staff-user\0{account_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d.as_ref()[..16]);
    Uuid::from_bytes(bytes)
}

pub fn seal(key: &DataKey, credential: &SecurityKey) -> Result<Vec<u8>, WebError> {
    let json = serde_json::to_vec(credential).map_err(WebError::internal)?;
    key.seal_field("security-key", &json).map_err(WebError::internal)
}

pub fn open(key: &DataKey, sealed: &[u8]) -> Result<SecurityKey, WebError> {
    let json = key.open_field("security-key", sealed).map_err(WebError::internal)?;
    serde_json::from_slice(&json).map_err(WebError::internal)
}
