//! The store's portal functions, on SQLite and on PostgreSQL.

mod support;

use carepost_store::portal::*;
use carepost_store::signin::{AccountKind, FailureCount, Lockout, SessionRow};
use support::Db;

fn message(id: &str) -> PortalMessageRow {
    PortalMessageRow {
        id: id.into(),
        tenant: "default".into(),
        source_message: "Q1".into(),
        source_recipient: None,
        recipient_index: b"r".to_vec(),
        recipient: b"sealed".to_vec(),
        envelope: b"sealed".to_vec(),
        body_blob: format!("portal/{id}"),
        size: 10,
        created_at: 1,
        expires_at: 100,
        state: state::ACTIVE.into(),
        withdrawn_at: None,
        withdrawn_by: None,
    }
}

async fn messages_tokens_opens_and_withdrawal(db: Db) {
    let store = db.store.clone();
    store
        .write(|tx| {
            Box::pin(async move {
                insert_message(
                    tx,
                    &message("M1"),
                    &[(b"t1".to_vec(), purpose::PICKUP), (b"t2".to_vec(), purpose::SENDER)],
                )
                .await
            })
        })
        .await
        .unwrap();
    assert_eq!(store.portal_token(b"t1").await.unwrap(), Some(("pickup".into(), "M1".into())));
    assert_eq!(store.portal_token(b"nope").await.unwrap(), None);
    assert_eq!(store.portal_messages_for("default", b"r").await.unwrap().len(), 1);
    assert_eq!(store.portal_expired(99, 10).await.unwrap().len(), 0);
    assert_eq!(store.portal_expired(100, 10).await.unwrap()[0].id, "M1");
    assert_eq!(store.add_portal_open("M1", 5, b"x".to_vec()).await.unwrap(), 1);
    assert_eq!(store.add_portal_open("M1", 6, b"y".to_vec()).await.unwrap(), 2);
    assert_eq!(store.portal_opens("M1").await.unwrap().len(), 2);
    assert!(
        store.write(|tx| Box::pin(async move { withdraw(tx, "M1", state::RETRACTED, 7, "cli").await })).await.unwrap()
    );
    assert!(
        !store.write(|tx| Box::pin(async move { withdraw(tx, "M1", state::EXPIRED, 8, "sweep").await })).await.unwrap()
    );
    let m = store.portal_message("M1").await.unwrap().unwrap();
    assert_eq!((m.state.as_str(), m.withdrawn_at, m.withdrawn_by.as_deref()), ("retracted", Some(7), Some("cli")));
    assert!(store.portal_expired(1000, 10).await.unwrap().is_empty());
}

async fn accounts_lock_after_failures_and_a_new_password_unlocks(db: Db) {
    let store = db.store.clone();
    let row = AccountRow::new("A1".into(), "default".into(), b"r".to_vec(), b"sealed".to_vec(), 0);
    let id = store.set_portal_password(row.clone(), "h1".into(), 1).await.unwrap();
    assert_eq!(id, "A1");
    for n in 1..3 {
        let f = store
            .signin_failed(AccountKind::Portal, "A1", 10 + n, Lockout { failures: 3, window: 1000, lock_for: 500 })
            .await
            .unwrap();
        assert_eq!(f, FailureCount { failures: n, locked_until: None });
    }
    let held = SessionRow {
        account_id: "A1".into(),
        stage: "full".into(),
        ceremony: None,
        created_at: 1,
        last_seen_at: 1,
        expires_at: 1_000,
    };
    store.insert_session(AccountKind::Portal, vec![9], held).await.unwrap();
    let f = store
        .signin_failed(AccountKind::Portal, "A1", 13, Lockout { failures: 3, window: 1000, lock_for: 500 })
        .await
        .unwrap();
    assert_eq!(f.locked_until, Some(513));
    assert!(store.session(AccountKind::Portal, &[9]).await.unwrap().is_none(), "the lock ends the account's sessions");
    assert_eq!(store.portal_account("default", b"r").await.unwrap().unwrap().locked_until, Some(513));
    // Setting the password again (a reset) keeps the id and lifts the lock.
    assert_eq!(
        store.set_portal_password(AccountRow { id: "other".into(), ..row }, "h2".into(), 20).await.unwrap(),
        "A1"
    );
    let a = store.portal_account_by_id("A1").await.unwrap().unwrap();
    assert_eq!((a.password_hash.as_deref(), a.locked_until), (Some("h2"), None));
    // A failure outside the window starts a new count.
    store
        .signin_failed(AccountKind::Portal, "A1", 30, Lockout { failures: 3, window: 5, lock_for: 500 })
        .await
        .unwrap();
    assert_eq!(
        store
            .signin_failed(AccountKind::Portal, "A1", 100, Lockout { failures: 3, window: 5, lock_for: 500 })
            .await
            .unwrap()
            .failures,
        1
    );
    // TOTP steps are accepted once, in increasing order.
    assert!(store.use_totp_step(AccountKind::Portal, "A1", 7).await.unwrap());
    assert!(!store.use_totp_step(AccountKind::Portal, "A1", 7).await.unwrap());
    assert!(!store.use_totp_step(AccountKind::Portal, "A1", 6).await.unwrap());
}

