//! Portal packaging against a real store, key ring and blob directory: what is kept is
//! sealed, the notices carry no PHI, and withdrawal shreds the content.

use std::sync::Arc;

use carepost_model::{Address, TenantId};
use carepost_secure::portal::{PickupRequest, Portal, PortalError, PortalSettings, Withdrawal, content_object};
use carepost_store::Store;
use carepost_vault::{BlobStore, KeyRing, LocalDirBlobStore, MasterKey};

const MESSAGE: &str = "From: Dr. Alice Carter <alice@clinic.example.org>\r\n\
To: Pat Doe <pat@example.net>, Sam Roe <sam@example.com>\r\n\
Cc: nurse@clinic.example.org\r\n\
Subject: Lab results for Pat Doe MARKER-SUBJ\r\n\
Message-ID: <m1@clinic.example.org>\r\n\
\r\n\
Your HbA1c is 7.2%. SSN 078-05-1120. MARKER-BODY\r\n";

fn settings(expiry_secs: i64) -> PortalSettings {
    PortalSettings {
        public_url: "https://portal.example.org".into(),
        organization: "Carter Clinic".into(),
        expiry_secs,
        hostname: "mx.example.org".into(),
    }
}

async fn parts(dir: &std::path::Path) -> (Store, Arc<KeyRing>, Arc<dyn BlobStore>) {
    let store = Store::open(&dir.join("p.db")).await.unwrap();
    let ring = Arc::new(KeyRing::new(MasterKey::generate().unwrap()));
    store.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalDirBlobStore::open(dir.join("blobs")).unwrap());
    (store, ring, blobs)
}

async fn portal(dir: &std::path::Path) -> (Portal, Store) {
    let (store, ring, blobs) = parts(dir).await;
    (Portal::new(store.clone(), ring, blobs, settings(3600)), store)
}

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries.flatten().map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()
    })
}

fn link(notice: &[u8], path: &str) -> String {
    let text = String::from_utf8_lossy(notice);
    let start = text.find(&format!("https://portal.example.org{path}")).expect("link in notice");
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn deliver_keeps_a_sealed_copy_and_returns_notices_without_phi() {
    let dir = tempfile::tempdir().unwrap();
    let (portal, store) = portal(dir.path()).await;
    let tenant = TenantId::default();
    let sender = Address::parse("alice@clinic.example.org").unwrap();
    let recipient = Address::parse("pat@example.net").unwrap();
    let pickup = portal
        .deliver(PickupRequest {
            tenant: &tenant,
            source_message: "Q1",
            source_recipient: None,
            sender: Some(&sender),
            recipient: &recipient,
            message: MESSAGE.as_bytes(),
            reveal_subject: false,
            passphrase_hash: None,
        })
        .await
        .unwrap();

    let note = String::from_utf8(pickup.notification.message.clone()).unwrap();
    assert!(note.contains("Subject: Secure message from Carter Clinic"), "{note}");
    assert!(note.contains("From: \"Carter Clinic\" <no-reply@clinic.example.org>"), "{note}");
    assert!(note.contains("can be read until"), "{note}");
    for phi in ["MARKER", "HbA1c", "078-05-1120", "Lab results", "Pat Doe"] {
        assert!(!note.contains(phi), "{phi} in the notification");
    }
    assert_eq!(pickup.notification.envelope.recipients[0].address, recipient);
    assert_eq!(pickup.notification.envelope.mail_from, None);
    let receipt = pickup.receipt.as_ref().unwrap();
    assert_eq!(receipt.envelope.recipients[0].address, sender);
    let receipt_text = String::from_utf8_lossy(&receipt.message);
    assert!(receipt_text.contains("p•••@example.net") || receipt_text.contains("=E2=80=A2"), "{receipt_text}");
    assert!(!receipt_text.contains("MARKER"));

    // The recipient's link opens the message; the sender's link is another purpose.
    let pickup_link = link(&pickup.notification.message, "/p/m/");
    let token = pickup_link.rsplit('/').next().unwrap();
    let (purpose, message) = portal.resolve(token).await.unwrap().unwrap();
    assert_eq!(purpose, "pickup");
    assert_eq!(message.recipient, recipient);
    let env = message.envelope.clone().unwrap();
    assert_eq!(env.from, "Dr. Alice Carter <alice@clinic.example.org>");
    assert!(env.subject.contains("MARKER-SUBJ"));
    assert_eq!(
        env.others.iter().map(Address::as_str).collect::<Vec<_>>(),
        ["sam@example.com", "nurse@clinic.example.org"]
    );
    assert_eq!(portal.body(&message).await.unwrap(), MESSAGE.as_bytes());
    let sender_token = link(&receipt.message, "/p/s/");
    assert_eq!(portal.resolve(sender_token.rsplit('/').next().unwrap()).await.unwrap().unwrap().0, "sender");
    assert!(portal.resolve("x".repeat(43).as_str()).await.unwrap().is_none());

    portal.record_open(&message, Some("192.0.2.7".parse().unwrap()), "Mozilla/5.0 test").await.unwrap();
    let opens = portal.opens(&message).await.unwrap();
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0].ip, Some("192.0.2.7".parse().unwrap()));

    store.close().await;
    for needle in ["MARKER", "pat@example.net", "078-05-1120", "192.0.2.7", "Mozilla"] {
        let found = carepost_testkit::files_containing(dir.path(), needle.as_bytes());
        assert!(found.is_empty(), "{needle} readable at rest in {found:?}");
    }
}

