//! Verification of inbound S/MIME signatures (multipart/signed, or opaque
//! signed-data), so carepost can learn a sender's certificate and what the
//! sender can decrypt.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::time::Time;

use super::{Result, SmimeCapabilities, SmimeError};
use crate::keys::{CertificateInfo, KeyError, from_unix};
use crate::mime::{content_type, decode_base64_body, header_value, multipart_parts, split_head_body, to_crlf};
use crate::oids;

/// A certificate authority whose certificates carepost trusts for S/MIME.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    der: Vec<u8>,
}

impl TrustAnchor {
    /// Reads one CA certificate (PEM or DER).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, KeyError> {
        let info = CertificateInfo::parse(bytes)?;
        Ok(TrustAnchor { der: info.der().to_vec() })
    }

    /// Reads every certificate of a PEM bundle.
    pub fn parse_pem_bundle(pem: &[u8]) -> std::result::Result<Vec<Self>, KeyError> {
        let anchors = crate::pem::all_blocks(pem, "CERTIFICATE")
            .iter()
            .map(|der| Self::parse(der))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if anchors.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(anchors)
    }
}

/// How far the signer's certificate was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStatus {
    /// A chain to one of the given trust anchors was built and checked
    /// (signatures, validity at the verification time, e-mail protection
    /// usage where the certificates restrict it).
    Trusted,
    /// No trust anchors were given: only the signature itself was checked,
    /// and the certificate is only as good as the way it was obtained.
    NotChecked,
}

/// The outcome of a successful verification.
#[derive(Debug, Clone)]
pub struct VerifiedSigner {
    /// The signer's certificate: DER, e-mail addresses, validity period.
    pub certificate: CertificateInfo,
    /// What the signer advertised it can decrypt (empty if it did not say).
    pub capabilities: SmimeCapabilities,
    /// The signing time the signer claimed, if any.
    pub signing_time: Option<OffsetDateTime>,
    /// Whether the certificate was validated to a trust anchor.
    pub chain: ChainStatus,
    /// The signed MIME entity, exactly as signed (CRLF line endings).
    pub content: Vec<u8>,
}

/// Verifies the signature of a signed message (a whole RFC 5322 message or a
/// MIME entity) that is `multipart/signed` with an
/// `application/pkcs7-signature` part, or `application/pkcs7-mime;
/// smime-type=signed-data`.
///
/// Every SignerInfo must verify; the first signer is reported. With
/// `anchors` empty only the signature is checked ([`ChainStatus::NotChecked`]);
/// otherwise the signer's certificate must chain to one of them, using the
/// other certificates of the message as intermediates.
pub fn verify(message: &[u8], anchors: &[TrustAnchor]) -> Result<VerifiedSigner> {
    verify_at(message, anchors, OffsetDateTime::now_utc())
}

/// [`verify`] with certificate validity judged at `now`.
pub fn verify_at(message: &[u8], anchors: &[TrustAnchor], now: OffsetDateTime) -> Result<VerifiedSigner> {
    let message = to_crlf(message);
    let (head, body) = split_head_body(&message);
    let ct = content_type(head);
    match ct.mime_type.as_str() {
        "multipart/signed" => {
            let protocol = ct.param("protocol").unwrap_or_default().to_ascii_lowercase();
            if protocol != "application/pkcs7-signature" && protocol != "application/x-pkcs7-signature" {
                return Err(SmimeError::NotSigned(format!("multipart/signed with protocol {protocol:?}")));
            }
            let boundary = ct.param("boundary").ok_or_else(|| SmimeError::NotSigned("no boundary".into()))?;
            let parts = multipart_parts(body, boundary).map_err(|e| SmimeError::NotSigned(e.to_string()))?;
            let [content, signature_part, ..] = parts.as_slice() else {
                return Err(SmimeError::NotSigned("multipart/signed needs two parts".into()));
            };
            let (sig_head, sig_body) = split_head_body(signature_part);
            let sig_type = content_type(sig_head).mime_type;
            if sig_type != "application/pkcs7-signature" && sig_type != "application/x-pkcs7-signature" {
                return Err(SmimeError::NotSigned(format!("signature part is {sig_type}")));
            }
            let der = decode_body(sig_head, sig_body)?;
            verify_cms(&der, Some(content), anchors, now)
        }
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            let smime_type = ct.param("smime-type").unwrap_or("signed-data").to_ascii_lowercase();
            if smime_type != "signed-data" {
                return Err(SmimeError::NotSigned(format!("smime-type={smime_type}")));
            }
            let der = decode_body(head, body)?;
            verify_cms(&der, None, anchors, now)
        }
        other => Err(SmimeError::NotSigned(format!("content type {other}"))),
    }
}

