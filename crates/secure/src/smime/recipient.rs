//! A recipient's certificate and RSA key transport of the content-encryption
//! key to it (RFC 8551 §2.3: RSA PKCS#1 v1.5 or RSAES-OAEP).

use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512, OaepAlgorithm,
    OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey,
};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo};
use der::asn1::{Any, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::asn1::RsaesOaepParams;
use super::{Result, SmimeCapabilities, SmimeError};
use crate::keys::{CertificateInfo, KeyAlgorithm, KeyError};
use crate::oids;

/// A recipient certificate as the key directory hands it to [`super::encrypt`].
#[derive(Debug, Clone)]
pub struct RecipientCert {
    info: CertificateInfo,
    /// Whether the recipient is known to read AuthEnvelopedData with
    /// AES-256-GCM, e.g. because its signed mail advertised it in
    /// SMIMECapabilities. Unknown means no: EnvelopedData with AES-256-CBC is
    /// what every S/MIME client reads.
    pub supports_auth_enveloped: bool,
}

impl RecipientCert {
    /// Parses a PEM or DER certificate; AES-256-GCM support is assumed absent.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, KeyError> {
        Ok(Self::from_info(CertificateInfo::parse(bytes)?))
    }

    /// Wraps an already parsed certificate; AES-256-GCM support is assumed absent.
    pub fn from_info(info: CertificateInfo) -> Self {
        RecipientCert { info, supports_auth_enveloped: false }
    }

    /// Records whether the recipient reads AuthEnvelopedData (AES-256-GCM).
    pub fn with_auth_enveloped(mut self, supported: bool) -> Self {
        self.supports_auth_enveloped = supported;
        self
    }

    /// Records what the recipient advertised in SMIMECapabilities.
    pub fn with_capabilities(self, capabilities: &SmimeCapabilities) -> Self {
        let gcm = capabilities.supports_aes256_gcm();
        self.with_auth_enveloped(gcm)
    }

    /// The certificate's facts.
    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    /// Encrypts the content-encryption key to this recipient and describes it
    /// as a KeyTransRecipientInfo identified by issuer and serial number.
    pub(crate) fn key_trans_recipient_info(&self, content_key: &[u8]) -> Result<RecipientInfo> {
        let cert = &self.info.certificate().tbs_certificate;
        let spki = &cert.subject_public_key_info;
        let (key_enc_alg, encrypted_key) = match self.info.key_algorithm {
            KeyAlgorithm::Rsa => pkcs1_v15_transport(spki, content_key)?,
            KeyAlgorithm::RsaOaep => oaep_transport(spki, content_key)?,
            ref other => {
                return Err(SmimeError::UnsupportedAlgorithm(format!("key transport to {other:?}")));
            }
        };
        Ok(RecipientInfo::Ktri(KeyTransRecipientInfo {
            version: CmsVersion::V0,
            rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.issuer.clone(),
                serial_number: cert.serial_number.clone(),
            }),
            key_enc_alg,
            enc_key: OctetString::new(encrypted_key)?,
        }))
    }
}

/// aws-lc-rs reads RSA public keys from a SubjectPublicKeyInfo labelled
/// rsaEncryption; an id-RSAES-OAEP certificate carries the same RSAPublicKey
/// under another label, so it is relabelled first.
fn rsa_public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicEncryptingKey> {
    let relabelled = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned { oid: oids::RSA_ENCRYPTION, parameters: Some(Any::from(Null)) },
        subject_public_key: spki.subject_public_key.clone(),
    };
    PublicEncryptingKey::from_der(&relabelled.to_der()?).map_err(|e| SmimeError::BadRecipientKey(e.to_string()))
}

fn pkcs1_v15_transport(
    spki: &SubjectPublicKeyInfoOwned,
    content_key: &[u8],
) -> Result<(AlgorithmIdentifierOwned, Vec<u8>)> {
    let key = Pkcs1PublicEncryptingKey::new(rsa_public_key(spki)?)?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key.encrypt(content_key, &mut out)?.len();
    out.truncate(len);
    let alg = AlgorithmIdentifierOwned { oid: oids::RSA_ENCRYPTION, parameters: Some(Any::from(Null)) };
    Ok((alg, out))
}

