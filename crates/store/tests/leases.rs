//! Leases for singleton jobs, on SQLite and on PostgreSQL: one holder at a time, renewed
//! while it lives, free for another once it runs out or is released.

mod support;

use support::Db;

async fn one_holder_at_a_time(db: Db) {
    let store = db.store.clone();
    let other = db.reopen().await;
    assert!(store.lease("sweep").await.unwrap().is_none());
    assert!(store.try_acquire_lease("sweep", "a", 100, 200).await.unwrap());
    assert!(!other.try_acquire_lease("sweep", "b", 150, 250).await.unwrap(), "a holds it");
    assert!(store.try_acquire_lease("sweep", "a", 150, 300).await.unwrap(), "the holder extends it");
    assert!(store.renew_lease("sweep", "a", 400).await.unwrap());
    assert!(!other.renew_lease("sweep", "b", 500).await.unwrap(), "only the holder renews");
    let lease = store.lease("sweep").await.unwrap().unwrap();
    assert_eq!((lease.holder.as_str(), lease.until), ("a", 400));
    // Another job's lease is another row.
    assert!(other.try_acquire_lease("webhooks", "b", 150, 250).await.unwrap());

    // a stops renewing: once the lease ran out, b takes it, and a cannot renew it any more.
    assert!(!other.try_acquire_lease("sweep", "b", 400, 600).await.unwrap(), "not yet: until is inclusive");
    assert!(other.try_acquire_lease("sweep", "b", 401, 600).await.unwrap());
    assert!(!store.renew_lease("sweep", "a", 700).await.unwrap());
    assert!(!store.release_lease("sweep", "a").await.unwrap(), "a releases nothing it does not hold");
    assert!(other.release_lease("sweep", "b").await.unwrap());
    assert!(store.try_acquire_lease("sweep", "a", 402, 500).await.unwrap(), "released: free at once");
    other.close().await;
}

async fn racing_for_a_free_lease_makes_one_winner(db: Db) {
    let mut nodes = vec![db.store.clone()];
    for _ in 0..3 {
        nodes.push(db.reopen().await);
    }
    for round in 0..10_i64 {
        let name = format!("job-{round}");
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let (node, name) = (node.clone(), name.clone());
                tokio::spawn(async move { node.try_acquire_lease(&name, &format!("n{i}"), 0, 1_000).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

async fn leases_are_listed_by_prefix(db: Db) {
    let store = db.store.clone();
    for (name, holder) in [("node:b", "b"), ("node:a", "a"), ("nodes", "x"), ("node_a", "y"), ("sweep", "a")] {
        assert!(store.try_acquire_lease(name, holder, 0, 100).await.unwrap());
    }
    let names = |rows: Vec<carepost_store::leases::LeaseRow>| rows.into_iter().map(|l| l.name).collect::<Vec<_>>();
    // `_` and `%` in a prefix are literal, not LIKE's wildcards.
    assert_eq!(names(store.leases_with_prefix("node:").await.unwrap()), ["node:a", "node:b"]);
    assert_eq!(names(store.leases_with_prefix("node_").await.unwrap()), ["node_a"]);
    assert!(store.leases_with_prefix("%").await.unwrap().is_empty());
}

backends!(one_holder_at_a_time, racing_for_a_free_lease_makes_one_winner, leases_are_listed_by_prefix);
