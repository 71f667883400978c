//! S/MIME encryption: AuthEnvelopedData with AES-256-GCM (RFC 5083, 5084)
//! when every recipient reads it, EnvelopedData with AES-256-CBC (RFC 5652,
//! 3565) otherwise.

use aws_lc_rs::aead::{AES_256_GCM, Aad, RandomizedNonceKey};
use aws_lc_rs::cipher::{AES_256, PaddedBlockEncryptingKey, UnboundCipherKey};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData, RecipientInfos};
use der::asn1::{Any, OctetString};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::asn1::{AuthEnvelopedData, GcmParameters};
use super::{RecipientCert, Result, SmimeError, pkcs7_mime_entity};
use crate::mime::to_crlf;
use crate::oids;

/// Length of an AES-256 key.
const CONTENT_KEY_LEN: usize = 32;
/// GCM tag length carepost writes (the full 128 bits).
const GCM_TAG_LEN: u8 = 16;

/// The content encryption used for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncryption {
    /// AuthEnvelopedData, AES-256-GCM: authenticated, S/MIME 4.0's first choice.
    AuthEnvelopedAes256Gcm,
    /// EnvelopedData, AES-256-CBC: what every S/MIME client reads.
    EnvelopedAes256Cbc,
}

/// AES-256-GCM only when every recipient is known to read it; one recipient
/// without it means CBC for all, since all share one encrypted body.
pub fn choose_content_encryption(recipients: &[RecipientCert]) -> ContentEncryption {
    if !recipients.is_empty() && recipients.iter().all(|r| r.supports_auth_enveloped) {
        ContentEncryption::AuthEnvelopedAes256Gcm
    } else {
        ContentEncryption::EnvelopedAes256Cbc
    }
}

/// Encrypts a MIME entity (its Content-* header fields, a blank line, the
/// body) to the recipients' certificates and returns the
/// `application/pkcs7-mime` entity to send in its place (headers, blank
/// line, base64 body, CRLF line endings).
///
/// Certificates that are expired, not yet valid, or not meant for key
/// encipherment are refused rather than skipped: the caller asked for all of
/// them, and dropping one silently would leave that recipient unable to read.
pub fn encrypt(entity: &[u8], recipients: &[RecipientCert]) -> Result<Vec<u8>> {
    encrypt_at(entity, recipients, OffsetDateTime::now_utc())
}

/// [`encrypt`] with the validity of the certificates judged at `now`.
pub fn encrypt_at(entity: &[u8], recipients: &[RecipientCert], now: OffsetDateTime) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(SmimeError::NoRecipients);
    }
    for recipient in recipients {
        recipient.info().usable_for_encryption(now).map_err(|reason| SmimeError::RecipientUnusable {
            fingerprint: recipient.info().fingerprint_sha256.clone(),
            reason,
        })?;
    }
    let content = to_crlf(entity);
    let content_key = new_content_key()?;

    let recipient_infos =
        recipients.iter().map(|r| r.key_trans_recipient_info(content_key.as_ref())).collect::<Result<Vec<_>>>()?;
    let recip_infos = RecipientInfos(der::asn1::SetOfVec::try_from(recipient_infos)?);

    match choose_content_encryption(recipients) {
        ContentEncryption::AuthEnvelopedAes256Gcm => {
            let data = encrypt_gcm(content_key.as_ref(), content, recip_infos)?;
            content_info(oids::ID_CT_AUTH_ENVELOPED_DATA, &data)
                .map(|der| pkcs7_mime_entity("authEnveloped-data", &der))
        }
        ContentEncryption::EnvelopedAes256Cbc => {
            let data = encrypt_cbc(content_key.as_ref(), content, recip_infos)?;
            content_info(oids::ID_ENVELOPED_DATA, &data).map(|der| pkcs7_mime_entity("enveloped-data", &der))
        }
    }
}

/// A fresh random AES-256 content-encryption key, wiped when dropped.
fn new_content_key() -> Result<Zeroizing<[u8; CONTENT_KEY_LEN]>> {
    let mut key = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
    aws_lc_rs::rand::fill(key.as_mut())?;
    Ok(key)
}

fn encrypt_gcm(key: &[u8], mut content: Vec<u8>, recip_infos: RecipientInfos) -> Result<AuthEnvelopedData> {
    let sealing_key = RandomizedNonceKey::new(&AES_256_GCM, key)?;
    // No authenticated attributes are sent, so the associated data is empty (RFC 5083 §2.2).
    let (nonce, tag) = sealing_key.seal_in_place_separate_tag(Aad::empty(), &mut content)?;
    let params = GcmParameters { nonce: OctetString::new(nonce.as_ref().to_vec())?, icv_len: GCM_TAG_LEN };
    Ok(AuthEnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos,
        auth_encrypted_content: EncryptedContentInfo {
            content_type: oids::ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: oids::AES256_GCM,
                parameters: Some(Any::encode_from(&params)?),
            },
            encrypted_content: Some(OctetString::new(content)?),
        },
        auth_attrs: None,
        mac: OctetString::new(tag.as_ref().to_vec())?,
        unauth_attrs: None,
    })
}

fn encrypt_cbc(key: &[u8], mut content: Vec<u8>, recip_infos: RecipientInfos) -> Result<EnvelopedData> {
    let cipher = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key)?)?;
    // aws-lc-rs draws a random IV and hands it back in the decryption context.
    let context = cipher.encrypt(&mut content)?;
    let iv: &[u8] = (&context).try_into()?;
    Ok(EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos,
        encrypted_content: EncryptedContentInfo {
            content_type: oids::ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: oids::AES256_CBC,
                parameters: Some(Any::encode_from(&OctetString::new(iv.to_vec())?)?),
            },
            encrypted_content: Some(OctetString::new(content)?),
        },
        unprotected_attrs: None,
    })
}

/// Re-reads any DER-encodable value as `Any` (for ANY-typed fields).
pub(super) fn to_any(value: &impl Encode) -> der::Result<Any> {
    Any::from_der(&value.to_der()?)
}

/// DER of a ContentInfo wrapping `content` of type `content_type`.
pub(super) fn content_info(content_type: der::asn1::ObjectIdentifier, content: &impl Encode) -> Result<Vec<u8>> {
    Ok(ContentInfo { content_type, content: to_any(content)? }.to_der()?)
}
