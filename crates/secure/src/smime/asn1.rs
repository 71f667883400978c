//! ASN.1 structures S/MIME needs that the `cms` crate (0.2) does not define.

use cms::content_info::CmsVersion;
use cms::enveloped_data::{EncryptedContentInfo, OriginatorInfo, RecipientInfos};
use der::asn1::OctetString;
use der::{Sequence, ValueOrd};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attributes;

/// AuthEnvelopedData (RFC 5083 §2.1).
///
/// ```text
/// AuthEnvelopedData ::= SEQUENCE {
///   version CMSVersion,
///   originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL,
///   recipientInfos RecipientInfos,
///   authEncryptedContentInfo EncryptedContentInfo,
///   authAttrs [1] IMPLICIT AuthAttributes OPTIONAL,
///   mac MessageAuthenticationCode,
///   unauthAttrs [2] IMPLICIT UnauthAttributes OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct AuthEnvelopedData {
    pub version: CmsVersion,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub originator_info: Option<OriginatorInfo>,
    pub recip_infos: RecipientInfos,
    pub auth_encrypted_content: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub auth_attrs: Option<Attributes>,
    pub mac: OctetString,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub unauth_attrs: Option<Attributes>,
}

/// GCMParameters (RFC 5084 §3.2). carepost always writes a 16-byte tag, so
/// `icv_len` is always present in what it emits.
///
/// ```text
/// GCMParameters ::= SEQUENCE {
///   aes-nonce        OCTET STRING, -- recommended size is 12 octets
///   aes-ICVlen       AES-GCM-ICVlen DEFAULT 12 }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct GcmParameters {
    pub nonce: OctetString,
    #[asn1(default = "default_icv_len")]
    pub icv_len: u8,
}

fn default_icv_len() -> u8 {
    12
}

/// RSAES-OAEP-params (RFC 4055 §4.1); absent fields mean SHA-1, MGF1 with
/// SHA-1 and an empty label.
///
/// ```text
/// RSAES-OAEP-params ::= SEQUENCE {
///   hashFunc          [0] AlgorithmIdentifier DEFAULT sha1Identifier,
///   maskGenFunc       [1] AlgorithmIdentifier DEFAULT mgf1SHA1Identifier,
///   pSourceFunc       [2] AlgorithmIdentifier DEFAULT pSpecifiedEmptyIdentifier }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence, ValueOrd)]
pub(crate) struct RsaesOaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub p_source: Option<AlgorithmIdentifierOwned>,
}

/// SMIMECapabilities (RFC 8551 §2.5.2): a sequence of capability
/// identifiers with optional parameters, which has the shape of a sequence
/// of algorithm identifiers.
pub(crate) type SmimeCapabilitiesSeq = Vec<AlgorithmIdentifierOwned>;
