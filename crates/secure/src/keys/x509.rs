//! Facts about an X.509 certificate that S/MIME needs: addresses, validity,
//! key type and usage.

use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName, name::GeneralName};

use super::{KeyError, Unusable, from_unix};
use crate::oids;

/// The public-key algorithm of a certificate, as far as S/MIME cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// rsaEncryption: PKCS#1 v1.5 key transport and signatures.
    Rsa,
    /// id-RSAES-OAEP: the key may only be used with RSAES-OAEP (RFC 4055).
    RsaOaep,
    /// id-ecPublicKey on the named curve (dotted OID).
    Ec(String),
    /// Ed25519 (RFC 8410).
    Ed25519,
    /// Anything else (dotted OID).
    Other(String),
}

/// A parsed X.509 certificate and the facts carepost's key directory records.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    der: Vec<u8>,
    certificate: Certificate,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub fingerprint_sha256: String,
    /// rfc822Name subject alternative names and emailAddress subject
    /// attributes, lowercased, without duplicates.
    pub emails: Vec<String>,
    /// Start of the validity period.
    pub not_before: OffsetDateTime,
    /// End of the validity period.
    pub not_after: OffsetDateTime,
    /// The subject public key's algorithm.
    pub key_algorithm: KeyAlgorithm,
    key_usage_flags: Option<der::flagset::FlagSet<KeyUsages>>,
    extended_key_usage: Option<Vec<String>>,
}

impl CertificateInfo {
    /// Parses a certificate given as DER, or as PEM (the first CERTIFICATE block).
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyError> {
        match crate::pem::first_block(bytes, "CERTIFICATE") {
            Some(der) => Self::from_der(&der),
            None => Self::from_der(bytes),
        }
    }

