//! The queue on SQLite and on PostgreSQL: claims are leases held by a node, renewed while it
//! lives, taken over when they run out; two nodes never claim the same recipient.

mod support;

use std::collections::HashSet;

use carepost_store::queue::{self, MessageRow, RecipientRow, RecipientUpdate, state};
use carepost_store::{Store, Tx};
use support::Db;

fn message(id: &str, recipients: i64, due: i64) -> (MessageRow, Vec<RecipientRow>) {
    let (mut m, mut rcpts) = support::message_rows(id, recipients, due);
    m.source = "smtp".into();
    m.message_id_index = Some(format!("mid-{id}").into_bytes());
    for r in &mut rcpts {
        r.next_attempt_at = due + r.idx;
    }
    (m, rcpts)
}

async fn put(store: &Store, id: &str, recipients: i64, due: i64) {
    let (m, r) = message(id, recipients, due);
    store.write(move |tx| Box::pin(async move { queue::insert_message(tx, &m, &r).await })).await.unwrap();
}

async fn claim(store: &Store, now: i64, until: i64, limit: i64) -> Vec<RecipientRow> {
    store.write(move |tx| Box::pin(queue::claim_due(tx, now, until, limit))).await.unwrap()
}

async fn run<T: Send + 'static>(
    store: &Store,
    op: impl for<'c> FnOnce(&'c mut Tx) -> futures::future::BoxFuture<'c, Result<T, carepost_store::StoreError>>
    + Send
    + 'static,
) -> T {
    store.write(op).await.unwrap()
}

async fn claims_are_leases_oldest_first_and_expire(db: Db) {
    let store = db.store.clone();
    put(&store, "M1", 3, 100).await;
    put(&store, "M2", 1, 50).await;
    assert_eq!(store.next_due().await.unwrap(), Some(50));
    assert_eq!(claim(&store, 10, 1_000, 10).await.len(), 0, "nothing due yet");

    let first = claim(&store, 200, 1_000, 2).await;
    let got: Vec<_> = first.iter().map(|r| (r.message_id.as_str(), r.idx)).collect();
    assert_eq!(got, [("M2", 0), ("M1", 0)], "oldest due first");
    assert!(first.iter().all(|r| r.state == state::INFLIGHT && r.lease_until == Some(1_000)));
    assert_eq!(claim(&store, 200, 1_000, 10).await.len(), 2, "the rest");
    assert!(claim(&store, 500, 1_000, 10).await.is_empty(), "every lease is live");
    assert_eq!(store.next_due().await.unwrap(), Some(1_000), "the first lease to run out");

    // A live node renews its leases; they stay its own.
    assert_eq!(store.renew_queue_leases(600, 5_000).await.unwrap(), 4);
    assert!(claim(&store, 2_000, 9_000, 10).await.is_empty());
    // A leases that ran out is claimed again.
    let again = claim(&store, 5_001, 9_000, 10).await;
    assert_eq!(again.len(), 4);
    assert_eq!(store.renew_queue_leases(9_001, 10_000).await.unwrap(), 0, "expired leases are not renewed");

    let counts = store.queue_counts().await.unwrap();
    assert_eq!(counts, [(state::INFLIGHT.to_string(), 4)]);
    let in_flight = store.messages_with_recipient_state(state::INFLIGHT, 10).await.unwrap();
    assert_eq!(in_flight.iter().map(|m| m.id.as_str()).collect::<HashSet<_>>(), HashSet::from(["M1", "M2"]));
    assert_eq!(store.messages_with_message_id("default", b"mid-M1").await.unwrap(), ["M1"]);
    assert!(store.messages_with_message_id("other", b"mid-M1").await.unwrap().is_empty());
}

async fn another_node_takes_over_a_dead_nodes_leases_only_when_they_run_out(db: Db) {
    let a = db.store.clone();
    let b = db.reopen().await;
    assert_ne!(a.node_id(), b.node_id());
    put(&a, "M1", 2, 100).await;
    assert_eq!(claim(&a, 200, 1_000, 10).await.len(), 2);
    // B renews nothing of A's, and cannot claim A's live leases.
    assert_eq!(b.renew_queue_leases(300, 5_000).await.unwrap(), 0);
    assert!(claim(&b, 300, 5_000, 10).await.is_empty());
    // A dies (stops renewing); once its leases run out, B claims and holds them.
    let taken = claim(&b, 1_001, 5_000, 10).await;
    assert_eq!(taken.len(), 2);
    assert_eq!(b.renew_queue_leases(1_002, 6_000).await.unwrap(), 2);
    assert_eq!(a.renew_queue_leases(1_002, 6_000).await.unwrap(), 0, "A lost them");
    b.close().await;
}

