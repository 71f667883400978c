//! Shared helpers for carepost-secure's integration tests. The peers (openssl, gpg) and the
//! throw-away PKI come from the testkit; what only these tests need stays here: an
//! RSAES-OAEP leaf, which needs the certificate parsers, and sample entities.
//!
//! Debian packages needed by these tests: openssl, gnupg.

#![allow(dead_code, unused_imports)]

use der::{Decode, Encode};

pub use carepost_testkit::gpg::GpgHome;
pub use carepost_testkit::pki::{Leaf, LeafKey, Pki, openssl};
pub use carepost_testkit::{require_tool, run_ok, run_status};

/// Leaves the openssl command line cannot make.
pub trait OaepLeaf {
    fn issue_oaep(&self, name: &str, email: &str) -> Leaf;
}

impl OaepLeaf for Pki {
    /// Issues an RSA leaf whose SubjectPublicKeyInfo is labelled
    /// id-RSAES-OAEP (RFC 4055), which the openssl CLI cannot make: the
    /// certificate is rewritten and signed again with the CA key.
    fn issue_oaep(&self, name: &str, email: &str) -> Leaf {
        let leaf = self.issue(name, email, LeafKey::Rsa, "keyEncipherment");
        let pem = leaf.cert_pem();
        let (_, der) = der::pem::decode_vec(&pem).unwrap();
        let mut cert = x509_cert::Certificate::from_der(&der).unwrap();
        cert.tbs_certificate.subject_public_key_info.algorithm =
            spki::AlgorithmIdentifierOwned { oid: "1.2.840.113549.1.1.7".parse().unwrap(), parameters: None };
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let ca_key_pem = std::fs::read(self.path("ca.key")).unwrap();
        let (_, ca_key) = der::pem::decode_vec(&ca_key_pem).unwrap();
        let ca_key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&ca_key).unwrap();
        let mut signature = vec![0u8; ca_key.public_modulus_len()];
        ca_key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), &tbs, &mut signature)
            .unwrap();
        cert.signature = der::asn1::BitString::from_bytes(&signature).unwrap();
        let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert.to_der().unwrap()).unwrap();
        std::fs::write(&leaf.cert, pem).unwrap();
        leaf
    }
}

/// A sample protected entity: what carepost's transform stage hands to packaging.
pub const ENTITY: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Lab result for patient 4711: potassium 4.2 mmol/L =E2=80=94 normal.\r\n\
Please call the clinic with questions.\r\n";

/// Outer headers used when a whole message is needed.
pub const OUTER: &[u8] = b"From: clinic@example.org\r\nTo: alice@example.org\r\nSubject: Results\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n";

/// The ASCII-armored OpenPGP message inside a PGP/MIME entity, as a mail
/// client would hand it to gpg.
pub fn armored_part(entity: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(entity);
    let start = text.find("-----BEGIN PGP MESSAGE-----").expect("no armored message");
    let end_marker = "-----END PGP MESSAGE-----";
    let end = text.find(end_marker).expect("unterminated armored message") + end_marker.len();
    text[start..end].as_bytes().to_vec()
}
