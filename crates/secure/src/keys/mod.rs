//! Recipient and sender keys: X.509 certificates for S/MIME and OpenPGP
//! public keys, with the facts the key directory records about them and the
//! one question the policy stage asks: may carepost encrypt to this key now?

mod openpgp;
mod x509;

pub(crate) use openpgp::{EncryptionTarget, SigningComponent};
pub use openpgp::{OpenPgpKey, PgpRevocation};
pub use x509::{CertificateInfo, KeyAlgorithm};

use time::OffsetDateTime;

/// Why a key or certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not a DER or PEM X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    Certificate(String),
    /// The bytes are not an OpenPGP transferable public key.
    #[error("not an OpenPGP public key: {0}")]
    OpenPgp(String),
    /// The input held no key at all.
    #[error("no key found in the input")]
    Empty,
}

/// Why carepost refuses to encrypt to a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// Its validity period has ended.
    #[error("expired at {0}")]
    Expired(OffsetDateTime),
    /// Its validity period has not started yet.
    #[error("not valid before {0}")]
    NotYetValid(OffsetDateTime),
    /// Its owner revoked it.
    #[error("revoked{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Revoked(Option<String>),
    /// The certificate's KeyUsage extension does not allow key encipherment.
    #[error("key usage does not allow key encipherment")]
    NoKeyEncipherment,
    /// The certificate's KeyUsage extension allows neither digitalSignature nor nonRepudiation.
    #[error("key usage does not allow signing")]
    NotForSigning,
    /// The certificate's ExtendedKeyUsage extension excludes e-mail protection.
    #[error("extended key usage does not include e-mail protection")]
    NotForEmail,
    /// The key's algorithm is one carepost cannot encrypt to.
    #[error("unsupported key algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The OpenPGP key has no valid, unexpired, unrevoked encryption-capable (sub)key.
    #[error("no valid encryption-capable key")]
    NoEncryptionKey,
    /// The OpenPGP key has no valid, unexpired, unrevoked signing-capable (sub)key.
    #[error("no valid signing-capable key")]
    NoSigningKey,
    /// The OpenPGP key has no user id with a valid self-certification.
    #[error("no validly self-certified user id")]
    NoValidUserId,
}

/// Converts seconds since the Unix epoch into a timestamp, saturating at the
/// ends of `time`'s range rather than failing on absurd input.
pub(crate) fn from_unix(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(if secs < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        // 9999-12-31T23:59:59Z, the largest GeneralizedTime X.509 uses.
        OffsetDateTime::from_unix_timestamp(253_402_300_799).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    })
}

/// Extracts an e-mail address from a user id or name (`Name <addr>` or a bare
/// address), lowercased. Returns `None` when the text holds no address.
pub(crate) fn email_in(text: &str) -> Option<String> {
    let candidate = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    };
    let candidate = candidate.trim();
    let (local, domain) = candidate.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || candidate.contains(char::is_whitespace) {
        return None;
    }
    Some(candidate.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::email_in;

    #[test]
    fn email_is_found_in_user_ids() {
        assert_eq!(email_in("Dr. Who <Who@Example.ORG>"), Some("who@example.org".into()));
        assert_eq!(email_in("who@example.org"), Some("who@example.org".into()));
        assert_eq!(email_in("No Address"), None);
        assert_eq!(email_in("<@example.org>"), None);
    }
}