async fn concurrent_claims_from_two_nodes_never_share_a_recipient(db: Db) {
    let a = db.store.clone();
    let b = db.reopen().await;
    for i in 0..20 {
        put(&a, &format!("M{i:02}"), 10, 100).await;
    }
    let mut tasks = Vec::new();
    for node in [a.clone(), b.clone(), a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(&node, 1_000, 100_000, 7).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|r| (r.message_id, r.idx)));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 200, "every recipient claimed once");
    assert_eq!(distinct.len(), 200, "and by one claimer only");
    b.close().await;
}

async fn requeue_outcomes_and_the_end_of_a_message(db: Db) {
    let store = db.store.clone();
    put(&store, "M1", 3, 100).await;
    assert_eq!(claim(&store, 200, 1_000, 10).await.len(), 3);
    // A single owner (SQLite at start) makes every in-flight row due at once, never later
    // than it was.
    assert_eq!(run(&store, |tx| Box::pin(queue::requeue_inflight(tx, 150))).await, 3);
    let rows = store.recipients("M1").await.unwrap();
    assert!(rows.iter().all(|r| r.state == state::QUEUED && r.lease_until.is_none()));
    assert_eq!(rows.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>(), [100, 101, 102]);
    assert_eq!(run(&store, |tx| Box::pin(queue::requeue_inflight(tx, 150))).await, 0);

    assert_eq!(claim(&store, 200, 1_000, 10).await.len(), 3);
    let back = vec![("M1".to_string(), 2)];
    assert_eq!(run(&store, move |tx| Box::pin(async move { queue::requeue(tx, &back, 300).await })).await, 1);

    let delivered = RecipientUpdate {
        state: state::DELIVERED,
        attempts: 1,
        next_attempt_at: 300,
        last_reply: Some(b"sealed 250".to_vec()),
        method: Some("tls".into()),
        delay_notified: false,
        status: Some("2.0.0".into()),
    };
    let bounced =
        RecipientUpdate { state: state::BOUNCED, method: None, status: Some("5.1.1".into()), ..delivered.clone() };
    let (d, b) = (delivered.clone(), bounced.clone());
    run(&store, move |tx| {
        Box::pin(async move {
            queue::update_recipient(tx, "M1", 0, &d).await?;
            queue::update_recipient(tx, "M1", 1, &b).await
        })
    })
    .await;
    assert!(!run(&store, |tx| Box::pin(queue::finish_if_done(tx, "M1"))).await, "one recipient is still queued");
    // An operator holds the last one, then releases it, then it is delivered.
    let held =
        run(&store, |tx| Box::pin(queue::set_recipient_state(tx, "M1", Some(2), &[state::QUEUED], state::HELD, None)))
            .await;
    assert_eq!(held, 1);
    let released = run(&store, |tx| {
        Box::pin(queue::set_recipient_state(tx, "M1", None, &[state::HELD], state::QUEUED, Some(400)))
    })
    .await;
    assert_eq!(released, 1);
    assert_eq!(store.next_due().await.unwrap(), Some(400));
    run(&store, move |tx| Box::pin(async move { queue::update_recipient(tx, "M1", 2, &delivered).await })).await;
    assert!(run(&store, |tx| Box::pin(queue::finish_if_done(tx, "M1"))).await);
    let m = run(&store, |tx| Box::pin(queue::message_in(tx, "M1"))).await.unwrap();
    assert_eq!(m.state, state::DONE);
    assert!(m.done_at.is_some());
    assert_eq!(store.messages_in_state(state::DONE, 10).await.unwrap().len(), 1);
    let kinds: Vec<_> = store.message_events("M1").await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"delivered".to_string()) && kinds.contains(&"bounced".to_string()), "{kinds:?}");
    assert!(run(&store, |tx| Box::pin(queue::delete_message(tx, "M1"))).await);
    assert!(store.message("M1").await.unwrap().is_none());
    assert!(store.recipients("M1").await.unwrap().is_empty());
}

backends!(
    claims_are_leases_oldest_first_and_expire,
    another_node_takes_over_a_dead_nodes_leases_only_when_they_run_out,
    concurrent_claims_from_two_nodes_never_share_a_recipient,
    requeue_outcomes_and_the_end_of_a_message,
);
