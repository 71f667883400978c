//! Write transactions (group commit on SQLite, one transaction per operation on
//! PostgreSQL), on both backends: the same promises either way.

mod support;

use carepost_store::queue::{self, state};
use carepost_store::{Store, StoreError, Tx};
use support::Db;

async fn insert(tx: &mut Tx, id: String) -> Result<(), StoreError> {
    let (mut m, _) = support::message_rows(&id, 0, 1);
    (m.source, m.size) = ("test".into(), 1);
    queue::insert_message(tx, &m, &[]).await
}

async fn count(store: &Store) -> usize {
    store.messages_in_state(state::ACTIVE, 10_000).await.unwrap().len()
}

async fn concurrent_operations_commit_and_a_failing_one_changes_nothing(db: Db) {
    let store = db.store.clone();
    let mut handles = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        handles.push(tokio::spawn(async move { s.write(move |tx| Box::pin(insert(tx, format!("o{i}")))).await }));
    }
    // a duplicate primary key fails alone
    let dup = store.write(|tx| {
        Box::pin(async move {
            insert(tx, "o0-dup".into()).await?;
            insert(tx, "o0-dup".into()).await
        })
    });
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert!(dup.await.is_err());
    assert_eq!(count(&store).await, 200);
    store.close().await;
    assert!(matches!(store.write(|tx| Box::pin(insert(tx, "late".into()))).await, Err(StoreError::Closed)));
}

async fn on_commit_runs_for_committed_operations_only(db: Db) {
    let store = db.store.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let op = |name: &'static str, fail: bool| {
        let seen = seen.clone();
        store.write(move |tx| {
            Box::pin(async move {
                insert(tx, name.into()).await?;
                tx.on_commit(move || seen.lock().unwrap().push(name));
                if fail { insert(tx, name.into()).await } else { Ok(()) }
            })
        })
    };
    // Alone in a transaction, then several sharing one (on SQLite), with a failing one
    // among them.
    op("alone", false).await.unwrap();
    assert!(op("alone-failing", true).await.is_err());
    let (a, b, c) = tokio::join!(op("a", false), op("b", true), op("c", false));
    assert!(a.is_ok() && b.is_err() && c.is_ok());
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["a", "alone", "c"]);
}

async fn an_operation_alone_in_its_transaction_commits_or_changes_nothing(db: Db) {
    let store = db.store.clone();
    let failed = store.write(|tx| {
        Box::pin(async move {
            insert(tx, "a".into()).await?;
            insert(tx, "a".into()).await
        })
    });
    assert!(failed.await.is_err());
    assert_eq!(count(&store).await, 0, "the failed operation's first insert is undone");
    store.write(|tx| Box::pin(insert(tx, "a".into()))).await.unwrap();
    assert_eq!(count(&store).await, 1, "the writer goes on after a failure");
    // The writer the callers outside the store still use is the same writer.
    store.write(|tx| Box::pin(insert(tx, "b".into()))).await.unwrap();
    assert_eq!(count(&store).await, 2);
    store.close().await;
}

async fn writes_held_for_one_round_trip_are_seen_by_reads_and_undone_with_their_operation(db: Db) {
    let store = db.store.clone();
    let op = |name: &'static str, fail: bool| {
        store.write(move |tx| {
            Box::pin(async move {
                insert(tx, name.into()).await?;
                // A read in the same operation sees the held insert.
                let seen = queue::message_in(tx, name).await?.is_some();
                insert(tx, format!("{name}-2")).await?;
                if fail {
                    // Fails when the held statements go out, at the end of the operation,
                    // after its first insert reached the database with the read.
                    insert(tx, format!("{name}-2")).await?;
                }
                Ok(seen)
            })
        })
    };
    let (a, b, c) = tokio::join!(op("a", false), op("b", true), op("c", false));
    assert!(a.unwrap() && c.unwrap(), "reads see the operation's own writes");
    assert!(b.is_err(), "a duplicate key fails its operation");
    let mut ids: Vec<String> =
        store.messages_in_state(state::ACTIVE, 100).await.unwrap().into_iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids, ["a", "a-2", "c", "c-2"], "nothing of the failed operation stays, the others all do");
}

async fn a_message_with_thousands_of_recipients_goes_out_in_one_operation(db: Db) {
    // Held writes travel as one text with one argument list: 2,000 recipients and their
    // events are 4,000 statements and 48,000 parameters in one round trip on SQLite.
    let store = db.store.clone();
    let (m, rcpts) = support::message_rows("big", 2_000, 1);
    store.write(move |tx| Box::pin(async move { queue::insert_message(tx, &m, &rcpts).await })).await.unwrap();
    let recipients = store.recipients("big").await.unwrap();
    assert_eq!(recipients.len(), 2_000);
    assert!(recipients.iter().enumerate().all(|(i, r)| r.idx == i as i64 && r.state == state::QUEUED));
    assert_eq!(store.message_events("big").await.unwrap().len(), 2_000);
}

async fn an_operation_that_ignores_the_failure_of_its_held_writes_still_fails(db: Db) {
    let store = db.store.clone();
    store.write(|tx| Box::pin(insert(tx, "first".into()))).await.unwrap();
    let ignored = store
        .write(|tx| {
            Box::pin(async move {
                insert(tx, "new".into()).await?;
                insert(tx, "first".into()).await?;
                // The read sends the held inserts; the duplicate fails, and the operation
                // drops the error and goes on as if nothing happened.
                let _ = queue::message_in(tx, "new").await;
                Ok(())
            })
        })
        .await;
    assert!(ignored.is_err(), "the operation fails whatever it returns");
    let ids: Vec<String> =
        store.messages_in_state(state::ACTIVE, 100).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["first"], "nothing of it stays");
}

backends!(
    an_operation_that_ignores_the_failure_of_its_held_writes_still_fails,
    a_message_with_thousands_of_recipients_goes_out_in_one_operation,
    writes_held_for_one_round_trip_are_seen_by_reads_and_undone_with_their_operation,
    concurrent_operations_commit_and_a_failing_one_changes_nothing,
    on_commit_runs_for_committed_operations_only,
    an_operation_alone_in_its_transaction_commits_or_changes_nothing,
);
