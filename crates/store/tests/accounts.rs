//! The store's accounts functions, on SQLite and on PostgreSQL.

mod support;

use carepost_model::{Address, TenantId, Timestamp};
use carepost_store::accounts::*;
use carepost_store::{Store, StoreError};
use carepost_vault::KeyRing;
use support::Db;

use carepost_vault::MasterKey;

async fn ring_for(store: &Store) -> KeyRing {
    let ring = KeyRing::new(MasterKey::generate().unwrap());
    store.load_system_keys(&ring).await.unwrap();
    store.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
    ring
}

async fn accounts_are_sealed_unique_and_found_by_login(db: Db) {
    let store = db.store.clone();
    let ring = ring_for(&store).await;
    let jane = Address::parse("Jane.Roe@Clinic.example").unwrap();
    let created = store
        .create_account(
            &ring,
            NewAccount {
                tenant: TenantId::default(),
                login: "Jane.Roe@clinic.example",
                role: DEFAULT_ROLE,
                addresses: &[jane.clone(), Address::parse("front-desk@clinic.example").unwrap()],
                password_hash: Some("$argon2id$fake".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.addresses.len(), 2);
    assert!(created.may_send_as(&Address::parse("jane.roe@clinic.example").unwrap()));
    assert!(!created.may_send_as(&Address::parse("boss@clinic.example").unwrap()));
    let found = store.account_credentials(&ring, "jane.roe@CLINIC.example").await.unwrap().unwrap();
    assert_eq!(found.account, created);
    assert_eq!(found.password_hash.as_deref(), Some("$argon2id$fake"));
    let dup = store
        .create_account(
            &ring,
            NewAccount {
                tenant: TenantId::default(),
                login: "JANE.ROE@clinic.example",
                role: Role::Sender,
                addresses: &[],
                password_hash: None,
            },
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    store.set_account_disabled(&created.id, true).await.unwrap();
    store.set_password_hash(&created.id, Some("$argon2id$other".into())).await.unwrap();
    let found = store.account_credentials(&ring, "jane.roe@clinic.example").await.unwrap().unwrap();
    assert!(found.account.disabled);
    assert_eq!(found.password_hash.as_deref(), Some("$argon2id$other"));

    let hash = app_password_hash(&ring, &TenantId::default(), "abcd-efgh").unwrap();
    assert_eq!(hash, app_password_hash(&ring, &TenantId::default(), "ABCD EFGH").unwrap());
    let app = store.add_app_password(&created.id, "phone", hash.clone()).await.unwrap();
    assert!(matches!(store.add_app_password(&created.id, "phone", hash).await, Err(StoreError::Conflict(_))));
    store.touch_app_password(&app).await.unwrap();
    let found = store.account_credentials(&ring, "jane.roe@clinic.example").await.unwrap().unwrap();
    assert_eq!(found.app_passwords.len(), 1);
    assert!(found.app_passwords[0].last_used_at.is_some());
    assert!(store.revoke_app_password(&created.id, "phone").await.unwrap());
    assert!(!store.revoke_app_password(&created.id, "phone").await.unwrap());
    assert!(
        store.account_credentials(&ring, "jane.roe@clinic.example").await.unwrap().unwrap().app_passwords.is_empty()
    );
    assert_eq!(store.accounts(&ring).await.unwrap().len(), 1);
    // The account's own data key opens what is sealed for it, through any connection.
    let sealed = store.account_key(&ring, &created).await.unwrap().seal(b"note").unwrap();
    let other = db.reopen().await;
    assert_eq!(other.account_key(&ring, &created).await.unwrap().open(&sealed).unwrap(), b"note");
    other.close().await;
    store.close().await;
    assert!(!db.holds(b"clinic.example"));
}

async fn blocks_expire_and_are_replaced(db: Db) {
    let store = db.store.clone();
    let now = Timestamp::now().as_micros();
    let block = |network: &str, until: Option<i64>| BlockRow {
        network: network.into(),
        until,
        reason: "test".into(),
        created_by: "smtp".into(),
        created_at: now,
    };
    store.put_block(block("192.0.2.7", Some(now + 60_000_000))).await.unwrap();
    store.put_block(block("198.51.100.0/24", None)).await.unwrap();
    store.put_block(block("203.0.113.9", Some(now - 1))).await.unwrap();
    let active: Vec<_> = store.active_blocks(now).await.unwrap().into_iter().map(|b| b.network).collect();
    assert_eq!(active, vec!["192.0.2.7", "198.51.100.0/24"]);
    store.put_block(block("192.0.2.7", None)).await.unwrap();
    assert_eq!(store.active_blocks(now + 120_000_000).await.unwrap().len(), 2);
    assert!(store.remove_block("192.0.2.7").await.unwrap());
    assert!(!store.remove_block("192.0.2.7").await.unwrap());
    assert_eq!(store.active_blocks(now).await.unwrap().len(), 1);
}

backends!(accounts_are_sealed_unique_and_found_by_login, blocks_expire_and_are_replaced);
