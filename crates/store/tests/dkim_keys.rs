//! The store's dkim keys functions, on SQLite and on PostgreSQL.

mod support;

use carepost_store::dkim_keys::*;
use support::Db;

fn key(id: &str, selector: &str, active_from: i64) -> DkimKeyRow {
    DkimKeyRow {
        id: id.into(),
        tenant: "default".into(),
        domain: "example.org".into(),
        selector: selector.into(),
        algorithm: "ed25519".into(),
        public_key: vec![1],
        private_key: vec![2],
        created_at: 0,
        active_from,
        retired_at: None,
    }
}

async fn keys_are_stored_listed_and_retired(db: Db) {
    let store = db.store.clone();
    store.write(|tx| Box::pin(async move { insert(tx, &key("a", "s1", 10)).await })).await.unwrap();
    assert!(
        store.write(|tx| Box::pin(async move { insert(tx, &key("x", "s1", 10)).await })).await.is_err(),
        "selectors are unique per domain"
    );
    store.write(|tx| Box::pin(async move { insert(tx, &key("b", "s2", 20)).await })).await.unwrap();
    let n = store
        .write(|tx| Box::pin(async move { schedule_retirement(tx, "example.org", 99, &["b".to_owned()]).await }))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let keys = store.dkim_keys(Some("example.org")).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| (k.id.as_str(), k.retired_at)).collect::<Vec<_>>(),
        vec![("a", Some(99)), ("b", None)]
    );
    assert!(store.dkim_keys(Some("other.org")).await.unwrap().is_empty());
}

backends!(keys_are_stored_listed_and_retired);
