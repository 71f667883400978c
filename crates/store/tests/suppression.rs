//! The store's suppression functions, on SQLite and on PostgreSQL.

mod support;

use carepost_store::suppression::*;
use std::collections::HashSet;
use support::Db;

fn row(index: &[u8], id: &str) -> SuppressionRow {
    SuppressionRow {
        tenant: "default".into(),
        address_index: index.to_vec(),
        id: id.into(),
        address: b"sealed".to_vec(),
        reason: "hard-bounce".into(),
        detail: None,
        created_at: 1,
    }
}

async fn add_find_and_remove(db: Db) {
    let store = db.store.clone();
    assert!(store.write(|tx| Box::pin(async move { insert(tx, &row(b"a", "1")).await })).await.unwrap());
    assert!(
        !store.write(|tx| Box::pin(async move { insert(tx, &row(b"a", "2")).await })).await.unwrap(),
        "listed once"
    );
    store.write(|tx| Box::pin(async move { insert(tx, &row(b"b", "3")).await })).await.unwrap();
    let found = store.suppressed_among("default", &[b"a".to_vec(), b"c".to_vec(), b"b".to_vec()]).await.unwrap();
    assert_eq!(found, HashSet::from([b"a".to_vec(), b"b".to_vec()]));
    assert!(store.suppressed_among("other", &[b"a".to_vec()]).await.unwrap().is_empty(), "per tenant");
    assert_eq!(store.suppressions("default").await.unwrap().len(), 2);
    let removed = store.write(|tx| Box::pin(async move { delete(tx, "default", b"a").await })).await.unwrap();
    assert_eq!(removed.as_deref(), Some("1"));
    assert_eq!(store.write(|tx| Box::pin(async move { delete(tx, "default", b"a").await })).await.unwrap(), None);
    assert_eq!(store.suppressions("default").await.unwrap().len(), 1);
}

backends!(add_find_and_remove);