/// The bytes of a body per its Content-Transfer-Encoding (base64 or binary).
fn decode_body(head: &[u8], body: &[u8]) -> Result<Vec<u8>> {
    let encoding = header_value(head, "Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
    match encoding.as_str() {
        "base64" => decode_base64_body(body).ok_or_else(|| SmimeError::NotSigned("invalid base64".into())),
        "" | "binary" | "7bit" | "8bit" => Ok(body.to_vec()),
        other => Err(SmimeError::NotSigned(format!("transfer encoding {other}"))),
    }
}

/// Verifies a DER ContentInfo holding SignedData; `detached` is the signed
/// content when it travels outside the CMS structure.
fn verify_cms(
    der: &[u8],
    detached: Option<&[u8]>,
    anchors: &[TrustAnchor],
    now: OffsetDateTime,
) -> Result<VerifiedSigner> {
    let der = super::ber::to_der(der)?;
    let content_info = ContentInfo::from_der(&der)?;
    if content_info.content_type != oids::ID_SIGNED_DATA {
        return Err(SmimeError::NotSigned(format!("CMS content type {}", content_info.content_type)));
    }
    let signed_data: SignedData = content_info.content.decode_as()?;
    let encapsulated = match &signed_data.encap_content_info.econtent {
        Some(any) => Some(any.decode_as::<OctetString>()?.into_bytes()),
        None => None,
    };
    let content: Vec<u8> = match (detached, encapsulated) {
        (Some(detached), None) => detached.to_vec(),
        (None, Some(encapsulated)) => encapsulated,
        (Some(_), Some(_)) => {
            return Err(SmimeError::Malformed("content both detached and encapsulated".into()));
        }
        (None, None) => return Err(SmimeError::Malformed("no signed content".into())),
    };
    let certificates: Vec<&Certificate> = signed_data
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(cert) => Some(cert),
            CertificateChoices::Other(_) => None,
        })
        .collect();

    let mut first: Option<(Certificate, SmimeCapabilities, Option<OffsetDateTime>)> = None;
    for signer_info in signed_data.signer_infos.0.iter() {
        let cert = find_signer_certificate(&signer_info.sid, &certificates)?;
        let facts = verify_signer_info(signer_info, cert, &content, signed_data.encap_content_info.econtent_type)?;
        if first.is_none() {
            first = Some((cert.clone(), facts.0, facts.1));
        }
    }
    let (signer_cert, capabilities, signing_time) =
        first.ok_or_else(|| SmimeError::Malformed("no SignerInfo".into()))?;
    let certificate = CertificateInfo::from_certificate(signer_cert)?;

    let chain = if anchors.is_empty() {
        ChainStatus::NotChecked
    } else {
        let intermediates = certificates.iter().map(|c| c.to_der()).collect::<der::Result<Vec<_>>>()?;
        validate_chain(certificate.der(), &intermediates, anchors, now)?;
        ChainStatus::Trusted
    };
    Ok(VerifiedSigner { certificate, capabilities, signing_time, chain, content })
}

fn find_signer_certificate<'a>(sid: &SignerIdentifier, certificates: &[&'a Certificate]) -> Result<&'a Certificate> {
    let found = certificates.iter().find(|cert| {
        let tbs = &cert.tbs_certificate;
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                tbs.issuer == ias.issuer && tbs.serial_number == ias.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
                .extensions
                .iter()
                .flatten()
                .filter(|ext| ext.extn_id == oids::EXT_SUBJECT_KEY_IDENTIFIER)
                .any(|ext| OctetString::from_der(ext.extn_value.as_bytes()).is_ok_and(|v| v == ski.0)),
        }
    });
    found.copied().ok_or(SmimeError::SignerCertificateMissing)
}

