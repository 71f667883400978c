//! Property tests: whatever bytes arrive from the network, parsing them as a
//! certificate, an OpenPGP key or a signed message returns a value or an
//! error, never a panic. Besides random bytes, valid inputs with random
//! bytes altered reach the deeper layers of each parser.

use std::sync::OnceLock;

use carepost_secure::keys::{CertificateInfo, OpenPgpKey};
use carepost_secure::mime::{join_protected, split_for_protection};
use carepost_secure::smime::{self, SignerIdentity, TrustAnchor};
use carepost_secure::wkd;
use proptest::prelude::*;

const FIXTURE_KEY: &[u8] = include_bytes!("data/fixture.pub.asc");

struct Fixtures {
    certificate_der: Vec<u8>,
    signed_message: Vec<u8>,
    key_binary: Vec<u8>,
}

/// A certificate, a message carepost signed with it, and a binary OpenPGP key.
fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name("fixture@example.org".try_into().unwrap())];
        let certificate = params.self_signed(&key).unwrap();
        let signer = SignerIdentity::from_pem_or_der(certificate.der(), &key.serialize_der()).unwrap();
        let signed = smime::sign(b"Content-Type: text/plain\r\n\r\nfixture\r\n", &signer).unwrap();
        let key_binary = OpenPgpKey::parse(FIXTURE_KEY).unwrap();
        let mut binary = Vec::new();
        pgp::ser::Serialize::to_writer(key_binary.signed_public_key(), &mut binary).unwrap();
        Fixtures {
            certificate_der: certificate.der().to_vec(),
            signed_message: join_protected(b"From: fixture@example.org\r\n", &signed),
            key_binary: binary,
        }
    })
}

/// `input` with the bytes at the given positions replaced.
fn mutate(input: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut out = input.to_vec();
    for &(position, value) in edits {
        if !out.is_empty() {
            let i = position % out.len();
            out[i] = value;
        }
    }
    out
}

#[test]
fn fixtures_are_valid_before_mutation() {
    let f = fixtures();
    CertificateInfo::parse(&f.certificate_der).unwrap();
    OpenPgpKey::parse(&f.key_binary).unwrap();
    let verified = smime::verify(&f.signed_message, &[]).unwrap();
    assert!(verified.certificate.has_email("fixture@example.org"));
}

proptest! {
    #[test]
    fn arbitrary_bytes_as_certificate(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = CertificateInfo::parse(&bytes);
        let _ = TrustAnchor::parse(&bytes);
        let _ = TrustAnchor::parse_pem_bundle(&bytes);
    }

    #[test]
    fn altered_certificate(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let _ = CertificateInfo::parse(&mutate(&fixtures().certificate_der, &edits));
    }

    #[test]
    fn arbitrary_bytes_as_openpgp_key(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = OpenPgpKey::parse_many(&bytes);
    }

    #[test]
    fn altered_openpgp_key(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        if let Ok(keys) = OpenPgpKey::parse_many(&mutate(&fixtures().key_binary, &edits)) {
            for key in keys {
                let _ = key.usable_for_encryption(time::OffsetDateTime::now_utc());
            }
        }
        let _ = OpenPgpKey::parse_many(&mutate(FIXTURE_KEY, &edits));
    }

    #[test]
    fn arbitrary_bytes_as_signed_message(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = smime::verify(&bytes, &[]);
        let _ = split_for_protection(&bytes);
    }

    #[test]
    fn arbitrary_signature_in_multipart_signed(der in proptest::collection::vec(any::<u8>(), 0..2048)) {
        use base64::Engine as _;
        let message = format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n\
             Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        prop_assert!(smime::verify(message.as_bytes(), &[]).is_err());
    }

    #[test]
    fn altered_signed_message(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let _ = smime::verify(&mutate(&fixtures().signed_message, &edits), &[]);
    }

    #[test]
    fn arbitrary_text_as_wkd_address(address in "\\PC{0,80}") {
        let _ = wkd::wkd_urls(&address);
    }
}
