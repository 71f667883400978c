//! The store's webhooks functions, on SQLite and on PostgreSQL.

mod support;

use carepost_store::Store;
use carepost_store::webhooks::*;
use support::Db;

use carepost_store::events::{self, NewEvent, kind};
use carepost_store::queue;

async fn message_with_events(store: &Store, id: &str, kinds: &'static [&'static str]) {
    slow_message_with_events(store, id, kinds, 0).await
}

/// As [`message_with_events`], with the transaction kept open `hold_ms` after its events.
async fn slow_message_with_events(store: &Store, id: &str, kinds: &'static [&'static str], hold_ms: u64) {
    let id = id.to_owned();
    store
        .write(move |tx| {
            Box::pin(async move {
                let (mut m, mut r) = support::message_rows(&id, 1, 1);
                (m.size, m.envelope, m.arrival) = (1, vec![1], vec![1]);
                (r[0].address, r[0].address_index, r[0].domain_index) = (vec![1], vec![2; 32], vec![3; 32]);
                queue::insert_message(tx, &m, &r).await?;
                for k in kinds {
                    events::record(tx, &NewEvent::new(&id, 0, k, 2)).await?;
                }
                if hold_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
                }
                Ok(())
            })
        })
        .await
        .unwrap();
}

async fn endpoints_receive_new_events_of_their_kinds_once(db: Db) {
    let store = db.store.clone();
    message_with_events(&store, "OLD", &[kind::DELIVERED]).await;
    let endpoint = EndpointRow {
        id: "W1".into(),
        tenant: "default".into(),
        url: "https://hooks.example/carepost".into(),
        events: vec![kind::DELIVERED.into(), kind::BOUNCED.into()],
        secret: vec![9; 40],
        cursor: 0,
        created_at: 10,
        removed_at: None,
    };
    let e = endpoint.clone();
    store.write(move |tx| Box::pin(async move { insert_endpoint(tx, &e).await })).await.unwrap();
    // Events from before the endpoint existed are not owed to it.
    assert_eq!(store.fan_out_webhook_events("W1", 100, 10).await.unwrap(), 0);
    message_with_events(&store, "NEW", &[kind::DEFERRED, kind::DELIVERED]).await;
    assert_eq!(store.fan_out_webhook_events("W1", 100, 10).await.unwrap(), 1, "queued and deferred are not wanted");
    assert_eq!(store.fan_out_webhook_events("W1", 100, 10).await.unwrap(), 0, "the cursor moved");
    let due = store.due_webhook_deliveries(100, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let event = store.event(due[0].event_seq).await.unwrap().unwrap();
    assert_eq!((event.message_id.as_str(), event.kind.as_str()), ("NEW", "delivered"));

    let retry = AttemptResult {
        state: state::PENDING,
        next_attempt_at: 200,
        status: Some(500),
        error: Some("HTTP 500".into()),
        at: 100,
    };
    store.record_webhook_attempt("W1", due[0].event_seq, retry).await.unwrap();
    assert!(store.due_webhook_deliveries(150, 10).await.unwrap().is_empty(), "not due before its retry time");
    assert!(store.webhook_endpoints_due(150).await.unwrap().is_empty());
    assert_eq!(store.webhook_endpoints_due(200).await.unwrap(), vec!["W1".to_owned()]);
    assert_eq!(store.due_webhook_deliveries_for("W1", 200, 10).await.unwrap()[0].event_seq, due[0].event_seq);
    assert!(store.due_webhook_deliveries_for("W2", 200, 10).await.unwrap().is_empty());
    assert_eq!(store.next_webhook_due().await.unwrap(), Some(200));
    let done = AttemptResult { state: state::DELIVERED, next_attempt_at: 200, status: Some(204), error: None, at: 200 };
    store.record_webhook_attempt("W1", due[0].event_seq, done).await.unwrap();
    let rows = store.webhook_deliveries("W1", 10).await.unwrap();
    assert_eq!((rows[0].state.as_str(), rows[0].attempts, rows[0].last_status), ("delivered", 2, Some(204)));
    assert_eq!(store.webhook_delivery_counts("W1").await.unwrap(), vec![("delivered".to_owned(), 1)]);

    // A removed endpoint is owed nothing more.
    message_with_events(&store, "LATER", &[kind::BOUNCED]).await;
    assert!(store.write(|tx| Box::pin(async move { remove_endpoint(tx, "W1", 300).await })).await.unwrap());
    assert_eq!(store.fan_out_webhook_events("W1", 300, 10).await.unwrap(), 0);
    assert!(store.webhook_endpoints(false).await.unwrap().is_empty());
    assert_eq!(store.webhook_endpoints(true).await.unwrap().len(), 1);
}

async fn the_cursor_passes_other_tenants_events(db: Db) {
    let store = db.store.clone();
    let endpoint = EndpointRow {
        id: "W2".into(),
        tenant: "other".into(),
        url: "https://hooks.example/other".into(),
        events: vec![kind::DELIVERED.into()],
        secret: vec![9; 40],
        cursor: 0,
        created_at: 10,
        removed_at: None,
    };
    store.write(move |tx| Box::pin(async move { insert_endpoint(tx, &endpoint).await })).await.unwrap();
    message_with_events(&store, "DEFAULTS", &[kind::DELIVERED, kind::BOUNCED]).await;
    assert_eq!(store.fan_out_webhook_events("W2", 100, 10).await.unwrap(), 0, "another tenant's events are not owed");
    let cursor = store.webhook_endpoint("W2").await.unwrap().unwrap().cursor;
    assert_eq!(cursor, store.last_event_seq().await.unwrap(), "and are not scanned again");
}

/// Events committed out of sequence order (PostgreSQL numbers rows when they are inserted,
/// not when they commit) are still fanned out: the cursor never passes an event that is yet
/// to commit.
async fn the_cursor_passes_no_event_still_to_commit(db: Db) {
    let store = db.store.clone();
    let other = db.reopen().await;
    let endpoint = EndpointRow {
        id: "W3".into(),
        tenant: "default".into(),
        url: "https://hooks.example/carepost".into(),
        events: vec![kind::DELIVERED.into()],
        secret: vec![9; 40],
        cursor: 0,
        created_at: 10,
        removed_at: None,
    };
    store.write(move |tx| Box::pin(async move { insert_endpoint(tx, &endpoint).await })).await.unwrap();
    let writers: Vec<_> = [store.clone(), other.clone(), store.clone(), other.clone()]
        .into_iter()
        .enumerate()
        .map(|(w, node)| {
            tokio::spawn(async move {
                for i in 0..25_u64 {
                    // Transactions of different lengths, so that later sequence numbers
                    // commit before earlier ones.
                    slow_message_with_events(&node, &format!("M{w}-{i}"), &[kind::DELIVERED], (i * 7 + w as u64) % 5)
                        .await;
                }
            })
        })
        .collect();
    let fan = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut owed = 0;
            for _ in 0..400 {
                owed += store.fan_out_webhook_events("W3", 100, 1_000).await.unwrap();
                tokio::task::yield_now().await;
            }
            owed
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let mut owed = fan.await.unwrap();
    loop {
        let more = store.fan_out_webhook_events("W3", 100, 1_000).await.unwrap();
        if more == 0 {
            break;
        }
        owed += more;
    }
    assert_eq!(owed, 100, "every delivered event is owed once");
    let counts = store.webhook_delivery_counts("W3").await.unwrap();
    assert_eq!(counts, [("pending".to_string(), 100)]);
    other.close().await;
}

backends!(
    endpoints_receive_new_events_of_their_kinds_once,
    the_cursor_passes_other_tenants_events,
    the_cursor_passes_no_event_still_to_commit
);
