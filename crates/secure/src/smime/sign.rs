//! S/MIME signing: multipart/signed with a detached SignedData (RFC 8551 §3.5.3).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{DateTime, Encode};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::time::Time;

use super::encrypt::{content_info, encrypt_at, to_any};
use super::{RecipientCert, Result, SignerIdentity, SmimeCapabilities, SmimeError};
use crate::mime::{new_boundary, to_crlf};
use crate::oids;

/// Signs a MIME entity and returns the `multipart/signed` entity that
/// replaces it (`protocol="application/pkcs7-signature"`, detached
/// signature, CRLF line endings).
///
/// The signed attributes are content-type, message-digest, signing-time and
/// SMIMECapabilities (AES-256-GCM, AES-256-CBC, RSAES-OAEP), so recipients
/// learn what carepost reads. The entity should be 7-bit clean (use
/// quoted-printable or base64 for other content): relays may re-encode 8-bit
/// parts, which breaks any signature.
pub fn sign(entity: &[u8], signer: &SignerIdentity) -> Result<Vec<u8>> {
    sign_at(entity, signer, OffsetDateTime::now_utc())
}

/// [`sign`] with `now` as the signing time (and the time at which the
/// signer's certificate must be valid).
pub fn sign_at(entity: &[u8], signer: &SignerIdentity, now: OffsetDateTime) -> Result<Vec<u8>> {
    signer.certificate().usable_for_signing(now).map_err(SmimeError::SignerUnusable)?;
    let content = to_crlf(entity);
    let signed_data = signed_data(&content, signer, now)?;
    let der = content_info(oids::ID_SIGNED_DATA, &signed_data)?;

    let boundary = new_boundary()?;
    let (_, _, micalg) = signer.digest();
    let mut out = format!(
        "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg};\r\n boundary=\"{boundary}\"\r\n\
         \r\n\
         This is a cryptographically signed message in MIME format.\r\n\
         \r\n\
         --{boundary}\r\n"
    )
    .into_bytes();
    out.extend_from_slice(&content);
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\n\
             Content-Type: application/pkcs7-signature; name=smime.p7s\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=smime.p7s\r\n\
             \r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(crate::mime::base64_lines(&der).as_bytes());
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(out)
}

/// Signs, then encrypts the signed entity (RFC 8551 §3.7: sign first, so the
/// signature is hidden from everyone but the recipients).
pub fn sign_and_encrypt(entity: &[u8], signer: &SignerIdentity, recipients: &[RecipientCert]) -> Result<Vec<u8>> {
    let now = OffsetDateTime::now_utc();
    let signed = sign_at(entity, signer, now)?;
    encrypt_at(&signed, recipients, now)
}

fn signed_data(content: &[u8], signer: &SignerIdentity, now: OffsetDateTime) -> Result<SignedData> {
    let (digest_oid, digest_alg, _) = signer.digest();
    let digest = aws_lc_rs::digest::digest(digest_alg, content);
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(vec![
        attribute(oids::ATTR_CONTENT_TYPE, &oids::ID_DATA)?,
        attribute(oids::ATTR_SIGNING_TIME, &signing_time(now)?)?,
        attribute(oids::ATTR_MESSAGE_DIGEST, &OctetString::new(digest.as_ref())?)?,
        attribute(oids::ATTR_SMIME_CAPABILITIES, &SmimeCapabilities::advertised())?,
    ])?;
    // The signature covers the DER of the attributes as a SET OF (RFC 5652 §5.4).
    let signature = signer.sign(&signed_attrs.to_der()?)?;

    let certificate = signer.certificate().certificate();
    let digest_algorithm = AlgorithmIdentifierOwned { oid: digest_oid, parameters: None };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate.issuer.clone(),
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_algorithm.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signer.signature_algorithm(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut certificates = vec![CertificateChoices::Certificate(certificate.clone())];
    for intermediate in signer.intermediates() {
        certificates.push(CertificateChoices::Certificate(intermediate.certificate().clone()));
    }
    Ok(SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm])?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: oids::ID_DATA, econtent: None },
        certificates: Some(CertificateSet(SetOfVec::try_from(certificates)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    })
}

fn attribute(oid: ObjectIdentifier, value: &impl Encode) -> Result<Attribute> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![to_any(value)?])? })
}

/// signingTime as RFC 5652 §11.3 wants it: UTCTime for 1950–2049,
/// GeneralizedTime otherwise.
fn signing_time(now: OffsetDateTime) -> Result<Time> {
    let secs =
        u64::try_from(now.unix_timestamp()).map_err(|_| SmimeError::Malformed("signing time before 1970".into()))?;
    let date_time = DateTime::from_unix_duration(std::time::Duration::from_secs(secs))?;
    if date_time.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(date_time)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(date_time)))
    }
}
