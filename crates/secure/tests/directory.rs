//! The recipient key directory with real keys: certificates issued by openssl, OpenPGP keys
//! made by GnuPG, a signed message made by `openssl cms -sign`.
//!
//! Debian packages needed: openssl, gnupg.

mod common;

use std::sync::Arc;

use carepost_model::{Address, TenantId};
use carepost_secure::directory::{Confirmation, DirectoryError, KeyDirectory, KeyKind, KeyState, LearnOutcome};
use carepost_secure::smime::TrustAnchor;
use carepost_store::Store;
use carepost_vault::{KeyRing, MasterKey};
use common::{GpgHome, LeafKey, Pki, openssl, run_ok};

async fn directory(dir: &std::path::Path) -> KeyDirectory {
    let store = Store::open(&dir.join("keys.db")).await.unwrap();
    let ring = Arc::new(KeyRing::new(MasterKey::generate().unwrap()));
    store.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
    KeyDirectory::new(store, ring, None)
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

#[tokio::test]
async fn imported_keys_are_sealed_listed_found_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = directory(tmp.path()).await;
    let t = TenantId::default();
    let pki = Pki::new();
    let leaf = pki.issue("pat", "Pat.Doe@example.net", LeafKey::Rsa, "digitalSignature,keyEncipherment");
    let gpg = GpgHome::new();
    let fingerprint = gpg.generate("Pat Doe <pat.doe@example.net>", "1y", None);

    let cert_ids = dir.import(&t, &leaf.cert_pem()).await.unwrap();
    let pgp_ids = dir.import(&t, &gpg.export("pat.doe@example.net")).await.unwrap();
    assert_eq!((cert_ids.len(), pgp_ids.len()), (1, 1));
    // Importing the same key again files nothing new.
    assert_eq!(dir.import(&t, &leaf.cert_pem()).await.unwrap(), cert_ids);

    let found = dir.lookup(&t, &addr("PAT.DOE@example.net")).await.unwrap();
    assert_eq!(found.smime.len(), 1);
    assert_eq!(found.pgp.len(), 1);
    assert_eq!(found.pgp[0].fingerprint, fingerprint);
    assert!(dir.lookup(&t, &addr("someone.else@example.net")).await.unwrap().smime.is_empty());

    let listed = dir.list(&t).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|k| k.address == "pat.doe@example.net" && k.unusable.is_none()));
    assert!(listed.iter().any(|k| k.kind == KeyKind::Pgp && k.fingerprint == fingerprint));

    // Keys name their holder: neither the address nor the key is readable at rest.
    let raw = std::fs::read(tmp.path().join("keys.db-wal")).unwrap_or_default();
    let main = std::fs::read(tmp.path().join("keys.db")).unwrap();
    for bytes in [&raw, &main] {
        assert!(!bytes.windows(11).any(|w| w == b"example.net"));
    }

    assert!(dir.remove(&t, &cert_ids[0]).await.unwrap());
    assert!(!dir.remove(&t, &cert_ids[0]).await.unwrap());
    assert!(dir.lookup(&t, &addr("pat.doe@example.net")).await.unwrap().smime.is_empty());
}

#[tokio::test]
async fn expired_revoked_and_unsuitable_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = directory(tmp.path()).await;
    let t = TenantId::default();
    let gpg = GpgHome::new();
    gpg.generate("Old <old@example.net>", "1d", Some("20200101T000000"));
    let e = dir.import(&t, &gpg.export("old@example.net")).await.unwrap_err();
    assert!(matches!(e, DirectoryError::Unusable { .. }), "{e}");

    let pki = Pki::new();
    let signing_only = pki.issue("sig", "sig@example.net", LeafKey::Rsa, "digitalSignature");
    let e = dir.import(&t, &signing_only.cert_pem()).await.unwrap_err();
    assert!(matches!(e, DirectoryError::Unusable { .. }), "{e}");
    assert!(matches!(dir.import(&t, b"not a key").await, Err(DirectoryError::Unrecognized(_))));

    // A key that expires after being stored is no longer offered.
    let soon = GpgHome::new();
    soon.generate("Soon <soon@example.net>", "2d", None);
    dir.import(&t, &soon.export("soon@example.net")).await.unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    assert_eq!(dir.lookup(&t, &addr("soon@example.net")).await.unwrap().pgp.len(), 1);
    assert!(dir.lookup_at(&t, &addr("soon@example.net"), later).await.unwrap().pgp.is_empty());
}

/// `openssl cms -sign` of a small message with `leaf`; returns the signed message.
fn cms_signed(pki: &Pki, leaf: &common::Leaf, name: &str) -> Vec<u8> {
    let input = pki.path("msg.txt");
    std::fs::write(&input, "Content-Type: text/plain\r\n\r\nsigned hello\r\n").unwrap();
    run_ok(
        openssl(pki.dir.path())
            .args(["cms", "-sign", "-in", "msg.txt", "-out", name, "-signer"])
            .arg(&leaf.cert)
            .arg("-inkey")
            .arg(&leaf.key),
    );
    std::fs::read(pki.path(name)).unwrap()
}