async fn codes_expire_void_older_ones_and_count_attempts(db: Db) {
    let store = db.store.clone();
    let add = |id: &str, now: i64| {
        store.insert_portal_code(NewPortalCode {
            id: id.into(),
            tenant: "default".into(),
            address_index: b"r".to_vec(),
            purpose: purpose::VERIFY,
            code_hash: b"h".to_vec(),
            now,
            expires_at: now + 100,
        })
    };
    add("C1", 1).await.unwrap();
    add("C2", 2).await.unwrap();
    assert_eq!(store.portal_codes_sent_since("default", b"r", purpose::VERIFY, 0).await.unwrap(), 2);
    let current = store.current_portal_code("default", b"r", purpose::VERIFY, 3).await.unwrap().unwrap();
    assert_eq!(current.id, "C2", "the newer code voids the older");
    assert!(store.current_portal_code("default", b"r", purpose::VERIFY, 102).await.unwrap().is_none(), "expired");
    assert!(store.reserve_portal_code_attempt("C2", 2, 4).await.unwrap());
    assert!(!store.portal_code_entered("C2", false, 2, 4).await.unwrap());
    assert_eq!(store.current_portal_code("default", b"r", purpose::VERIFY, 5).await.unwrap().unwrap().attempts, 1);
    assert!(store.reserve_portal_code_attempt("C2", 2, 5).await.unwrap());
    store.portal_code_entered("C2", false, 2, 5).await.unwrap();
    assert!(
        store.current_portal_code("default", b"r", purpose::VERIFY, 6).await.unwrap().is_none(),
        "void after 2 misses"
    );
    assert!(!store.reserve_portal_code_attempt("C2", 2, 6).await.unwrap(), "no attempt at a void code");
    add("C3", 10).await.unwrap();
    assert!(!store.reserve_portal_code_attempt("C3", 2, 110).await.unwrap(), "nor at an expired one");
    assert!(store.reserve_portal_code_attempt("C3", 2, 11).await.unwrap());
    assert!(store.portal_code_entered("C3", true, 2, 11).await.unwrap());
    assert!(!store.portal_code_entered("C3", true, 2, 11).await.unwrap(), "a code is used once");
}

async fn parallel_guesses_reserve_no_more_attempts_than_allowed(db: Db) {
    let store = db.store.clone();
    store
        .insert_portal_code(NewPortalCode {
            id: "C1".into(),
            tenant: "default".into(),
            address_index: b"r".to_vec(),
            purpose: purpose::VERIFY,
            code_hash: b"h".to_vec(),
            now: 1,
            expires_at: 1000,
        })
        .await
        .unwrap();
    store.write(|tx| Box::pin(async move { insert_message(tx, &message("M1"), &[]).await })).await.unwrap();
    let codes = futures::future::join_all((0..40).map(|_| store.reserve_portal_code_attempt("C1", 5, 2))).await;
    assert_eq!(codes.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 5);
    let phrases = futures::future::join_all((0..40).map(|_| store.reserve_portal_passphrase_attempt("M1", 5))).await;
    assert_eq!(phrases.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 5);
    // A right passphrase gives its slot back; the count is in the database, not the process.
    store.release_portal_passphrase_attempt("M1").await.unwrap();
    assert!(store.reserve_portal_passphrase_attempt("M1", 5).await.unwrap());
    assert!(!store.reserve_portal_passphrase_attempt("M1", 5).await.unwrap());
}