/// Checks one SignerInfo and returns the capabilities and signing time it carries.
fn verify_signer_info(
    signer_info: &SignerInfo,
    cert: &Certificate,
    content: &[u8],
    econtent_type: ObjectIdentifier,
) -> Result<(SmimeCapabilities, Option<OffsetDateTime>)> {
    let digest_oid = signer_info.digest_alg.oid;
    let digest_alg = digest_algorithm(digest_oid)?;
    let digest = aws_lc_rs::digest::digest(digest_alg, content);

    let mut capabilities = SmimeCapabilities::default();
    let mut signing_time = None;
    let signed_message: Vec<u8> = match &signer_info.signed_attrs {
        Some(attrs) => {
            let claimed_type: ObjectIdentifier = single_value(attrs.iter(), oids::ATTR_CONTENT_TYPE)?
                .ok_or_else(|| SmimeError::Malformed("signed attributes without content-type".into()))?
                .decode_as()?;
            if claimed_type != econtent_type {
                return Err(SmimeError::Malformed("content-type attribute differs from the content".into()));
            }
            let claimed_digest: OctetString = single_value(attrs.iter(), oids::ATTR_MESSAGE_DIGEST)?
                .ok_or_else(|| SmimeError::Malformed("signed attributes without message-digest".into()))?
                .decode_as()?;
            if claimed_digest.as_bytes() != digest.as_ref() {
                return Err(SmimeError::DigestMismatch);
            }
            if let Some(value) = single_value(attrs.iter(), oids::ATTR_SMIME_CAPABILITIES)? {
                capabilities = SmimeCapabilities::from_attribute_value(value)?;
            }
            if let Some(value) = single_value(attrs.iter(), oids::ATTR_SIGNING_TIME)? {
                let time = Time::from_der(&value.to_der()?)?;
                signing_time = Some(from_unix(time.to_unix_duration().as_secs() as i64));
            }
            // The signature covers the attributes' DER as a SET OF (RFC 5652 §5.4).
            attrs.to_der()?
        }
        None => {
            if econtent_type != oids::ID_DATA {
                return Err(SmimeError::Malformed("signed attributes are required for this content type".into()));
            }
            content.to_vec()
        }
    };

    let spki = &cert.tbs_certificate.subject_public_key_info;
    let algorithm = verification_algorithm(spki, signer_info.signature_algorithm.oid, digest_oid)?;
    UnparsedPublicKey::new(algorithm, spki.subject_public_key.raw_bytes())
        .verify(&signed_message, signer_info.signature.as_bytes())
        .map_err(|_| SmimeError::BadSignature)?;
    Ok((capabilities, signing_time))
}

/// The value of the attribute `oid`, which must have exactly one value and
/// occur at most once (RFC 5652 §5.3).
fn single_value<'a>(
    mut attrs: impl Iterator<Item = &'a Attribute>,
    oid: ObjectIdentifier,
) -> Result<Option<&'a der::asn1::Any>> {
    let Some(attr) = attrs.find(|a| a.oid == oid) else {
        return Ok(None);
    };
    if attrs.any(|a| a.oid == oid) || attr.values.len() != 1 {
        return Err(SmimeError::Malformed(format!("attribute {oid} must have exactly one value")));
    }
    Ok(attr.values.get(0))
}

fn digest_algorithm(oid: ObjectIdentifier) -> Result<&'static aws_lc_rs::digest::Algorithm> {
    match oid {
        oids::SHA256 => Ok(&aws_lc_rs::digest::SHA256),
        oids::SHA384 => Ok(&aws_lc_rs::digest::SHA384),
        oids::SHA512 => Ok(&aws_lc_rs::digest::SHA512),
        // SHA-1 and MD5 signatures are forgeable; RFC 8551 §2.1 forbids accepting them.
        other => Err(SmimeError::UnsupportedAlgorithm(format!("digest {other}"))),
    }
}

