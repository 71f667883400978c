//! Certificate facts and the encryption check, on certificates made by the
//! openssl CLI.
//!
//! Debian packages needed: openssl.

mod common;

use carepost_secure::keys::{CertificateInfo, KeyAlgorithm, KeyError, Unusable};
use common::{LeafKey, Pki, openssl, run_ok};
use time::{Duration, OffsetDateTime};

#[test]
fn facts_match_what_openssl_reports() {
    let pki = Pki::new();
    let leaf = pki.issue_with_extensions(
        "alice",
        "Alice@Example.org",
        LeafKey::Rsa,
        "keyUsage=critical,keyEncipherment\nsubjectAltName=email:alice@example.org,email:a.smith@example.org\n",
    );
    let info = CertificateInfo::parse(&leaf.cert_pem()).unwrap();
    assert_eq!(info.key_algorithm, KeyAlgorithm::Rsa);
    // Subject emailAddress and rfc822Name SANs, lowercased, once each.
    assert_eq!(info.emails, vec!["alice@example.org".to_string(), "a.smith@example.org".to_string()]);

    let printed =
        run_ok(openssl(pki.dir.path()).args(["x509", "-noout", "-fingerprint", "-sha256", "-in", "alice.pem"])).stdout;
    let printed = String::from_utf8_lossy(&printed).to_string();
    let openssl_fingerprint = printed.trim().rsplit('=').next().unwrap().replace(':', "").to_lowercase();
    assert_eq!(info.fingerprint_sha256, openssl_fingerprint);

    let now = OffsetDateTime::now_utc();
    assert!(info.not_before <= now && now < info.not_after);
    assert!((info.not_after - info.not_before - Duration::days(30)).abs() < Duration::minutes(5));
    info.usable_for_encryption(now).unwrap();

    // DER reads the same as PEM.
    let der = CertificateInfo::from_der(info.der()).unwrap();
    assert_eq!(der.fingerprint_sha256, info.fingerprint_sha256);
}

#[test]
fn expired_and_not_yet_valid_certificates_are_unusable() {
    let pki = Pki::new();
    let leaf = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "keyEncipherment");
    let info = CertificateInfo::parse(&leaf.cert_pem()).unwrap();
    let later = info.not_after + Duration::seconds(1);
    assert_eq!(info.usable_for_encryption(later), Err(Unusable::Expired(info.not_after)));
    let earlier = info.not_before - Duration::seconds(1);
    assert_eq!(info.usable_for_encryption(earlier), Err(Unusable::NotYetValid(info.not_before)));
}

#[test]
fn certificates_not_meant_for_mail_encryption_are_unusable() {
    let pki = Pki::new();
    let signing_only = pki.issue("sig", "sig@example.org", LeafKey::Rsa, "digitalSignature");
    let info = CertificateInfo::parse(&signing_only.cert_pem()).unwrap();
    assert_eq!(info.usable_for_encryption(OffsetDateTime::now_utc()), Err(Unusable::NoKeyEncipherment));
    info.usable_for_signing(OffsetDateTime::now_utc()).unwrap();

    let server = pki.issue_with_extensions(
        "web",
        "web@example.org",
        LeafKey::Rsa,
        "keyUsage=critical,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    );
    let info = CertificateInfo::parse(&server.cert_pem()).unwrap();
    assert_eq!(info.usable_for_encryption(OffsetDateTime::now_utc()), Err(Unusable::NotForEmail));

    let ec = pki.issue("ec", "ec@example.org", LeafKey::EcP256, "digitalSignature,keyAgreement");
    let info = CertificateInfo::parse(&ec.cert_pem()).unwrap();
    assert!(matches!(info.key_algorithm, KeyAlgorithm::Ec(_)));
    let result = info.usable_for_encryption(OffsetDateTime::now_utc());
    assert!(matches!(result, Err(Unusable::UnsupportedAlgorithm(_))), "{result:?}");

    // No KeyUsage extension at all: nothing restricts the key.
    let plain = pki.issue_with_extensions(
        "plain",
        "plain@example.org",
        LeafKey::Rsa,
        "subjectAltName=email:plain@example.org\n",
    );
    CertificateInfo::parse(&plain.cert_pem()).unwrap().usable_for_encryption(OffsetDateTime::now_utc()).unwrap();
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(CertificateInfo::parse(b"not a certificate"), Err(KeyError::Certificate(_))));
    assert!(matches!(
        CertificateInfo::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(KeyError::Certificate(_))
    ));
}
