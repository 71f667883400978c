//! DANE for SMTP (RFC 7672): which TLSA records are usable, and whether a certificate
//! matches one.

use aws_lc_rs::digest;
use rustls_pki_types::CertificateDer;

use crate::dns::TlsaRecord;

/// DANE-TA(2): a trust anchor the chain must lead to.
pub const USAGE_DANE_TA: u8 = 2;
/// DANE-EE(3): the server's own certificate or key; no name or expiry checks (RFC 7672 3.1.1).
pub const USAGE_DANE_EE: u8 = 3;

/// The records an SMTP client may use. RFC 7672 section 3.1.3: PKIX-TA(0) and PKIX-EE(1) are
/// unusable for SMTP, as are unknown selectors and matching types.
pub fn usable(records: &[TlsaRecord]) -> Vec<TlsaRecord> {
    records
        .iter()
        .filter(|r| matches!(r.usage, USAGE_DANE_TA | USAGE_DANE_EE) && r.selector <= 1 && r.matching <= 2)
        .filter(|r| match r.matching {
            1 => r.data.len() == 32,
            2 => r.data.len() == 64,
            _ => !r.data.is_empty(),
        })
        .cloned()
        .collect()
}

/// The SubjectPublicKeyInfo of a DER certificate, or `None` when it does not parse.
pub fn spki(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    Some(parsed.subject_public_key_info().as_ref().to_vec())
}

/// Whether `cert` matches `record` (selector and matching type applied).
pub fn matches(record: &TlsaRecord, cert: &CertificateDer<'_>) -> bool {
    let selected: Vec<u8> = match record.selector {
        0 => cert.as_ref().to_vec(),
        1 => match spki(cert) {
            Some(s) => s,
            None => return false,
        },
        _ => return false,
    };
    let computed: Vec<u8> = match record.matching {
        0 => selected,
        1 => digest::digest(&digest::SHA256, &selected).as_ref().to_vec(),
        2 => digest::digest(&digest::SHA512, &selected).as_ref().to_vec(),
        _ => return false,
    };
    // Not secret material: a plain comparison is fine.
    computed == record.data
}

/// A TLSA record for `cert` (how an operator, or a test, publishes one).
pub fn record_for(cert: &CertificateDer<'_>, usage: u8, selector: u8, matching: u8) -> Option<TlsaRecord> {
    let selected = match selector {
        0 => cert.as_ref().to_vec(),
        1 => spki(cert)?,
        _ => return None,
    };
    let data = match matching {
        0 => selected,
        1 => digest::digest(&digest::SHA256, &selected).as_ref().to_vec(),
        2 => digest::digest(&digest::SHA512, &selected).as_ref().to_vec(),
        _ => return None,
    };
    Some(TlsaRecord { usage, selector, matching, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx.example.test".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn records_match_their_certificate_only() {
        let (a, b) = (cert(), cert());
        for selector in [0, 1] {
            for matching in [0, 1, 2] {
                let r = record_for(&a, USAGE_DANE_EE, selector, matching).unwrap();
                assert!(matches(&r, &a), "{selector} {matching}");
                assert!(!matches(&r, &b), "{selector} {matching}");
            }
        }
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(!matches(&record_for(&a, 3, 1, 1).unwrap(), &garbage));
    }

    #[test]
    fn pkix_usages_and_bad_lengths_are_unusable() {
        let a = cert();
        let ee = record_for(&a, 3, 1, 1).unwrap();
        let mut pkix = ee.clone();
        pkix.usage = 1;
        let mut short = ee.clone();
        short.data.truncate(20);
        let mut odd_selector = ee.clone();
        odd_selector.selector = 7;
        assert_eq!(usable(&[ee.clone(), pkix, short, odd_selector]), vec![ee]);
    }
}
