//! S/MIME 4.0 (RFC 8551) for carepost: encrypting outgoing messages to
//! recipients' certificates, signing them with the organization's
//! certificate, and verifying inbound signatures so that senders'
//! certificates can be learned.
//!
//! Only the CMS structures come from the `cms` crate; every cryptographic
//! operation (AES, RSA, ECDSA, digests) runs in aws-lc-rs.

mod asn1;
mod ber;
mod capabilities;
mod encrypt;
mod recipient;
mod sign;
mod signer;
mod verify;

pub use ber::BerError;
pub use capabilities::SmimeCapabilities;
pub use encrypt::{ContentEncryption, choose_content_encryption, encrypt, encrypt_at};
pub use recipient::RecipientCert;
pub use sign::{sign, sign_and_encrypt, sign_at};
pub use signer::SignerIdentity;
pub use verify::{ChainStatus, TrustAnchor, VerifiedSigner, verify, verify_at};

use crate::keys::{KeyError, Unusable};

/// Why S/MIME packaging or verification failed.
#[derive(Debug, thiserror::Error)]
pub enum SmimeError {
    /// `encrypt` was given no recipient.
    #[error("no recipient certificate given")]
    NoRecipients,
    /// A recipient's certificate may not be used now (expired, revoked, wrong usage...).
    #[error("recipient certificate {fingerprint} is unusable: {reason}")]
    RecipientUnusable {
        /// SHA-256 fingerprint of the certificate.
        fingerprint: String,
        /// Why it is unusable.
        reason: Unusable,
    },
    /// The signer's certificate may not be used to sign now.
    #[error("signer certificate is unusable: {0}")]
    SignerUnusable(Unusable),
    /// A certificate could not be parsed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A recipient's RSA public key was rejected by the crypto library (too small, malformed).
    #[error("recipient RSA public key rejected: {0}")]
    BadRecipientKey(String),
    /// The signing key could not be loaded or does not match the certificate.
    #[error("signing key: {0}")]
    SigningKey(String),
    /// An algorithm or parameter set carepost does not implement.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A primitive failed (random generator, cipher); not caused by input.
    #[error("cryptographic operation failed")]
    Crypto,
    /// DER encoding or decoding failed.
    #[error("ASN.1: {0}")]
    Asn1(#[from] der::Error),
    /// The message is not an S/MIME signed message, or its MIME structure is broken.
    #[error("not an S/MIME signed message: {0}")]
    NotSigned(String),
    /// The CMS bytes are not valid BER.
    #[error(transparent)]
    Ber(#[from] BerError),
    /// The CMS structure is inconsistent.
    #[error("malformed CMS: {0}")]
    Malformed(String),
    /// The signer's certificate is not among those in the message.
    #[error("signer certificate not included in the message")]
    SignerCertificateMissing,
    /// The content does not match the digest that was signed.
    #[error("content does not match the signed digest")]
    DigestMismatch,
    /// The signature does not verify with the signer's public key.
    #[error("signature does not verify")]
    BadSignature,
    /// Chain validation to the given trust anchors failed.
    #[error("certificate chain not trusted: {0}")]
    Untrusted(String),
}

impl From<aws_lc_rs::error::Unspecified> for SmimeError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        SmimeError::Crypto
    }
}

/// Result of the S/MIME functions.
pub type Result<T> = std::result::Result<T, SmimeError>;

/// Wraps base64 CMS bytes in an `application/pkcs7-mime` entity (RFC 8551 §3.2).
fn pkcs7_mime_entity(smime_type: &str, der: &[u8]) -> Vec<u8> {
    let mut entity = format!(
        "Content-Type: application/pkcs7-mime; smime-type={smime_type};\r\n name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=smime.p7m\r\n\
         \r\n"
    )
    .into_bytes();
    entity.extend_from_slice(crate::mime::base64_lines(der).as_bytes());
    entity
}
