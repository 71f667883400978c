//! The store's keys functions, on SQLite and on PostgreSQL.

mod support;

use carepost_model::TenantId;
use carepost_store::keys::*;
use carepost_store::{Store, StoreError};
use carepost_vault::{KeyRing, MasterKey, SecretPurpose};
use support::Db;

async fn seal_object(store: &Store, ring: &KeyRing, tenant: &TenantId, object: &str, plain: &[u8]) -> Vec<u8> {
    let (dk, wrapped) = ring.new_data_key(tenant, object).unwrap();
    let (t, o) = (tenant.clone(), object.to_owned());
    store.write(move |tx| Box::pin(async move { put_data_key(tx, &t, &o, &wrapped).await })).await.unwrap();
    dk.seal(plain).unwrap()
}

async fn secrets_persist_across_restarts_and_rotation_keeps_data_readable(db: Db) {
    let store = db.store.clone();
    let master = MasterKey::generate().unwrap();
    let master_b64 = master.to_base64();
    let ring = KeyRing::new(master);
    let t = TenantId::default();
    store.load_tenant_keys(&ring, &t).await.unwrap();
    store.load_system_keys(&ring).await.unwrap();
    let sealed: Vec<_> = futures::future::join_all((0..1500).map(|i| {
        let (store, ring, t) = (&store, &ring, &t);
        async move { seal_object(store, ring, t, &format!("o{i}"), format!("marker {i}").as_bytes()).await }
    }))
    .await;
    let index = ring.blind_index(&t, "rcpt", b"a@b.org").unwrap();

    let rotation = store.rotate_kek(&ring, &t).await.unwrap();
    assert_eq!((rotation.from_version, rotation.to_version, rotation.rewrapped), (1, 2, 1500));
    store.close().await;

    // A fresh process with the same master key reads everything, old and new.
    let store = db.reopen().await;
    let ring = KeyRing::new(MasterKey::from_base64(&master_b64).unwrap());
    store.load_tenant_keys(&ring, &t).await.unwrap();
    assert_eq!(ring.active_version(t.as_str(), SecretPurpose::Kek), Some(2));
    for i in [0, 777, 1499] {
        let dk = store.data_key(&ring, &t, &format!("o{i}")).await.unwrap();
        assert_eq!(dk.open(&sealed[i]).unwrap(), format!("marker {i}").as_bytes());
    }
    assert_eq!(ring.blind_index(&t, "rcpt", b"a@b.org").unwrap(), index, "blind index survives rotation");

    // shredding makes one object unreadable and leaves the others
    assert!(store.shred(&t, "o777").await.unwrap());
    assert!(matches!(store.data_key(&ring, &t, "o777").await, Err(StoreError::NotFound(_))));
    assert!(store.data_key(&ring, &t, "o778").await.is_ok());

    // master rotation: the old master key no longer opens the store, the new one does
    let new_master = MasterKey::generate().unwrap();
    let new_b64 = new_master.to_base64();
    store.rotate_master_key(&ring, &new_master).await.unwrap();
    assert_eq!(store.stored_master_key_id().await.unwrap(), Some(new_master.key_id()));
    let old_ring = KeyRing::new(MasterKey::from_base64(&master_b64).unwrap());
    assert!(store.load_tenant_keys(&old_ring, &t).await.is_err());
    let new_ring = KeyRing::new(MasterKey::from_base64(&new_b64).unwrap());
    store.load_tenant_keys(&new_ring, &t).await.unwrap();
    let dk = store.data_key(&new_ring, &t, "o0").await.unwrap();
    assert_eq!(dk.open(&sealed[0]).unwrap(), b"marker 0");
}

backends!(secrets_persist_across_restarts_and_rotation_keeps_data_readable);
