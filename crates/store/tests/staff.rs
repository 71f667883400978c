//! The store's staff functions, on SQLite and on PostgreSQL.

mod support;

use carepost_store::StoreError;
use carepost_store::staff::*;
use support::Db;

use carepost_model::TenantId;
use carepost_store::accounts::{NewAccount, Role};
use carepost_vault::{KeyRing, MasterKey};

async fn staff_state_lockout_ips_keys_and_settings(db: Db) {
    let store = db.store.clone();
    let ring = KeyRing::new(MasterKey::generate().unwrap());
    store.load_system_keys(&ring).await.unwrap();
    store.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
    let account = store
        .create_account(
            &ring,
            NewAccount {
                tenant: TenantId::default(),
                login: "admin@clinic.example",
                role: Role::Admin,
                addresses: &[],
                password_hash: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.account_by_id(&ring, &account.id).await.unwrap().unwrap().role, Role::Admin);
    store.set_account_role(&account.id, Role::Compliance).await.unwrap();
    assert_eq!(store.account_by_id(&ring, &account.id).await.unwrap().unwrap().role, Role::Compliance);

    let auth = store.staff_auth(&account.id).await.unwrap().unwrap();
    assert!(!auth.has_mfa());
    let policy = Lockout { failures: 3, window: 1_000_000, lock_for: 60 };
    for n in 1..3 {
        assert_eq!(store.staff_signin_failed(&account.id, 1000, policy).await.unwrap().failures, n);
    }
    assert_eq!(store.staff_auth(&account.id).await.unwrap().unwrap().failures, 2);
    store
        .insert_staff_session(
            vec![7],
            StaffSessionRow {
                account_id: account.id.clone(),
                stage: "full".into(),
                ceremony: None,
                created_at: 1,
                last_seen_at: 1,
                expires_at: i64::MAX,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.staff_signin_failed(&account.id, 1000, policy).await.unwrap().locked_until, Some(1060));
    let auth = store.staff_auth(&account.id).await.unwrap().unwrap();
    assert!(auth.locked_at(1059) && !auth.locked_at(1060));
    assert!(store.staff_session(&[7]).await.unwrap().is_none(), "the lock ends the account's sessions");
    store.staff_unlock(&account.id).await.unwrap();
    assert_eq!(store.staff_auth(&account.id).await.unwrap().unwrap().locked_until, None);

    store.set_staff_totp(&account.id, Some(vec![1, 2]), false, 5).await.unwrap();
    store.set_staff_totp(&account.id, None, true, 6).await.unwrap();
    assert!(store.staff_auth(&account.id).await.unwrap().unwrap().has_mfa());
    assert!(store.use_staff_totp_step(&account.id, 10).await.unwrap());
    assert!(!store.use_staff_totp_step(&account.id, 10).await.unwrap(), "a step is accepted once");

    let key = SecurityKeyRow {
        id: "K1".into(),
        name: "blue key".into(),
        credential_id: vec![9; 16],
        credential: vec![1],
        created_at: 1,
        last_used_at: None,
    };
    store.add_staff_security_key(&account.id, key.clone()).await.unwrap();
    assert!(matches!(
        store.add_staff_security_key(&account.id, SecurityKeyRow { id: "K2".into(), ..key }).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.staff_auth(&account.id).await.unwrap().unwrap().security_keys, 1);
    store.staff_reset_mfa(&account.id).await.unwrap();
    assert!(!store.staff_auth(&account.id).await.unwrap().unwrap().has_mfa());

    assert_eq!(
        store.note_staff_ip(&account.id, vec![1], 1).await.unwrap(),
        IpSeen { new_address: true, seen_before: false }
    );
    assert_eq!(
        store.note_staff_ip(&account.id, vec![1], 2).await.unwrap(),
        IpSeen { new_address: false, seen_before: true }
    );
    assert_eq!(
        store.note_staff_ip(&account.id, vec![2], 3).await.unwrap(),
        IpSeen { new_address: true, seen_before: true }
    );

    assert!(!store.mfa_required("default").await.unwrap());
    store.set_org_setting("default", REQUIRE_MFA, "on", "cli", 1).await.unwrap();
    assert!(store.mfa_required("default").await.unwrap());
    assert!(!store.mfa_required("other").await.unwrap());
}

backends!(staff_state_lockout_ips_keys_and_settings);