/// A recipient's account and sessions live in the store: signed in on one node, served by
/// another.
async fn accounts_and_sessions_are_served_by_any_node(db: Db) {
    let (a, b) = (db.store.clone(), db.reopen().await);
    let row = AccountRow::new("A9".into(), "default".into(), b"r9".to_vec(), b"sealed".to_vec(), 0);
    assert_eq!(a.insert_portal_account(row.clone(), None, 1).await.unwrap(), "A9");
    assert_eq!(a.portal_account_by_id("A9").await.unwrap().unwrap().password_hash, None);
    let other = AccountRow { id: "A10".into(), ..row.clone() };
    assert_eq!(b.insert_portal_account(other, Some("h".into()), 2).await.unwrap(), "A9", "one account per address");
    assert_eq!(a.portal_account_by_id("A9").await.unwrap().unwrap().password_hash.as_deref(), Some("h"));

    b.set_totp(AccountKind::Portal, "A9", Some(vec![5; 20]), false, 3).await.unwrap();
    a.set_totp(AccountKind::Portal, "A9", None, true, 4).await.unwrap();
    let acct = b.portal_account_by_id("A9").await.unwrap().unwrap();
    assert_eq!((acct.totp, acct.totp_pending), (Some(vec![5; 20]), None));
    assert!(matches!(
        a.set_totp(AccountKind::Portal, "A9", None, true, 5).await,
        Err(carepost_store::StoreError::NotFound(_))
    ));

    a.signin_failed(AccountKind::Portal, "A9", 10, Lockout { failures: 5, window: 1000, lock_for: 500 }).await.unwrap();
    assert_eq!(
        b.signin_failed(AccountKind::Portal, "A9", 11, Lockout { failures: 5, window: 1000, lock_for: 500 })
            .await
            .unwrap()
            .failures,
        2,
        "counted across nodes"
    );
    b.signin_succeeded(AccountKind::Portal, "A9").await.unwrap();
    assert_eq!(a.portal_account_by_id("A9").await.unwrap().unwrap().failures, 0);

    let session = |stage: &str| SessionRow {
        account_id: "A9".into(),
        stage: stage.into(),
        ceremony: None,
        created_at: 1,
        last_seen_at: 1,
        expires_at: 1_000,
    };
    a.insert_session(AccountKind::Portal, vec![1], session("totp")).await.unwrap();
    a.insert_session(AccountKind::Portal, vec![2], session("full")).await.unwrap();
    b.touch_session(AccountKind::Portal, &[1], 20, Some("full")).await.unwrap();
    b.touch_session(AccountKind::Portal, &[2], 30, None).await.unwrap();
    assert_eq!(
        a.session(AccountKind::Portal, &[1]).await.unwrap().unwrap(),
        SessionRow { last_seen_at: 20, ..session("full") }
    );
    assert_eq!(
        a.session(AccountKind::Portal, &[2]).await.unwrap().unwrap(),
        SessionRow { last_seen_at: 30, ..session("full") }
    );
    assert_eq!(b.end_sessions(AccountKind::Portal, Some(vec![1]), None).await.unwrap(), 1);
    assert!(a.session(AccountKind::Portal, &[1]).await.unwrap().is_none());
    assert_eq!(b.end_sessions(AccountKind::Portal, None, Some("A9".into())).await.unwrap(), 1);
    assert!(a.session(AccountKind::Portal, &[2]).await.unwrap().is_none());
    b.close().await;
}

backends!(
    messages_tokens_opens_and_withdrawal,
    accounts_lock_after_failures_and_a_new_password_unlocks,
    codes_expire_void_older_ones_and_count_attempts,
    parallel_guesses_reserve_no_more_attempts_than_allowed,
    accounts_and_sessions_are_served_by_any_node
);