/// Picks the aws-lc-rs verification algorithm from the signer's key, the
/// signature algorithm and the digest algorithm.
fn verification_algorithm(
    spki: &spki::SubjectPublicKeyInfoOwned,
    signature_oid: ObjectIdentifier,
    digest_oid: ObjectIdentifier,
) -> Result<&'static dyn VerificationAlgorithm> {
    let unsupported =
        || SmimeError::UnsupportedAlgorithm(format!("signature {signature_oid} with key {}", spki.algorithm.oid));
    match spki.algorithm.oid {
        oids::RSA_ENCRYPTION => {
            let hash = match signature_oid {
                oids::RSA_ENCRYPTION => digest_oid,
                oids::SHA256_WITH_RSA => oids::SHA256,
                oids::SHA384_WITH_RSA => oids::SHA384,
                oids::SHA512_WITH_RSA => oids::SHA512,
                _ => return Err(unsupported()),
            };
            match hash {
                oids::SHA256 => Ok(&sig::RSA_PKCS1_2048_8192_SHA256),
                oids::SHA384 => Ok(&sig::RSA_PKCS1_2048_8192_SHA384),
                oids::SHA512 => Ok(&sig::RSA_PKCS1_2048_8192_SHA512),
                _ => Err(unsupported()),
            }
        }
        oids::EC_PUBLIC_KEY => {
            let curve: ObjectIdentifier =
                spki.algorithm.parameters.as_ref().ok_or_else(unsupported)?.decode_as().map_err(|_| unsupported())?;
            let hash = match signature_oid {
                oids::ECDSA_WITH_SHA256 => oids::SHA256,
                oids::ECDSA_WITH_SHA384 => oids::SHA384,
                oids::ECDSA_WITH_SHA512 => oids::SHA512,
                oids::EC_PUBLIC_KEY => digest_oid,
                _ => return Err(unsupported()),
            };
            match (curve, hash) {
                (oids::SECP256R1, oids::SHA256) => Ok(&sig::ECDSA_P256_SHA256_ASN1),
                (oids::SECP256R1, oids::SHA384) => Ok(&sig::ECDSA_P256_SHA384_ASN1),
                (oids::SECP256R1, oids::SHA512) => Ok(&sig::ECDSA_P256_SHA512_ASN1),
                (oids::SECP384R1, oids::SHA256) => Ok(&sig::ECDSA_P384_SHA256_ASN1),
                (oids::SECP384R1, oids::SHA384) => Ok(&sig::ECDSA_P384_SHA384_ASN1),
                (oids::SECP384R1, oids::SHA512) => Ok(&sig::ECDSA_P384_SHA512_ASN1),
                _ => Err(unsupported()),
            }
        }
        oids::ED25519 if signature_oid == oids::ED25519 => Ok(&sig::ED25519),
        _ => Err(unsupported()),
    }
}

/// Builds and checks a chain from the signer's certificate to an anchor.
fn validate_chain(
    end_entity: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[TrustAnchor],
    now: OffsetDateTime,
) -> Result<()> {
    use rustls_pki_types::{CertificateDer, UnixTime};
    let untrusted = |e: webpki::Error| SmimeError::Untrusted(format!("{e:?}"));

    let end_entity = CertificateDer::from(end_entity);
    let end_entity = webpki::EndEntityCert::try_from(&end_entity).map_err(untrusted)?;
    let anchor_ders: Vec<CertificateDer<'_>> = anchors.iter().map(|a| CertificateDer::from(a.der.as_slice())).collect();
    let trust_anchors = anchor_ders
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(untrusted)?;
    let intermediates: Vec<CertificateDer<'_>> =
        intermediates.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust_anchors,
            &intermediates,
            time,
            webpki::KeyUsage::required_if_present(oids::EKU_EMAIL_PROTECTION_DER),
            None,
            None,
        )
        .map_err(untrusted)?;
    Ok(())
}
