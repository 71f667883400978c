//! S/MIME against the real OpenSSL: what carepost encrypts and signs,
//! `openssl cms` decrypts and verifies; what `openssl cms`/`openssl smime`
//! sign, carepost verifies.
//!
//! Debian packages needed: openssl.

mod common;

use carepost_secure::mime::{join_protected, to_crlf};
use carepost_secure::smime::{
    self, ChainStatus, ContentEncryption, RecipientCert, SignerIdentity, SmimeError, TrustAnchor,
};
use common::{ENTITY, Leaf, LeafKey, OUTER, OaepLeaf, Pki, openssl, run_ok, run_status};

/// Writes `message` to a file, has openssl decrypt it with `leaf`'s key and
/// returns the decrypted bytes.
fn openssl_decrypt(pki: &Pki, leaf: &Leaf, message: &[u8], name: &str) -> Vec<u8> {
    let input = pki.path(&format!("{name}.eml"));
    let output = pki.path(&format!("{name}.out"));
    std::fs::write(&input, message).unwrap();
    run_ok(
        openssl(pki.dir.path())
            .arg("cms")
            .arg("-decrypt")
            .arg("-in")
            .arg(&input)
            .arg("-recip")
            .arg(&leaf.cert)
            .arg("-inkey")
            .arg(&leaf.key)
            .arg("-out")
            .arg(&output),
    );
    std::fs::read(&output).unwrap()
}

fn header_block(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.split("\r\n\r\n").next().unwrap_or_default().to_string()
}

fn encrypt_and_decrypt_with_openssl(oaep: bool, gcm: bool) {
    let pki = Pki::new();
    let leaf = if oaep {
        pki.issue_oaep("alice", "alice@example.org")
    } else {
        pki.issue("alice", "alice@example.org", LeafKey::Rsa, "digitalSignature,keyEncipherment")
    };
    let recipient = RecipientCert::parse(&leaf.cert_pem()).unwrap().with_auth_enveloped(gcm);
    assert_eq!(
        smime::choose_content_encryption(std::slice::from_ref(&recipient)),
        if gcm { ContentEncryption::AuthEnvelopedAes256Gcm } else { ContentEncryption::EnvelopedAes256Cbc }
    );
    let protected = smime::encrypt(ENTITY, &[recipient]).unwrap();
    let headers = header_block(&protected);
    let expected_type = if gcm { "smime-type=authEnveloped-data" } else { "smime-type=enveloped-data" };
    assert!(headers.contains(expected_type), "{headers}");
    assert!(protected.split(|&b| b == b'\n').all(|line| line.len() <= 78), "long line in output");

    let message = join_protected(OUTER, &protected);
    let decrypted = openssl_decrypt(&pki, &leaf, &message, "enc");
    assert_eq!(decrypted, to_crlf(ENTITY));

    // The structure is what was asked for, as openssl reads it.
    let printed = run_ok(openssl(pki.dir.path()).args(["cms", "-cmsout", "-print", "-in", "enc.eml"])).stdout;
    let printed = String::from_utf8_lossy(&printed);
    let (content_type, cipher) =
        if gcm { ("id-smime-ct-authEnvelopedData", "aes-256-gcm") } else { ("pkcs7-envelopedData", "aes-256-cbc") };
    let key_transport = if oaep { "rsaesOaep" } else { "rsaEncryption" };
    for expected in [content_type, cipher, key_transport] {
        assert!(printed.contains(expected), "{expected} missing from:\n{printed}");
    }
}

#[test]
fn openssl_decrypts_enveloped_aes256_cbc_for_pkcs1_v15_recipient() {
    encrypt_and_decrypt_with_openssl(false, false);
}

#[test]
fn openssl_decrypts_auth_enveloped_aes256_gcm_for_pkcs1_v15_recipient() {
    encrypt_and_decrypt_with_openssl(false, true);
}

#[test]
fn openssl_decrypts_enveloped_aes256_cbc_for_rsa_oaep_recipient() {
    encrypt_and_decrypt_with_openssl(true, false);
}

#[test]
fn openssl_decrypts_auth_enveloped_aes256_gcm_for_rsa_oaep_recipient() {
    encrypt_and_decrypt_with_openssl(true, true);
}

#[test]
fn every_recipient_decrypts_and_one_without_gcm_means_cbc_for_all() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "keyEncipherment");
    let bob = pki.issue_oaep("bob", "bob@example.org");
    let recipients = [
        RecipientCert::parse(&alice.cert_pem()).unwrap().with_auth_enveloped(true),
        RecipientCert::parse(&bob.cert_pem()).unwrap(),
    ];
    assert_eq!(smime::choose_content_encryption(&recipients), ContentEncryption::EnvelopedAes256Cbc);
    let protected = smime::encrypt(ENTITY, &recipients).unwrap();
    assert!(header_block(&protected).contains("smime-type=enveloped-data"));
    assert_eq!(openssl_decrypt(&pki, &alice, &protected, "alice"), to_crlf(ENTITY));
    assert_eq!(openssl_decrypt(&pki, &bob, &protected, "bob"), to_crlf(ENTITY));
}

