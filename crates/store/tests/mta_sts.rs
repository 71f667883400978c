//! The store's mta sts functions, on SQLite and on PostgreSQL.

mod support;

use carepost_model::TenantId;
use carepost_store::mta_sts::*;
use support::Db;

use carepost_vault::{KeyRing, MasterKey};

async fn policies_are_kept_until_they_expire_and_replaced_whole(db: Db) {
    let store = db.store.clone();
    let ring = KeyRing::new(MasterKey::generate().unwrap());
    let tenant = TenantId::default();
    store.load_tenant_keys(&ring, &tenant).await.unwrap();
    let object = "mta-sts/AB".to_owned();
    let (key, wrapped) = ring.new_data_key(&tenant, &object).unwrap();
    let row = StsPolicyRow {
        domain_index: vec![0xab],
        policy: key.seal_field("policy", b"one").unwrap(),
        fetched_at: 10,
        expires_at: 100,
    };
    store.put_mta_sts_policy(row, tenant.clone(), object.clone(), wrapped).await.unwrap();
    let got = store.mta_sts_policy(&[0xab], 99).await.unwrap().unwrap();
    let key = store.data_key(&ring, &tenant, &object).await.unwrap();
    assert_eq!(key.open_field("policy", &got.policy).unwrap(), b"one");
    assert!(store.mta_sts_policy(&[0xab], 100).await.unwrap().is_none(), "expired");
    assert!(store.mta_sts_policy(&[0xcd], 50).await.unwrap().is_none());
    let (key, wrapped) = ring.new_data_key(&tenant, &object).unwrap();
    let row = StsPolicyRow {
        domain_index: vec![0xab],
        policy: key.seal_field("policy", b"two").unwrap(),
        fetched_at: 20,
        expires_at: 200,
    };
    store.put_mta_sts_policy(row, tenant.clone(), object.clone(), wrapped).await.unwrap();
    let got = store.mta_sts_policy(&[0xab], 150).await.unwrap().unwrap();
    let key = store.data_key(&ring, &tenant, &object).await.unwrap();
    assert_eq!(key.open_field("policy", &got.policy).unwrap(), b"two");
}

backends!(policies_are_kept_until_they_expire_and_replaced_whole);