fn oaep_transport(spki: &SubjectPublicKeyInfoOwned, content_key: &[u8]) -> Result<(AlgorithmIdentifierOwned, Vec<u8>)> {
    let hash = oaep_hash_for(spki)?;
    let algorithm = oaep_algorithm(hash)?;
    let key = OaepPublicEncryptingKey::new(rsa_public_key(spki)?)?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key.encrypt(algorithm, content_key, &mut out, None)?.len();
    out.truncate(len);
    // Parameters are always written out, so the recipient never has to guess
    // at defaults; SHA-1 is written as the default (absent fields).
    let params = if hash == oids::SHA1 {
        RsaesOaepParams { hash: None, mask_gen: None, p_source: None }
    } else {
        let hash_alg = AlgorithmIdentifierOwned { oid: hash, parameters: Some(Any::from(Null)) };
        RsaesOaepParams {
            hash: Some(hash_alg.clone()),
            mask_gen: Some(AlgorithmIdentifierOwned {
                oid: oids::MGF1,
                parameters: Some(Any::encode_from(&hash_alg)?),
            }),
            p_source: None,
        }
    };
    let alg = AlgorithmIdentifierOwned { oid: oids::RSAES_OAEP, parameters: Some(Any::encode_from(&params)?) };
    Ok((alg, out))
}

/// The OAEP hash to use for an id-RSAES-OAEP key: the one its certificate
/// fixes (RFC 4055 §4.1: parameters in the SPKI restrict the key), or SHA-256
/// when the certificate leaves it open.
fn oaep_hash_for(spki: &SubjectPublicKeyInfoOwned) -> Result<ObjectIdentifier> {
    let Some(params) = &spki.algorithm.parameters else {
        return Ok(oids::SHA256);
    };
    if params.tag() == der::Tag::Null {
        return Ok(oids::SHA256);
    }
    let params = RsaesOaepParams::from_der(&params.to_der()?)?;
    let hash = params.hash.as_ref().map_or(oids::SHA1, |h| h.oid);
    let mgf_hash = match &params.mask_gen {
        None => oids::SHA1,
        Some(mgf) if mgf.oid == oids::MGF1 => {
            let inner =
                mgf.parameters.as_ref().ok_or_else(|| SmimeError::UnsupportedAlgorithm("MGF1 without hash".into()))?;
            AlgorithmIdentifierOwned::from_der(&inner.to_der()?)?.oid
        }
        Some(other) => {
            return Err(SmimeError::UnsupportedAlgorithm(format!("OAEP mask generation {}", other.oid)));
        }
    };
    if let Some(source) = &params.p_source {
        let empty_label =
            source.oid == oids::P_SPECIFIED && source.parameters.as_ref().is_none_or(|p| p.value().is_empty());
        if !empty_label {
            return Err(SmimeError::UnsupportedAlgorithm("OAEP with a label".into()));
        }
    }
    if hash != mgf_hash {
        return Err(SmimeError::UnsupportedAlgorithm(format!("OAEP hash {hash} with MGF1 hash {mgf_hash}")));
    }
    Ok(hash)
}

fn oaep_algorithm(hash: ObjectIdentifier) -> Result<&'static OaepAlgorithm> {
    Ok(match hash {
        oids::SHA1 => &OAEP_SHA1_MGF1SHA1,
        oids::SHA256 => &OAEP_SHA256_MGF1SHA256,
        oids::SHA384 => &OAEP_SHA384_MGF1SHA384,
        oids::SHA512 => &OAEP_SHA512_MGF1SHA512,
        other => {
            return Err(SmimeError::UnsupportedAlgorithm(format!("OAEP hash {other}")));
        }
    })
}