#[test]
fn expired_and_unsuitable_recipient_certificates_are_refused() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "keyEncipherment");
    let recipient = RecipientCert::parse(&alice.cert_pem()).unwrap();
    let next_year = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let err = smime::encrypt_at(ENTITY, std::slice::from_ref(&recipient), next_year).unwrap_err();
    assert!(
        matches!(err, SmimeError::RecipientUnusable { reason: carepost_secure::keys::Unusable::Expired(_), .. }),
        "{err}"
    );
    let last_year = time::OffsetDateTime::now_utc() - time::Duration::days(365);
    let err = smime::encrypt_at(ENTITY, &[recipient], last_year).unwrap_err();
    assert!(
        matches!(err, SmimeError::RecipientUnusable { reason: carepost_secure::keys::Unusable::NotYetValid(_), .. }),
        "{err}"
    );

    let signing_only = pki.issue("carol", "carol@example.org", LeafKey::Rsa, "digitalSignature");
    let recipient = RecipientCert::parse(&signing_only.cert_pem()).unwrap();
    let err = smime::encrypt(ENTITY, &[recipient]).unwrap_err();
    assert!(
        matches!(err, SmimeError::RecipientUnusable { reason: carepost_secure::keys::Unusable::NoKeyEncipherment, .. }),
        "{err}"
    );
    assert!(matches!(smime::encrypt(ENTITY, &[]), Err(SmimeError::NoRecipients)));
}

/// Has `openssl cms -verify` check `message` against the test CA and returns the signed content.
fn openssl_verify(pki: &Pki, message: &[u8], name: &str) -> Vec<u8> {
    let input = pki.path(&format!("{name}.eml"));
    let output = pki.path(&format!("{name}.out"));
    std::fs::write(&input, message).unwrap();
    run_ok(
        openssl(pki.dir.path())
            .arg("cms")
            .arg("-verify")
            .arg("-in")
            .arg(&input)
            .arg("-CAfile")
            .arg(pki.path("ca.pem"))
            .arg("-out")
            .arg(&output),
    );
    // The legacy `smime` command must accept it too.
    run_ok(
        openssl(pki.dir.path())
            .arg("smime")
            .arg("-verify")
            .arg("-in")
            .arg(&input)
            .arg("-CAfile")
            .arg(pki.path("ca.pem"))
            .arg("-out")
            .arg(pki.path(&format!("{name}.smime.out"))),
    );
    std::fs::read(&output).unwrap()
}

fn sign_and_verify_with_openssl(key: LeafKey) {
    let pki = Pki::new();
    let clinic = pki.issue("clinic", "clinic@example.org", key, "digitalSignature,keyEncipherment");
    let signer = SignerIdentity::from_pem_or_der(&clinic.cert_pem(), &clinic.key_pem()).unwrap();
    let signed = smime::sign(ENTITY, &signer).unwrap();
    let headers = header_block(&signed);
    assert!(headers.contains("multipart/signed") && headers.contains("micalg=sha-256"), "{headers}");

    let message = join_protected(OUTER, &signed);
    let content = openssl_verify(&pki, &message, "signed");
    assert_eq!(to_crlf(&content), to_crlf(ENTITY));

    // carepost reads its own signature back, chain included.
    let anchors = [TrustAnchor::parse(&pki.ca_pem()).unwrap()];
    let verified = smime::verify(&message, &anchors).unwrap();
    assert_eq!(verified.chain, ChainStatus::Trusted);
    assert_eq!(verified.content, to_crlf(ENTITY));
    assert!(verified.capabilities.supports_aes256_gcm() && verified.capabilities.supports_aes256_cbc());
    assert!(verified.certificate.has_email("clinic@example.org"));
    assert!(verified.signing_time.is_some());
}

#[test]
fn openssl_verifies_rsa_signature() {
    sign_and_verify_with_openssl(LeafKey::Rsa);
}

#[test]
fn openssl_verifies_ecdsa_p256_signature() {
    sign_and_verify_with_openssl(LeafKey::EcP256);
}

#[test]
fn signed_then_encrypted_message_decrypts_and_verifies_with_openssl() {
    let pki = Pki::new();
    let clinic = pki.issue("clinic", "clinic@example.org", LeafKey::EcP256, "digitalSignature");
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "keyEncipherment");
    let signer = SignerIdentity::from_pem_or_der(&clinic.cert_pem(), &clinic.key_pem()).unwrap();
    let recipient = RecipientCert::parse(&alice.cert_pem()).unwrap().with_auth_enveloped(true);
    let protected = smime::sign_and_encrypt(ENTITY, &signer, &[recipient]).unwrap();
    let message = join_protected(OUTER, &protected);
    let inner = openssl_decrypt(&pki, &alice, &message, "outer");
    let content = openssl_verify(&pki, &inner, "inner");
    assert_eq!(to_crlf(&content), to_crlf(ENTITY));
}

