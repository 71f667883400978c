//! SMIMECapabilities (RFC 8551 §2.5.2): what a correspondent says it can
//! decrypt, learned from its signed mail, and what carepost advertises.

use der::Decode;
use der::asn1::Any;
use spki::AlgorithmIdentifierOwned;

use super::asn1::SmimeCapabilitiesSeq;
use crate::oids;

/// The capabilities a signer advertised, in its order of preference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmimeCapabilities {
    /// Capability identifiers as dotted OIDs.
    pub algorithms: Vec<String>,
}

impl SmimeCapabilities {
    /// Whether AES-256-GCM (AuthEnvelopedData, RFC 5084) is advertised.
    pub fn supports_aes256_gcm(&self) -> bool {
        self.has(oids::AES256_GCM)
    }

    /// Whether AES-256-CBC (EnvelopedData, RFC 3565) is advertised.
    pub fn supports_aes256_cbc(&self) -> bool {
        self.has(oids::AES256_CBC)
    }

    /// Whether RSAES-OAEP key transport is advertised.
    pub fn supports_rsaes_oaep(&self) -> bool {
        self.has(oids::RSAES_OAEP)
    }

    fn has(&self, oid: der::asn1::ObjectIdentifier) -> bool {
        let wanted = oid.to_string();
        self.algorithms.contains(&wanted)
    }

    /// Reads the value of an smimeCapabilities attribute.
    pub(crate) fn from_attribute_value(value: &Any) -> der::Result<Self> {
        let seq = SmimeCapabilitiesSeq::from_der(&der::Encode::to_der(value)?)?;
        Ok(SmimeCapabilities { algorithms: seq.into_iter().map(|c| c.oid.to_string()).collect() })
    }

    /// What carepost advertises when it signs: the content encryption it
    /// reads best first (RFC 8551 §2.7.1 lists AES-256-GCM as MUST).
    pub(crate) fn advertised() -> SmimeCapabilitiesSeq {
        [oids::AES256_GCM, oids::AES256_CBC, oids::RSAES_OAEP]
            .into_iter()
            .map(|oid| AlgorithmIdentifierOwned { oid, parameters: None })
            .collect()
    }
}