    /// Parses a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let certificate = Certificate::from_der(der).map_err(|e| KeyError::Certificate(e.to_string()))?;
        Self::from_certificate(certificate)
    }

    pub(crate) fn from_certificate(certificate: Certificate) -> Result<Self, KeyError> {
        let der = certificate.to_der().map_err(|e| KeyError::Certificate(e.to_string()))?;
        let tbs = &certificate.tbs_certificate;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        let fingerprint_sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let not_before = from_unix(tbs.validity.not_before.to_unix_duration().as_secs() as i64);
        let not_after = from_unix(tbs.validity.not_after.to_unix_duration().as_secs() as i64);

        let spki_alg = &tbs.subject_public_key_info.algorithm;
        let key_algorithm = match spki_alg.oid {
            oids::RSA_ENCRYPTION => KeyAlgorithm::Rsa,
            oids::RSAES_OAEP => KeyAlgorithm::RsaOaep,
            oids::ED25519 => KeyAlgorithm::Ed25519,
            oids::EC_PUBLIC_KEY => {
                let curve = spki_alg
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                    .map(|oid| oid.to_string())
                    .unwrap_or_default();
                KeyAlgorithm::Ec(curve)
            }
            other => KeyAlgorithm::Other(other.to_string()),
        };

        let mut emails = Vec::new();
        for rdn in tbs.subject.0.iter() {
            for atv in rdn.0.iter() {
                if atv.oid == oids::PKCS9_EMAIL_ADDRESS
                    && let Ok(value) = atv.value.decode_as::<der::asn1::Ia5String>()
                {
                    push_email(&mut emails, value.as_str());
                }
            }
        }
        let mut key_usage_flags = None;
        let mut extended_key_usage = None;
        for ext in tbs.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            match ext.extn_id {
                oids::EXT_SUBJECT_ALT_NAME => {
                    let san = SubjectAltName::from_der(value).map_err(|e| KeyError::Certificate(e.to_string()))?;
                    for name in san.0 {
                        if let GeneralName::Rfc822Name(address) = name {
                            push_email(&mut emails, address.as_str());
                        }
                    }
                }
                oids::EXT_KEY_USAGE => {
                    let usage = KeyUsage::from_der(value).map_err(|e| KeyError::Certificate(e.to_string()))?;
                    key_usage_flags = Some(usage.0);
                }
                oids::EXT_EXTENDED_KEY_USAGE => {
                    let eku = ExtendedKeyUsage::from_der(value).map_err(|e| KeyError::Certificate(e.to_string()))?;
                    extended_key_usage = Some(eku.0.iter().map(|oid| oid.to_string()).collect());
                }
                _ => {}
            }
        }
        Ok(CertificateInfo {
            der,
            certificate,
            fingerprint_sha256,
            emails,
            not_before,
            not_after,
            key_algorithm,
            key_usage_flags,
            extended_key_usage,
        })
    }

    /// The certificate's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub(crate) fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Whether the certificate names `address` (case-insensitive).
    pub fn has_email(&self, address: &str) -> bool {
        let wanted = address.trim().to_lowercase();
        self.emails.contains(&wanted)
    }

    /// Checks the validity period against `now`.
    pub fn check_validity(&self, now: OffsetDateTime) -> Result<(), Unusable> {
        if now < self.not_before {
            return Err(Unusable::NotYetValid(self.not_before));
        }
        if now > self.not_after {
            return Err(Unusable::Expired(self.not_after));
        }
        Ok(())
    }

    /// Whether carepost may encrypt to this certificate at `now`: inside its
    /// validity period, an RSA key (carepost does RSA key transport only),
    /// keyEncipherment allowed where a KeyUsage extension is present, and
    /// e-mail protection allowed where an ExtendedKeyUsage extension is present
    /// (RFC 8550 §4.4).
    ///
    /// Revocation of X.509 certificates (CRL/OCSP) is not checked here.
    pub fn usable_for_encryption(&self, now: OffsetDateTime) -> Result<(), Unusable> {
        self.check_validity(now)?;
        match &self.key_algorithm {
            KeyAlgorithm::Rsa | KeyAlgorithm::RsaOaep => {}
            KeyAlgorithm::Ec(curve) => {
                return Err(Unusable::UnsupportedAlgorithm(format!("EC key agreement ({curve})")));
            }
            KeyAlgorithm::Ed25519 => {
                return Err(Unusable::UnsupportedAlgorithm("Ed25519 cannot encrypt".into()));
            }
            KeyAlgorithm::Other(oid) => return Err(Unusable::UnsupportedAlgorithm(oid.clone())),
        }
        if let Some(flags) = self.key_usage_flags
            && !flags.contains(KeyUsages::KeyEncipherment)
        {
            return Err(Unusable::NoKeyEncipherment);
        }
        self.check_email_eku()
    }

    /// Whether the certificate may sign e-mail at `now`: inside its validity
    /// period, digitalSignature or nonRepudiation allowed where KeyUsage is
    /// present, e-mail protection allowed where ExtendedKeyUsage is present.
    pub fn usable_for_signing(&self, now: OffsetDateTime) -> Result<(), Unusable> {
        self.check_validity(now)?;
        if let Some(flags) = self.key_usage_flags
            && !flags.contains(KeyUsages::DigitalSignature)
            && !flags.contains(KeyUsages::NonRepudiation)
        {
            return Err(Unusable::NotForSigning);
        }
        self.check_email_eku()
    }

    fn check_email_eku(&self) -> Result<(), Unusable> {
        if let Some(purposes) = &self.extended_key_usage {
            let email = oids::EKU_EMAIL_PROTECTION.to_string();
            let any = oids::EKU_ANY.to_string();
            if !purposes.iter().any(|p| *p == email || *p == any) {
                return Err(Unusable::NotForEmail);
            }
        }
        Ok(())
    }
}

fn push_email(emails: &mut Vec<String>, raw: &str) {
    let address = raw.trim().to_lowercase();
    if address.contains('@') && !emails.contains(&address) {
        emails.push(address);
    }
}
