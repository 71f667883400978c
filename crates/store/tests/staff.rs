//! The store's staff functions, on SQLite and on PostgreSQL.

mod support;

use carepost_store::StoreError;
use carepost_store::signin::{AccountKind, Lockout, SessionRow};
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
        assert_eq!(store.signin_failed(AccountKind::Staff, &account.id, 1000, policy).await.unwrap().failures, n);
    }
    assert_eq!(store.staff_auth(&account.id).await.unwrap().unwrap().failures, 2);
    store
        .insert_session(
            AccountKind::Staff,
            vec![7],
            SessionRow {
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
    assert_eq!(
        store.signin_failed(AccountKind::Staff, &account.id, 1000, policy).await.unwrap().locked_until,
        Some(1060)
    );
    let auth = store.staff_auth(&account.id).await.unwrap().unwrap();
    assert!(auth.locked_at(1059) && !auth.locked_at(1060));
    assert!(store.session(AccountKind::Staff, &[7]).await.unwrap().is_none(), "the lock ends the account's sessions");
    store.staff_unlock(&account.id).await.unwrap();
    assert_eq!(store.staff_auth(&account.id).await.unwrap().unwrap().locked_until, None);

    store.set_totp(AccountKind::Staff, &account.id, Some(vec![1, 2]), false, 5).await.unwrap();
    store.set_totp(AccountKind::Staff, &account.id, None, true, 6).await.unwrap();
    assert!(store.staff_auth(&account.id).await.unwrap().unwrap().has_mfa());
    assert!(store.use_totp_step(AccountKind::Staff, &account.id, 10).await.unwrap());
    assert!(!store.use_totp_step(AccountKind::Staff, &account.id, 10).await.unwrap(), "a step is accepted once");

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

/// Sessions, security keys and settings live in the store, so any node serves any request.
async fn sessions_and_keys_are_served_by_any_node(db: Db) {
    let (a, b) = (db.store.clone(), db.reopen().await);
    let ring = KeyRing::new(MasterKey::generate().unwrap());
    a.load_system_keys(&ring).await.unwrap();
    a.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
    let account = a
        .create_account(
            &ring,
            NewAccount {
                tenant: TenantId::default(),
                login: "nurse@clinic.example",
                role: Role::Sender,
                addresses: &[],
                password_hash: None,
            },
        )
        .await
        .unwrap();
    let session = |stage: &str| SessionRow {
        account_id: account.id.clone(),
        stage: stage.into(),
        ceremony: None,
        created_at: 1,
        last_seen_at: 1,
        expires_at: 1_000,
    };
    a.insert_session(AccountKind::Staff, vec![1], session("mfa")).await.unwrap();
    a.insert_session(AccountKind::Staff, vec![2], session("full")).await.unwrap();
    b.set_staff_ceremony(&[1], Some("{\"challenge\":1}".into())).await.unwrap();
    b.touch_session(AccountKind::Staff, &[1], 50, Some("full")).await.unwrap();
    let seen = a.session(AccountKind::Staff, &[1]).await.unwrap().unwrap();
    assert_eq!((seen.stage.as_str(), seen.last_seen_at), ("full", 50));
    assert_eq!(seen.ceremony.as_deref(), Some("{\"challenge\":1}"));
    b.set_staff_ceremony(&[1], None).await.unwrap();
    assert_eq!(a.session(AccountKind::Staff, &[1]).await.unwrap().unwrap().ceremony, None);
    assert_eq!(b.end_sessions(AccountKind::Staff, Some(vec![1]), None).await.unwrap(), 1);
    assert!(a.session(AccountKind::Staff, &[1]).await.unwrap().is_none());
    assert_eq!(
        b.end_sessions(AccountKind::Staff, None, Some(account.id.clone())).await.unwrap(),
        1,
        "the account's others"
    );

    let policy = Lockout { failures: 5, window: 1_000_000, lock_for: 60 };
    a.signin_failed(AccountKind::Staff, &account.id, 10, policy).await.unwrap();
    b.signin_failed(AccountKind::Staff, &account.id, 11, policy).await.unwrap();
    assert_eq!(a.staff_auth(&account.id).await.unwrap().unwrap().failures, 2, "counted across nodes");
    b.signin_succeeded(AccountKind::Staff, &account.id).await.unwrap();
    assert_eq!(a.staff_auth(&account.id).await.unwrap().unwrap().failures, 0);

    let key = SecurityKeyRow {
        id: "K1".into(),
        name: "green key".into(),
        credential_id: vec![4; 16],
        credential: vec![1],
        created_at: 1,
        last_used_at: None,
    };
    a.add_staff_security_key(&account.id, key).await.unwrap();
    b.used_staff_security_key("K1", vec![2], 77).await.unwrap();
    let keys = a.staff_security_keys(&account.id).await.unwrap();
    assert_eq!((keys[0].credential.clone(), keys[0].last_used_at), (vec![2], Some(77)));

    assert_eq!(a.org_setting("default", REQUIRE_MFA).await.unwrap(), None);
    b.set_org_setting("default", REQUIRE_MFA, "on", "cli", 1).await.unwrap();
    assert_eq!(a.org_setting("default", REQUIRE_MFA).await.unwrap().as_deref(), Some("on"));
    b.close().await;
}

backends!(staff_state_lockout_ips_keys_and_settings, sessions_and_keys_are_served_by_any_node);
