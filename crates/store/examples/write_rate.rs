//! Measures durable writes per second through the store: COUNT queue messages of one
//! recipient each (the rows and the event an accepted message costs), from TASKS concurrent
//! writers. SQLite in a scratch directory, or the PostgreSQL database named by
//! CAREPOST_STORE_URL.
//!
//!     cargo run -p carepost-store --example write_rate -- 5000 64

mod support;

use std::time::Instant;

use carepost_store::queue;
use carepost_store::{Store, StoreOptions};

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers: COUNT TASKS")).collect();
    let count = args.first().copied().unwrap_or(5000);
    let tasks = args.get(1).copied().unwrap_or(64);
    let dir = tempfile::tempdir().expect("a scratch directory");
    let options = match std::env::var("CAREPOST_STORE_URL") {
        Ok(url) if !url.is_empty() => StoreOptions { url, pool_size: 16 },
        _ => StoreOptions::sqlite(&dir.path().join("w.db")),
    };
    let store = Store::connect(&options).await.expect("opening the store");
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..count).step_by(tasks) {
                    let (m, r) = support::message(&format!("W{i}"), 1, format!("msg/W{i}"));
                    store
                        .write(move |tx| Box::pin(async move { queue::insert_message(tx, &m, &r).await }))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:?}: {count} messages from {tasks} writers in {secs:.2}s: {:.0}/s",
        store.backend(),
        count as f64 / secs
    );
    store.close().await;
}
