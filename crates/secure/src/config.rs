//! `[secure]`: the organization's signing identities and how recipient keys are found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::openpgp::PgpSigner;
use crate::smime::{SignerIdentity, TrustAnchor};

/// The `[secure]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecureConfig {
    /// PEM certificate (chain) the organization signs S/MIME mail with; empty: S/MIME mail is
    /// encrypted but not signed.
    pub smime_certificate: PathBuf,
    /// PKCS#8 PEM private key of `smime_certificate` (RSA or ECDSA P-256), mode 0600.
    pub smime_key: PathBuf,
    /// An unprotected OpenPGP secret key (Ed25519) PGP/MIME mail is signed with; empty: not
    /// signed.
    pub pgp_signing_key: PathBuf,
    /// Look OpenPGP keys of recipients up through WKD (cached for a day).
    pub wkd: bool,
    /// Learn S/MIME certificates from validly signed inbound mail whose author domain the MX
    /// proved (DKIM aligned with From, DMARC pass).
    pub learn_certificates: bool,
    /// PEM roots a learned certificate must chain to; empty: a learned certificate is not
    /// used until an operator confirms it (`carepost keys confirm`).
    pub trust_anchors: PathBuf,
    /// Who is told when a learned certificate differs from the key known for its address and
    /// is held for review; unset: `policy.compliance_address`, else postmaster at `hostname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_review_address: Option<carepost_model::Address>,
}

impl Default for SecureConfig {
    fn default() -> Self {
        SecureConfig {
            smime_certificate: PathBuf::new(),
            smime_key: PathBuf::new(),
            pgp_signing_key: PathBuf::new(),
            wkd: true,
            learn_certificates: true,
            trust_anchors: PathBuf::new(),
            key_review_address: None,
        }
    }
}

/// Why the `[secure]` files could not be used, naming the key and file.
#[derive(Debug, thiserror::Error)]
#[error("secure.{key}: {path}: {reason}")]
pub struct SecureConfigError {
    /// The configuration key.
    pub key: &'static str,
    /// The file it names.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The organization's signing identities, loaded once at start.
#[derive(Default)]
pub struct OrganizationSigners {
    /// Signs S/MIME mail.
    pub smime: Option<SignerIdentity>,
    /// Signs PGP/MIME mail.
    pub pgp: Option<PgpSigner>,
}

impl std::fmt::Debug for OrganizationSigners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OrganizationSigners(smime: {}, pgp: {})", self.smime.is_some(), self.pgp.is_some())
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, SecureConfigError> {
    std::fs::read(path).map_err(|e| SecureConfigError { key, path: path.display().to_string(), reason: e.to_string() })
}

impl SecureConfig {
    /// Loads the signing identities; `resolve` turns relative paths into data-directory paths.
    pub fn signers(&self, resolve: impl Fn(&Path) -> PathBuf) -> Result<OrganizationSigners, SecureConfigError> {
        let mut signers = OrganizationSigners::default();
        match (self.smime_certificate.as_os_str().is_empty(), self.smime_key.as_os_str().is_empty()) {
            (true, true) => {}
            (false, false) => {
                let cert_path = resolve(&self.smime_certificate);
                let key_path = resolve(&self.smime_key);
                let cert = read("smime_certificate", &cert_path)?;
                let key = read("smime_key", &key_path)?;
                signers.smime = Some(SignerIdentity::from_pem_or_der(&cert, &key).map_err(|e| SecureConfigError {
                    key: "smime_key",
                    path: key_path.display().to_string(),
                    reason: e.to_string(),
                })?);
            }
            _ => {
                return Err(SecureConfigError {
                    key: "smime_certificate",
                    path: self.smime_certificate.display().to_string(),
                    reason: "smime_certificate and smime_key go together".into(),
                });
            }
        }
        if !self.pgp_signing_key.as_os_str().is_empty() {
            let path = resolve(&self.pgp_signing_key);
            let bytes = read("pgp_signing_key", &path)?;
            signers.pgp = Some(PgpSigner::parse(&bytes, "").map_err(|e| SecureConfigError {
                key: "pgp_signing_key",
                path: path.display().to_string(),
                reason: e.to_string(),
            })?);
        }
        Ok(signers)
    }

    /// The roots learned certificates must chain to (none: trust on first use).
    pub fn anchors(&self, resolve: impl Fn(&Path) -> PathBuf) -> Result<Vec<TrustAnchor>, SecureConfigError> {
        if self.trust_anchors.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        let path = resolve(&self.trust_anchors);
        let pem = read("trust_anchors", &path)?;
        TrustAnchor::parse_pem_bundle(&pem).map_err(|e| SecureConfigError {
            key: "trust_anchors",
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}
