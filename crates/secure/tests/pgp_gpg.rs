//! PGP/MIME against the real GnuPG: gpg decrypts (and verifies) what carepost
//! encrypts, and keys gpg made expired or revoked are refused.
//!
//! Debian packages needed: gnupg.

mod common;

use carepost_secure::keys::{OpenPgpKey, Unusable};
use carepost_secure::mime::to_crlf;
use carepost_secure::openpgp::{self, PgpMimeError, PgpSigner};
use common::{ENTITY, GpgHome, armored_part, run_ok, run_status};

fn decrypt_with_gpg(home: &GpgHome, entity: &[u8]) -> (Vec<u8>, String) {
    let path = home.dir.path().join("message.asc");
    std::fs::write(&path, armored_part(entity)).unwrap();
    let output = run_ok(home.gpg().args(["--status-fd", "2", "--decrypt"]).arg(&path));
    (output.stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

fn assert_pgp_mime_structure(entity: &[u8]) {
    let text = String::from_utf8_lossy(entity);
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(head.starts_with("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\""), "{head}");
    assert!(text.contains("Content-Type: application/pgp-encrypted\r\n"));
    assert!(text.contains("Version: 1\r\n"));
    assert!(text.contains("Content-Type: application/octet-stream"));
    assert!(!text.replace("\r\n", "").contains('\n'), "bare LF in output");
}

#[test]
fn gpg_decrypts_carepost_pgp_mime() {
    let home = GpgHome::new();
    home.generate("Alice <alice@example.org>", "1y", None);
    let key = OpenPgpKey::parse(&home.export("alice@example.org")).unwrap();
    assert!(key.has_email("alice@example.org"));
    key.usable_for_encryption(time::OffsetDateTime::now_utc()).unwrap();

    let entity = openpgp::encrypt(ENTITY, &[key], None).unwrap();
    assert_pgp_mime_structure(&entity);
    let (plaintext, status) = decrypt_with_gpg(&home, &entity);
    assert_eq!(plaintext, to_crlf(ENTITY));
    assert!(status.contains("DECRYPTION_OKAY"), "{status}");
    assert!(!status.contains("GOODSIG"));
}

#[test]
fn gpg_decrypts_and_verifies_signed_carepost_pgp_mime() {
    let home = GpgHome::new();
    home.generate("Alice <alice@example.org>", "1y", None);
    let clinic_fingerprint = home.generate("Clinic <clinic@example.org>", "1y", None);
    let recipient = OpenPgpKey::parse(&home.export("alice@example.org")).unwrap();
    let signer = PgpSigner::parse(&home.export_secret("clinic@example.org"), "").unwrap();
    assert_eq!(signer.fingerprint(), clinic_fingerprint);

    let entity = openpgp::encrypt(ENTITY, &[recipient], Some(&signer)).unwrap();
    assert_pgp_mime_structure(&entity);
    let (plaintext, status) = decrypt_with_gpg(&home, &entity);
    assert_eq!(plaintext, to_crlf(ENTITY));
    assert!(status.contains("[GNUPG:] GOODSIG"), "{status}");
    assert!(status.contains(&"VALIDSIG".to_string()) && status.contains(&clinic_fingerprint), "{status}");
}

#[test]
fn several_recipients_each_decrypt() {
    let alice_home = GpgHome::new();
    let bob_home = GpgHome::new();
    alice_home.generate("Alice <alice@example.org>", "1y", None);
    bob_home.generate("Bob <bob@example.org>", "1y", None);
    let keys = [
        OpenPgpKey::parse(&alice_home.export("alice@example.org")).unwrap(),
        OpenPgpKey::parse(&bob_home.export("bob@example.org")).unwrap(),
    ];
    let entity = openpgp::encrypt(ENTITY, &keys, None).unwrap();
    assert_eq!(decrypt_with_gpg(&alice_home, &entity).0, to_crlf(ENTITY));
    assert_eq!(decrypt_with_gpg(&bob_home, &entity).0, to_crlf(ENTITY));
}

#[test]
fn expired_key_is_refused() {
    let home = GpgHome::new();
    // Made two years ago with a one-year lifetime: expired today.
    home.generate("Old <old@example.org>", "1y", Some("20200101T000000"));
    let key = OpenPgpKey::parse(&home.export("old@example.org")).unwrap();
    let expires = key.expires.expect("gpg set an expiry");
    assert!(expires < time::OffsetDateTime::now_utc());
    let reason = key.usable_for_encryption(time::OffsetDateTime::now_utc()).unwrap_err();
    assert!(matches!(reason, Unusable::Expired(_)), "{reason}");
    let err = openpgp::encrypt(ENTITY, std::slice::from_ref(&key), None).unwrap_err();
    assert!(matches!(err, PgpMimeError::RecipientUnusable { reason: Unusable::Expired(_), .. }), "{err}");
    // The same key was usable while it was valid.
    let back_then = time::macros::datetime!(2020-06-01 00:00 UTC);
    key.usable_for_encryption(back_then).unwrap();
}

#[test]
fn revoked_key_is_refused() {
    let home = GpgHome::new();
    let fingerprint = home.generate("Gone <gone@example.org>", "1y", None);
    // gpg writes a revocation certificate at key generation; its armor line is
    // escaped with a leading colon so it cannot be imported by accident.
    let revocation_file = home.dir.path().join("openpgp-revocs.d").join(format!("{fingerprint}.rev"));
    let revocation = std::fs::read_to_string(&revocation_file).unwrap().replace(":-----BEGIN", "-----BEGIN");
    let unescaped = home.dir.path().join("revocation.asc");
    std::fs::write(&unescaped, revocation).unwrap();
    run_ok(home.gpg().arg("--import").arg(&unescaped));

    let key = OpenPgpKey::parse(&home.export("gone@example.org")).unwrap();
    assert!(key.revocation.is_some());
    let reason = key.usable_for_encryption(time::OffsetDateTime::now_utc()).unwrap_err();
    assert!(matches!(reason, Unusable::Revoked(_)), "{reason}");
    let err = openpgp::encrypt(ENTITY, &[key], None).unwrap_err();
    assert!(matches!(err, PgpMimeError::RecipientUnusable { reason: Unusable::Revoked(_), .. }), "{err}");
    // gpg agrees: it will not encrypt to the revoked key either.
    let status =
        run_status(home.gpg().args(["--trust-model", "always", "--encrypt", "-r", "gone@example.org"]).arg(&unescaped));
    assert!(!status.status.success());
}

#[test]
fn key_without_encryption_subkey_is_refused() {
    let home = GpgHome::new();
    run_ok(home.gpg().args(["--quick-gen-key", "Signer <signer@example.org>", "ed25519", "sign,cert", "1y"]));
    let key = OpenPgpKey::parse(&home.export("signer@example.org")).unwrap();
    assert_eq!(key.usable_for_encryption(time::OffsetDateTime::now_utc()), Err(Unusable::NoEncryptionKey));
}
