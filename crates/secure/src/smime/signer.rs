//! The organization's signing identity: certificate, intermediates to send
//! along, and a private key held by aws-lc-rs (RSA PKCS#1 v1.5 or ECDSA).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use der::asn1::{Any, Null, ObjectIdentifier};
use spki::AlgorithmIdentifierOwned;

use super::{Result, SmimeError};
use crate::keys::{CertificateInfo, KeyAlgorithm};
use crate::oids;
use crate::pem::first_block as pem_block;

/// The private key behind a signing certificate.
enum SigningKey {
    /// RSA, signing with PKCS#1 v1.5 and SHA-256.
    Rsa(RsaKeyPair),
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256(EcdsaKeyPair),
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384(EcdsaKeyPair),
}

/// Who signs carepost's S/MIME messages: a certificate, its private key, and
/// any intermediate certificates recipients need to build a chain.
pub struct SignerIdentity {
    certificate: CertificateInfo,
    intermediates: Vec<CertificateInfo>,
    key: SigningKey,
}

impl std::fmt::Debug for SignerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is deliberately left out.
        f.debug_struct("SignerIdentity")
            .field("certificate", &self.certificate.fingerprint_sha256)
            .field("intermediates", &self.intermediates.len())
            .finish_non_exhaustive()
    }
}

impl SignerIdentity {
    /// Loads a certificate (PEM or DER) and its private key: PKCS#8 as PEM
    /// (`PRIVATE KEY`) or DER, or PKCS#1 `RSA PRIVATE KEY` PEM. The key must
    /// match the certificate's public key.
    pub fn from_pem_or_der(certificate: &[u8], private_key: &[u8]) -> Result<Self> {
        let certificate = CertificateInfo::parse(certificate)?;
        let key = load_key(private_key, &certificate)?;
        let public_key = match &key {
            SigningKey::Rsa(k) => k.public_key().as_ref().to_vec(),
            SigningKey::EcdsaP256(k) | SigningKey::EcdsaP384(k) => k.public_key().as_ref().to_vec(),
        };
        let cert_key = certificate.certificate().tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
        if public_key != cert_key {
            return Err(SmimeError::SigningKey("private key does not match the certificate".into()));
        }
        Ok(SignerIdentity { certificate, intermediates: Vec::new(), key })
    }

    /// Adds intermediate CA certificates (PEM or DER each) to send with signatures.
    pub fn with_intermediates(mut self, intermediates: &[&[u8]]) -> Result<Self> {
        for der in intermediates {
            self.intermediates.push(CertificateInfo::parse(der)?);
        }
        Ok(self)
    }

    /// The signing certificate.
    pub fn certificate(&self) -> &CertificateInfo {
        &self.certificate
    }

    pub(crate) fn intermediates(&self) -> &[CertificateInfo] {
        &self.intermediates
    }

    /// The digest used with this key (SHA-384 for P-384, SHA-256 otherwise)
    /// and its name in the multipart/signed `micalg` parameter.
    pub(crate) fn digest(&self) -> (ObjectIdentifier, &'static aws_lc_rs::digest::Algorithm, &'static str) {
        match self.key {
            SigningKey::EcdsaP384(_) => (oids::SHA384, &aws_lc_rs::digest::SHA384, "sha-384"),
            _ => (oids::SHA256, &aws_lc_rs::digest::SHA256, "sha-256"),
        }
    }

    /// The SignerInfo signatureAlgorithm. For RSA this is rsaEncryption, as
    /// OpenSSL and most S/MIME clients write it (RFC 3370 §3.2).
    pub(crate) fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        match self.key {
            SigningKey::Rsa(_) => {
                AlgorithmIdentifierOwned { oid: oids::RSA_ENCRYPTION, parameters: Some(Any::from(Null)) }
            }
            SigningKey::EcdsaP256(_) => AlgorithmIdentifierOwned { oid: oids::ECDSA_WITH_SHA256, parameters: None },
            SigningKey::EcdsaP384(_) => AlgorithmIdentifierOwned { oid: oids::ECDSA_WITH_SHA384, parameters: None },
        }
    }

    /// Signs `message` (the DER of the signed attributes).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Rsa(key) => {
                let mut signature = vec![0u8; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)?;
                Ok(signature)
            }
            SigningKey::EcdsaP256(key) | SigningKey::EcdsaP384(key) => Ok(key.sign(&rng, message)?.as_ref().to_vec()),
        }
    }
}

fn load_key(input: &[u8], certificate: &CertificateInfo) -> Result<SigningKey> {
    let (der, pkcs1) = if let Some(der) = pem_block(input, "PRIVATE KEY") {
        (der, false)
    } else if let Some(der) = pem_block(input, "RSA PRIVATE KEY") {
        (der, true)
    } else {
        (input.to_vec(), false)
    };
    let rejected = |e: aws_lc_rs::error::KeyRejected| SmimeError::SigningKey(e.to_string());
    match &certificate.key_algorithm {
        KeyAlgorithm::Rsa => {
            let key = if pkcs1 { RsaKeyPair::from_der(&der) } else { RsaKeyPair::from_pkcs8(&der) };
            Ok(SigningKey::Rsa(key.map_err(rejected)?))
        }
        KeyAlgorithm::Ec(curve) if *curve == oids::SECP256R1.to_string() => Ok(SigningKey::EcdsaP256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der).map_err(rejected)?,
        )),
        KeyAlgorithm::Ec(curve) if *curve == oids::SECP384R1.to_string() => Ok(SigningKey::EcdsaP384(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &der).map_err(rejected)?,
        )),
        other => Err(SmimeError::UnsupportedAlgorithm(format!("signing with {other:?}"))),
    }
}
