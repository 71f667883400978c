//! The store's api keys functions, on SQLite and on PostgreSQL.

mod support;

use carepost_model::{TenantId, Timestamp};
use carepost_store::StoreError;
use carepost_store::api_keys::*;
use support::Db;

async fn keys_are_created_found_by_hash_and_revoked(db: Db) {
    let store = db.store.clone();
    let new = NewApiKey {
        tenant: TenantId::default(),
        name: "lab".into(),
        prefix: "cpk_abcd".into(),
        secret_hash: vec![7; 32],
        scopes: vec!["send".into(), "status".into()],
        networks: vec!["10.0.0.0/8".into()],
        rate_per_minute: 60,
        allowed_from: vec!["lab@clinic.example".into(), "@results.example".into()],
        expires_at: None,
    };
    let key = store.create_api_key(new.clone()).await.unwrap();
    assert!(matches!(store.create_api_key(new.clone()).await, Err(StoreError::Conflict(_))));
    let found = store.api_key_by_hash(&[7; 32]).await.unwrap().unwrap();
    assert_eq!(found, key);
    assert!(found.has_scope("send") && !found.has_scope("admin"));
    assert_eq!(found.allowed_from, ["lab@clinic.example", "@results.example"]);
    assert!(found.is_usable(Timestamp::now().as_micros()));
    assert!(store.revoke_api_key(&key.id).await.unwrap());
    assert!(!store.revoke_api_key(&key.id).await.unwrap());
    assert!(!store.api_key(&key.id).await.unwrap().unwrap().is_usable(Timestamp::now().as_micros()));

    store.record_api_message(&key.id, &key.tenant, "M1", Some(vec![1; 32])).await.unwrap();
    store.record_api_message(&key.id, &key.tenant, "M2", None).await.unwrap();
    store.record_api_message(&key.id, &key.tenant, "M3", None).await.unwrap();
    assert!(matches!(
        store.record_api_message(&key.id, &key.tenant, "M4", Some(vec![1; 32])).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.api_message_by_idempotency(&key.id, &[1; 32]).await.unwrap().as_deref(), Some("M1"));
    assert_eq!(store.api_message_tenant("M2").await.unwrap().as_deref(), Some("default"));
    assert_eq!(store.api_message_tenant("M9").await.unwrap(), None);
}

backends!(keys_are_created_found_by_hash_and_revoked);