#[tokio::test]
async fn certificates_are_learned_from_validly_signed_mail_from_their_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = directory(tmp.path()).await;
    let t = TenantId::default();
    let pki = Pki::new();
    let leaf = pki.issue("dr", "dr.who@partner.example", LeafKey::Rsa, "digitalSignature,keyEncipherment");
    let signed = cms_signed(&pki, &leaf, "signed.eml");

    // Signed by someone else than the sender: not learned.
    let e = dir.learn_from_signed(&t, &signed, &addr("mallory@partner.example"), &[]).await.unwrap_err();
    assert!(matches!(e, DirectoryError::SignerMismatch), "{e}");
    // Altered in transit: not learned.
    let mut altered = signed.clone();
    let pos = altered.windows(5).position(|w| w == b"hello").unwrap();
    altered[pos] = b'j';
    assert!(dir.learn_from_signed(&t, &altered, &addr("dr.who@partner.example"), &[]).await.is_err());

    // Without trust anchors the first certificate is stored, but not used until confirmed.
    let learned = dir.learn_from_signed(&t, &signed, &addr("dr.who@partner.example"), &[]).await.unwrap();
    let LearnOutcome::Learned { id, state: KeyState::Unconfirmed } = learned.clone() else { panic!("{learned:?}") };
    assert!(dir.lookup(&t, &addr("dr.who@partner.example")).await.unwrap().smime.is_empty());
    let listed = dir.list(&t).await.unwrap();
    assert_eq!((listed[0].source.as_str(), listed[0].state), ("learned", KeyState::Unconfirmed));
    // The same certificate again is already known.
    let again = dir.learn_from_signed(&t, &signed, &addr("dr.who@partner.example"), &[]).await.unwrap();
    assert_eq!(again, LearnOutcome::Known { id: id.clone() });

    assert_eq!(dir.confirm(&t, &id).await.unwrap(), Confirmation::Confirmed { was: KeyState::Unconfirmed });
    assert_eq!(dir.confirm(&t, &id).await.unwrap(), Confirmation::AlreadyUsable(KeyState::Confirmed));
    assert_eq!(dir.confirm(&t, "no-such-key").await.unwrap(), Confirmation::NotFound);
    assert_eq!(dir.confirm(&TenantId::new("other").unwrap(), &id).await.unwrap(), Confirmation::NotFound);
    let found = dir.lookup(&t, &addr("dr.who@partner.example")).await.unwrap();
    assert_eq!(found.smime.len(), 1);
    assert_eq!(dir.list(&t).await.unwrap()[0].state, KeyState::Confirmed);
}

#[tokio::test]
async fn a_different_certificate_for_a_known_address_is_held_and_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = directory(tmp.path()).await;
    let t = TenantId::default();
    let pki = Pki::new();
    let known = pki.issue("known", "pat@partner.example", LeafKey::Rsa, "digitalSignature,keyEncipherment");
    let imported = dir.import(&t, &known.cert_pem()).await.unwrap();

    // Someone else's certificate for the same address, even one chaining to the anchors.
    let other = pki.issue("other", "pat@partner.example", LeafKey::Rsa, "digitalSignature,keyEncipherment");
    let signed = cms_signed(&pki, &other, "other.eml");
    let anchors = TrustAnchor::parse_pem_bundle(&pki.ca_pem()).unwrap();
    for anchors in [&[][..], &anchors[..]] {
        let outcome = dir.learn_from_signed(&t, &signed, &addr("pat@partner.example"), anchors).await.unwrap();
        match outcome {
            LearnOutcome::Held { .. } | LearnOutcome::Known { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let listed = dir.list(&t).await.unwrap();
    let held: Vec<_> = listed.iter().filter(|k| k.state == KeyState::Held).collect();
    assert_eq!((listed.len(), held.len()), (2, 1), "{listed:?}");
    // Only the known key is offered to delivery.
    let found = dir.lookup(&t, &addr("pat@partner.example")).await.unwrap();
    assert_eq!(found.smime.len(), 1);
    let known_fp = listed.iter().find(|k| k.id == imported[0]).unwrap().fingerprint.clone();
    assert_eq!(found.smime[0].info().fingerprint_sha256, known_fp);

    // An operator's confirmation makes the held key usable beside the known one.
    assert_eq!(dir.confirm(&t, &held[0].id).await.unwrap(), Confirmation::Confirmed { was: KeyState::Held });
    assert_eq!(dir.lookup(&t, &addr("pat@partner.example")).await.unwrap().smime.len(), 2);

    // The first certificate of an address that chains to the anchors is trusted at once.
    let anchored = pki.issue("new", "new@partner.example", LeafKey::Rsa, "digitalSignature,keyEncipherment");
    let signed = cms_signed(&pki, &anchored, "new.eml");
    let outcome = dir.learn_from_signed(&t, &signed, &addr("new@partner.example"), &anchors).await.unwrap();
    assert!(matches!(outcome, LearnOutcome::Learned { state: KeyState::Trusted, .. }), "{outcome:?}");
    assert_eq!(dir.lookup(&t, &addr("new@partner.example")).await.unwrap().smime.len(), 1);
}
