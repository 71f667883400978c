//! The store's events functions, on SQLite and on PostgreSQL.

mod support;

use carepost_store::events::*;
use support::Db;

use carepost_store::queue::{self, MessageRow, RecipientRow, RecipientUpdate, state};

fn message(id: &str) -> (MessageRow, Vec<RecipientRow>) {
    let (m, mut rcpts) = support::message_rows(id, 2, 1_000);
    rcpts[1].state = state::QUARANTINED.into();
    (m, rcpts)
}

async fn every_state_change_writes_its_event_in_the_same_transaction(db: Db) {
    let store = db.store.clone();
    let (m, rcpts) = message("M1");
    let update = |st: &'static str, attempts: i64, method: Option<&str>, code: &str| RecipientUpdate {
        state: st,
        attempts,
        next_attempt_at: 5_000_000,
        last_reply: None,
        method: method.map(str::to_owned),
        delay_notified: false,
        status: Some(code.to_owned()),
    };
    let (deferred, delivered) =
        (update(state::QUEUED, 1, None, "4.4.1"), update(state::DELIVERED, 2, Some("tls"), "2.0.0"));
    store
        .write(move |tx| {
            Box::pin(async move {
                queue::insert_message(tx, &m, &rcpts).await?;
                queue::update_recipient(tx, "M1", 0, &deferred).await?;
                queue::update_recipient(tx, "M1", 0, &delivered).await?;
                queue::set_recipient_state(tx, "M1", Some(1), &[state::QUARANTINED], state::QUEUED, None).await?;
                // A retry of a queued recipient changes nothing worth an event.
                queue::set_recipient_state(tx, "M1", Some(1), &[state::QUEUED], state::QUEUED, None).await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    let events = store.message_events("M1").await.unwrap();
    let kinds: Vec<(i64, &str)> = events.iter().map(|e| (e.recipient, e.kind.as_str())).collect();
    assert_eq!(kinds, [(0, "queued"), (0, "deferred"), (0, "delivered"), (1, "quarantined"), (1, "released")]);
    let deferred = &events[1];
    assert_eq!(
        (deferred.attempt, deferred.next_attempt_at, deferred.status.as_deref()),
        (Some(1), Some(5_000_000), Some("4.4.1"))
    );
    assert_eq!(deferred.method, None);
    assert_eq!((events[2].method.as_deref(), events[2].status.as_deref()), (Some("tls"), Some("2.0.0")));
    assert!(events.iter().all(|e| e.tenant == "default" && e.address_index.len() == 32 && e.id.len() == 26));
    assert!(events.windows(2).all(|w| w[0].id != w[1].id));
    assert_eq!(store.last_event_seq().await.unwrap(), events.iter().map(|e| e.seq).max().unwrap());

    // An event for a recipient the queue does not have is not recorded.
    store
        .write(|tx| Box::pin(async move { record(tx, &NewEvent::new("M1", 7, kind::OPENED, 2_000)).await }))
        .await
        .unwrap();
    assert!(store.message_events("M1").await.unwrap().iter().all(|e| e.recipient != 7));

    store.write(|tx| Box::pin(async move { queue::delete_message(tx, "M1").await })).await.unwrap();
    assert!(store.message_events("M1").await.unwrap().is_empty(), "events go with their message");
}

async fn portal_opens_and_withdrawal_join_the_recipients_history(db: Db) {
    use carepost_store::portal::{self, PortalMessageRow};
    let store = db.store.clone();
    let (m, rcpts) = message("M2");
    let copy = PortalMessageRow {
        id: "P1".into(),
        tenant: "default".into(),
        source_message: "M2".into(),
        source_recipient: Some(0),
        recipient_index: b"r".to_vec(),
        recipient: b"sealed".to_vec(),
        envelope: b"sealed".to_vec(),
        body_blob: "portal/P1".into(),
        size: 10,
        created_at: 1,
        expires_at: 100,
        state: portal::state::ACTIVE.into(),
        withdrawn_at: None,
        withdrawn_by: None,
    };
    store
        .write(move |tx| {
            Box::pin(async move {
                queue::insert_message(tx, &m, &rcpts).await?;
                portal::insert_message(tx, &copy, &[]).await
            })
        })
        .await
        .unwrap();
    let copies = store.portal_messages_from("M2").await.unwrap();
    assert_eq!(copies.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["P1"]);
    store.add_portal_open("P1", 2_000, b"sealed".to_vec()).await.unwrap();
    let withdrawn = store
        .write(|tx| {
            Box::pin(async move { portal::withdraw(tx, "P1", portal::state::RETRACTED, 3_000, "sender").await })
        })
        .await
        .unwrap();
    assert!(withdrawn);
    let kinds: Vec<(i64, String)> = store
        .message_events("M2")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.recipient == 0)
        .map(|e| (e.at, e.kind))
        .collect();
    assert_eq!(kinds, [(1_000, "queued".to_owned()), (2_000, "opened".to_owned()), (3_000, "retracted".to_owned())]);
}

backends!(
    every_state_change_writes_its_event_in_the_same_transaction,
    portal_opens_and_withdrawal_join_the_recipients_history
);