#[test]
fn signer_key_must_match_certificate() {
    let pki = Pki::new();
    let clinic = pki.issue("clinic", "clinic@example.org", LeafKey::Rsa, "digitalSignature");
    let other = pki.issue("other", "other@example.org", LeafKey::Rsa, "digitalSignature");
    let err = SignerIdentity::from_pem_or_der(&clinic.cert_pem(), &other.key_pem()).unwrap_err();
    assert!(matches!(err, SmimeError::SigningKey(_)), "{err}");
}

/// Signs ENTITY with an openssl command and returns the whole signed message.
fn openssl_signed(pki: &Pki, leaf: &Leaf, command: &str, extra: &[&str], name: &str) -> Vec<u8> {
    let input = pki.path(&format!("{name}.in"));
    let output = pki.path(&format!("{name}.eml"));
    std::fs::write(&input, ENTITY).unwrap();
    run_ok(
        openssl(pki.dir.path())
            .arg(command)
            .arg("-sign")
            .arg("-in")
            .arg(&input)
            .arg("-signer")
            .arg(&leaf.cert)
            .arg("-inkey")
            .arg(&leaf.key)
            .arg("-out")
            .arg(&output)
            .args(extra),
    );
    std::fs::read(&output).unwrap()
}

fn assert_carepost_verifies(pki: &Pki, message: &[u8], email: &str) {
    let anchors = [TrustAnchor::parse(&pki.ca_pem()).unwrap()];
    let verified = smime::verify(message, &anchors).unwrap();
    assert_eq!(verified.chain, ChainStatus::Trusted);
    assert!(verified.certificate.has_email(email), "{:?}", verified.certificate.emails);
    assert!(!verified.capabilities.algorithms.is_empty(), "openssl advertises SMIMECapabilities");
    let signature_only = smime::verify(message, &[]).unwrap();
    assert_eq!(signature_only.chain, ChainStatus::NotChecked);
}

#[test]
fn carepost_verifies_openssl_cms_detached_rsa_signature() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "digitalSignature");
    let message = openssl_signed(&pki, &alice, "cms", &[], "cms");
    assert_carepost_verifies(&pki, &message, "alice@example.org");
    let verified = smime::verify(&message, &[]).unwrap();
    assert_eq!(verified.certificate.der(), RecipientCert::parse(&alice.cert_pem()).unwrap().info().der());
}

#[test]
fn carepost_verifies_openssl_cms_opaque_signature() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "digitalSignature");
    let message = openssl_signed(&pki, &alice, "cms", &["-nodetach"], "opaque");
    assert!(header_block(&message).contains("application/pkcs7-mime"));
    assert_carepost_verifies(&pki, &message, "alice@example.org");
}

#[test]
fn carepost_verifies_openssl_streamed_ber_signature() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "digitalSignature");
    // -stream makes openssl write indefinite-length BER.
    let message = openssl_signed(&pki, &alice, "cms", &["-nodetach", "-stream"], "ber");
    assert_carepost_verifies(&pki, &message, "alice@example.org");
    let verified = smime::verify(&message, &[]).unwrap();
    assert_eq!(to_crlf(&verified.content), to_crlf(ENTITY));
}

#[test]
fn carepost_verifies_openssl_smime_signature() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "digitalSignature");
    let message = openssl_signed(&pki, &alice, "smime", &[], "smime");
    assert_carepost_verifies(&pki, &message, "alice@example.org");
}

#[test]
fn carepost_verifies_openssl_ecdsa_signature() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::EcP256, "digitalSignature");
    let message = openssl_signed(&pki, &alice, "cms", &[], "ecdsa");
    assert_carepost_verifies(&pki, &message, "alice@example.org");
}

#[test]
fn one_altered_byte_is_rejected() {
    let pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "digitalSignature");
    let message = openssl_signed(&pki, &alice, "cms", &[], "tamper");
    let position = message.windows(9).position(|w| w == b"potassium").unwrap();
    let mut altered = message.clone();
    altered[position] = b'P';
    let err = smime::verify(&altered, &[]).unwrap_err();
    assert!(matches!(err, SmimeError::DigestMismatch), "{err}");
    // openssl agrees that the altered message is bad.
    std::fs::write(pki.path("altered.eml"), &altered).unwrap();
    let status =
        run_status(openssl(pki.dir.path()).args(["cms", "-verify", "-in", "altered.eml", "-CAfile", "ca.pem"]));
    assert!(!status.status.success());
}

#[test]
fn untrusted_chain_is_rejected_when_anchors_are_given() {
    let pki = Pki::new();
    let other_pki = Pki::new();
    let alice = pki.issue("alice", "alice@example.org", LeafKey::Rsa, "digitalSignature");
    let message = openssl_signed(&pki, &alice, "cms", &[], "untrusted");
    let anchors = [TrustAnchor::parse(&other_pki.ca_pem()).unwrap()];
    let err = smime::verify(&message, &anchors).unwrap_err();
    assert!(matches!(err, SmimeError::Untrusted(_)), "{err}");
}
