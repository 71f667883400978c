//! PGP/MIME (RFC 3156) encryption of outgoing messages with rPGP, optionally
//! signed inside the encryption (one-pass signature, RFC 3156 §6.2).
//!
//! The encrypted container is SEIPD v1 with AES-256 (RFC 9580 §5.13.1):
//! every OpenPGP implementation in use, GnuPG 2.2 included, reads it, which
//! is not yet true of SEIPD v2.

use pgp::composed::{ArmorOptions, Deserializable, MessageBuilder, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::{KeyDetails, Password, SigningKey};
use time::OffsetDateTime;

use crate::keys::{EncryptionTarget, OpenPgpKey, SigningComponent, Unusable};
use crate::mime::{new_boundary, to_crlf};

/// Why PGP/MIME packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PgpMimeError {
    /// `encrypt` was given no recipient.
    #[error("no recipient key given")]
    NoRecipients,
    /// A recipient key may not be used now (expired, revoked, no encryption subkey...).
    #[error("recipient key {fingerprint} is unusable: {reason}")]
    RecipientUnusable {
        /// Primary key fingerprint.
        fingerprint: String,
        /// Why it is unusable.
        reason: Unusable,
    },
    /// The signing key could not be read or has no usable signing component.
    #[error("signing key: {0}")]
    SigningKey(String),
    /// rPGP failed to build the message.
    #[error("OpenPGP: {0}")]
    OpenPgp(#[from] pgp::errors::Error),
    /// The random generator failed.
    #[error("random generator failed")]
    Random,
}

/// Result of the PGP/MIME functions.
pub type Result<T> = std::result::Result<T, PgpMimeError>;

/// A secret key that signs carepost's PGP/MIME messages.
pub struct PgpSigner {
    key: SignedSecretKey,
    passphrase: String,
    /// Which component signs: `None` for the primary key, else a secret subkey index.
    component: Option<usize>,
}

impl std::fmt::Debug for PgpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgpSigner")
            .field("fingerprint", &format!("{:X}", self.key.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl PgpSigner {
    /// Reads a transferable secret key (armored or binary) and picks its
    /// signing component: the primary key if it is flagged for signing, else
    /// the newest validly bound signing subkey. `passphrase` unlocks a
    /// protected key ("" for none).
    ///
    /// RSA signing keys are refused: rPGP signs RSA with the `rsa` crate,
    /// whose private-key operations leak timing (RUSTSEC-2023-0071).
    pub fn parse(bytes: &[u8], passphrase: &str) -> Result<Self> {
        let (key, _) =
            SignedSecretKey::from_reader_single(bytes).map_err(|e| PgpMimeError::SigningKey(e.to_string()))?;
        // Self-signatures are judged on the public half, like any other key.
        let public = OpenPgpKey::from_signed(key.to_public_key());
        let component = match public.signing_component(OffsetDateTime::now_utc()) {
            Ok(SigningComponent::Primary) => None,
            Ok(SigningComponent::Subkey(fingerprint)) => {
                let index = key.secret_subkeys.iter().position(|s| s.key.fingerprint() == fingerprint);
                Some(index.ok_or_else(|| PgpMimeError::SigningKey("signing subkey has no secret part".into()))?)
            }
            Err(reason) => return Err(PgpMimeError::SigningKey(reason.to_string())),
        };
        let signer = PgpSigner { key, passphrase: passphrase.to_string(), component };
        let algorithm = signer.signing_key().algorithm();
        if matches!(algorithm, PublicKeyAlgorithm::RSA | PublicKeyAlgorithm::RSASign | PublicKeyAlgorithm::RSAEncrypt) {
            return Err(PgpMimeError::SigningKey("RSA signing keys are not supported; use Ed25519 or ECDSA".into()));
        }
        Ok(signer)
    }

    /// The primary key fingerprint, uppercase hex.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.key.fingerprint())
    }

    fn signing_key(&self) -> &dyn SigningKey {
        match self.component {
            None => &self.key.primary_key,
            Some(index) => &self.key.secret_subkeys[index].key,
        }
    }
}

/// Encrypts a MIME entity to the recipients' keys, signing it first when a
/// signer is given, and returns the `multipart/encrypted` entity (RFC 3156
/// §4) that replaces it, with CRLF line endings.
///
/// Each recipient's newest valid encryption subkey is used; a recipient
/// whose key is expired, revoked or has no such subkey fails the whole call.
pub fn encrypt(entity: &[u8], recipients: &[OpenPgpKey], signer: Option<&PgpSigner>) -> Result<Vec<u8>> {
    encrypt_at(entity, recipients, signer, OffsetDateTime::now_utc())
}

/// [`encrypt`] with key validity judged at `now`.
pub fn encrypt_at(
    entity: &[u8],
    recipients: &[OpenPgpKey],
    signer: Option<&PgpSigner>,
    now: OffsetDateTime,
) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(PgpMimeError::NoRecipients);
    }
    let targets = recipients
        .iter()
        .map(|r| {
            r.encryption_target(now)
                .map_err(|reason| PgpMimeError::RecipientUnusable { fingerprint: r.fingerprint.clone(), reason })
        })
        .collect::<Result<Vec<_>>>()?;

    let content = to_crlf(entity);
    let mut rng = rand::thread_rng();
    let mut builder = MessageBuilder::from_bytes("", content).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
    for target in &targets {
        match target {
            EncryptionTarget::Primary(key) => builder.encrypt_to_key(&mut rng, *key)?,
            EncryptionTarget::Subkey(subkey) => builder.encrypt_to_key(&mut rng, *subkey)?,
        };
    }
    if let Some(signer) = signer {
        builder.sign(signer.signing_key(), Password::from(signer.passphrase.as_str()), HashAlgorithm::Sha256);
    }
    let armored = builder.to_armored_string(&mut rng, ArmorOptions::default())?;

    let boundary = new_boundary().map_err(|_| PgpMimeError::Random)?;
    let mut out = format!(
        "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"{boundary}\"\r\n\
         \r\n\
         This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n\
         --{boundary}\r\n\
         Content-Type: application/pgp-encrypted\r\n\
         Content-Description: PGP/MIME version identification\r\n\
         \r\n\
         Version: 1\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
         Content-Description: OpenPGP encrypted message\r\n\
         Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\
         \r\n"
    )
    .into_bytes();
    out.extend_from_slice(&to_crlf(armored.as_bytes()));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(out)
}
