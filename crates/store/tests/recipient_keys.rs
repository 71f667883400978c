//! The recipient key directory's rows, on SQLite and on PostgreSQL: imported keys are
//! trusted, a second key learned for an address is held for review, look-ups are remembered.

mod support;

use carepost_store::recipient_keys::{self, Learned, LookupResult, RecipientKeyRow, state};
use carepost_store::{Store, StoreError, Tx};
use support::Db;

fn key(id: &str, address_index: &[u8], fingerprint: &str, source: &str, st: &str) -> RecipientKeyRow {
    RecipientKeyRow {
        id: id.into(),
        tenant: "default".into(),
        kind: "smime".into(),
        address_index: address_index.to_vec(),
        address: b"sealed".to_vec(),
        fingerprint: fingerprint.into(),
        material: b"sealed der".to_vec(),
        source: source.into(),
        capabilities: None,
        not_after: Some(9_999),
        created_at: id.len() as i64,
        state: st.into(),
    }
}

async fn run<T: Send + 'static>(
    store: &Store,
    op: impl for<'c> FnOnce(&'c mut Tx) -> futures::future::BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
) -> T {
    store.write(op).await.unwrap()
}

async fn keys_are_imported_learned_held_confirmed_and_deleted(db: Db) {
    let store = db.store.clone();
    assert!(state::usable(state::TRUSTED) && state::usable(state::CONFIRMED));
    assert!(!state::usable(state::UNCONFIRMED) && !state::usable(state::HELD));

    let first = key("K1", b"alice", "fp1", "learned", state::UNCONFIRMED);
    let learned =
        run(&store, move |tx| Box::pin(async move { recipient_keys::insert_learned(tx, &first).await })).await;
    assert_eq!(learned, Learned::Added { id: "K1".into(), state: state::UNCONFIRMED.into() });
    let again = RecipientKeyRow {
        capabilities: Some("[\"aes256\"]".into()),
        ..key("K1b", b"alice", "fp1", "learned", state::UNCONFIRMED)
    };
    let known = run(&store, move |tx| Box::pin(async move { recipient_keys::insert_learned(tx, &again).await })).await;
    assert_eq!(known, Learned::Known { id: "K1".into(), state: state::UNCONFIRMED.into() });
    let second = key("K22", b"alice", "fp2", "learned", state::UNCONFIRMED);
    let held = run(&store, move |tx| Box::pin(async move { recipient_keys::insert_learned(tx, &second).await })).await;
    assert_eq!(held, Learned::Added { id: "K22".into(), state: state::HELD.into() }, "a second key waits for review");

    let rows = store.recipient_keys_for("default", b"alice").await.unwrap();
    assert_eq!(rows.iter().map(|k| k.state.as_str()).collect::<Vec<_>>(), [state::UNCONFIRMED, state::HELD]);
    assert_eq!(rows[0].capabilities.as_deref(), Some("[\"aes256\"]"), "newer capabilities are learned");

    // An operator's import of a key under review is the review.
    let import = key("K333", b"alice", "fp1", "import", state::TRUSTED);
    let (id, new) = run(&store, move |tx| Box::pin(async move { recipient_keys::insert(tx, &import).await })).await;
    assert_eq!((id.as_str(), new), ("K1", false));
    let bob = key("K4444", b"bob", "fp4", "import", state::TRUSTED);
    assert!(run(&store, move |tx| Box::pin(async move { recipient_keys::insert(tx, &bob).await })).await.1);

    let was = run(&store, |tx| Box::pin(recipient_keys::confirm(tx, "default", "K22"))).await;
    assert_eq!(was.as_deref(), Some(state::HELD));
    assert_eq!(run(&store, |tx| Box::pin(recipient_keys::confirm(tx, "other", "K22"))).await, None);
    let states: Vec<_> =
        store.recipient_keys_for("default", b"alice").await.unwrap().into_iter().map(|k| k.state).collect();
    assert_eq!(states, [state::TRUSTED, state::CONFIRMED]);
    assert_eq!(store.recipient_keys("default").await.unwrap().len(), 3);
    assert!(store.recipient_keys("other").await.unwrap().is_empty());

    assert!(run(&store, |tx| Box::pin(recipient_keys::delete(tx, "default", "K4444"))).await);
    assert!(!run(&store, |tx| Box::pin(recipient_keys::delete(tx, "default", "K4444"))).await);
}

/// Two nodes learning two different keys for one address at once: one is added, the other
/// is held, never both usable-to-be.
async fn concurrent_learning_holds_the_second_key(db: Db) {
    let nodes = [db.store.clone(), db.reopen().await];
    for round in 0..10 {
        let address = format!("carol{round}").into_bytes();
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let (node, k) = (
                    node.clone(),
                    key(&format!("R{round}N{n}"), &address, &format!("fp{n}"), "learned", state::UNCONFIRMED),
                );
                tokio::spawn(async move {
                    run(&node, move |tx| Box::pin(async move { recipient_keys::insert_learned(tx, &k).await })).await
                })
            })
            .collect();
        let mut held = 0;
        for t in tasks {
            if let Learned::Added { state, .. } = t.await.unwrap() {
                held += usize::from(state == state::HELD);
            }
        }
        assert_eq!(held, 1, "round {round}");
    }
    nodes[1].close().await;
}

async fn look_ups_are_remembered(db: Db) {
    let store = db.store.clone();
    assert_eq!(store.last_lookup("default", b"dave", "wkd").await.unwrap(), None);
    run(&store, |tx| Box::pin(recipient_keys::record_lookup(tx, "default", b"dave", "wkd", 10, LookupResult::Failed)))
        .await;
    run(&store, |tx| Box::pin(recipient_keys::record_lookup(tx, "default", b"dave", "wkd", 20, LookupResult::Miss)))
        .await;
    assert_eq!(store.last_lookup("default", b"dave", "wkd").await.unwrap(), Some((20, LookupResult::Miss)));
    run(&store, |tx| Box::pin(recipient_keys::record_lookup(tx, "default", b"dave", "wkd", 30, LookupResult::Found)))
        .await;
    assert_eq!(store.last_lookup("default", b"dave", "wkd").await.unwrap(), Some((30, LookupResult::Found)));
    assert_eq!(store.last_lookup("other", b"dave", "wkd").await.unwrap(), None);
}

backends!(
    keys_are_imported_learned_held_confirmed_and_deleted,
    concurrent_learning_holds_the_second_key,
    look_ups_are_remembered
);