#[tokio::test]
async fn withdrawal_shreds_the_content_but_keeps_the_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ring, blobs) = parts(dir.path()).await;
    let portal = Portal::new(store.clone(), ring.clone(), blobs, settings(3600));
    let tenant = TenantId::default();
    let recipient = Address::parse("pat@example.net").unwrap();
    let pickup = portal
        .deliver(PickupRequest {
            tenant: &tenant,
            source_message: "Q2",
            source_recipient: None,
            sender: None,
            recipient: &recipient,
            message: MESSAGE.as_bytes(),
            reveal_subject: true,
            passphrase_hash: None,
        })
        .await
        .unwrap();
    assert!(pickup.receipt.is_none(), "no sender, no receipt");
    assert!(
        String::from_utf8_lossy(&pickup.notification.message).contains("MARKER-SUBJ"),
        "policy allowed the real subject"
    );
    let id = pickup.id.to_string();
    let message = portal.message(&id).await.unwrap();
    portal.record_open(&message, None, "agent").await.unwrap();

    assert!(portal.withdraw(&id, Withdrawal::Retracted, "cli").await.unwrap());
    assert!(!portal.withdraw(&id, Withdrawal::Expired, "expiry").await.unwrap(), "once");
    let withdrawn = portal.message(&id).await.unwrap();
    assert_eq!(withdrawn.row.state, "retracted");
    assert!(withdrawn.envelope.is_none());
    assert!(matches!(portal.body(&withdrawn).await, Err(PortalError::Withdrawn)));
    assert!(matches!(portal.body(&message).await, Err(PortalError::Withdrawn)), "a stale handle cannot read either");
    assert!(store.portal_message(&id).await.unwrap().is_some());
    assert_eq!(portal.opens(&withdrawn).await.unwrap().len(), 1, "opens outlive the content");
    assert_eq!(files_under(&dir.path().join("blobs")), 0, "sealed copy removed");
    let key = store.data_key(&ring, &TenantId::default(), &content_object(&id)).await;
    assert!(matches!(key, Err(carepost_store::StoreError::NotFound(_))), "data key shredded");
}

#[tokio::test]
async fn the_sweep_expires_messages_whose_time_ran_out() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ring, blobs) = parts(dir.path()).await;
    let live = Portal::new(store.clone(), ring.clone(), blobs.clone(), settings(3600));
    // A portal whose expiry is zero makes messages that are due at once.
    let short = Portal::new(store.clone(), ring, blobs, settings(0));
    let tenant = TenantId::default();
    let recipient = Address::parse("pat@example.net").unwrap();
    let request = PickupRequest {
        tenant: &tenant,
        source_message: "Q3",
        source_recipient: None,
        sender: None,
        recipient: &recipient,
        message: MESSAGE.as_bytes(),
        reveal_subject: false,
        passphrase_hash: None,
    };
    let kept = live.deliver(request).await.unwrap().id.to_string();
    let due = short.deliver(request).await.unwrap().id.to_string();
    assert_eq!(live.sweep_expired().await.unwrap(), vec![due.clone()]);
    assert_eq!(live.message(&due).await.unwrap().row.state, "expired");
    assert!(live.message(&kept).await.unwrap().is_active());
    assert_eq!(live.messages_for(&tenant, &recipient).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_hand_over_audits_the_copy_and_names_each_notice_by_its_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ring, blobs) = parts(dir.path()).await;
    store.load_system_keys(&ring).await.unwrap();
    let audit =
        carepost_audit::Audit::new(store.clone(), carepost_audit::CheckpointKey::from_ring(&ring).unwrap(), 100, None);
    let portal = Portal::new(store.clone(), ring, blobs, settings(3600));
    let tenant = TenantId::default();
    let sender = Address::parse("alice@clinic.example.org").unwrap();
    let recipient = Address::parse("pat@example.net").unwrap();
    let request = PickupRequest {
        tenant: &tenant,
        source_message: "Q4",
        source_recipient: Some(0),
        sender: Some(&sender),
        recipient: &recipient,
        message: MESSAGE.as_bytes(),
        reveal_subject: false,
        passphrase_hash: None,
    };
    let notices = portal.hand_over(request, &audit).await.unwrap();
    // The recipient's notification first, then the sender's receipt.
    let to: Vec<&str> = notices.iter().map(|n| n.envelope.recipients[0].address.as_str()).collect();
    assert_eq!(to, vec!["pat@example.net", "alice@clinic.example.org"]);
    for notice in &notices {
        let text = String::from_utf8_lossy(&notice.message);
        assert!(notice.message_id.starts_with('<') && notice.message_id.ends_with(".portal@mx.example.org>"));
        assert!(text.contains(&format!("Message-ID: {}", notice.message_id)), "{text}");
    }
    assert_ne!(notices[0].message_id, notices[1].message_id);

    let records = store.audit_records_latest(10).await.unwrap();
    let stored = records.iter().find(|r| r.action == "portal.store").expect("a portal.store record");
    assert!(stored.details.contains("Q4"), "{}", stored.details);
    assert!(portal.message(&stored.target).await.unwrap().is_active());

    // Nothing is due yet: the expiry job shreds nothing and audits nothing.
    portal.expire_due(&audit).await;
    let after = store.audit_records_latest(10).await.unwrap();
    assert!(after.iter().all(|r| r.action != "portal.expire"));
}
