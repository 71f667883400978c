//! Singleton jobs through store leases: two stores (two nodes' worth: each has its own node
//! id and connections) on one PostgreSQL database run a job one at a time, and the other takes
//! over once the holder stops renewing. On SQLite the one process just runs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use carepost::jobs::{Singleton, every_on_one_node, while_holding};
use carepost_store::{Store, StoreOptions};
use carepost_testkit::eventually;

const WAIT: Duration = Duration::from_secs(60);
const PERIOD: Duration = Duration::from_secs(1);

async fn node(url: &str) -> Store {
    Store::connect(&StoreOptions { url: url.to_owned(), pool_size: 2 }).await.unwrap()
}

/// One node's runs of the job, and whether two runs ever overlapped across nodes.
#[derive(Clone)]
struct Probe {
    runs: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    overlapped: Arc<AtomicBool>,
}

impl Probe {
    async fn run(&self) {
        if self.running.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlapped.store(true, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_job_runs_on_one_node_and_moves_when_it_stops_renewing() {
    let url = carepost_testkit::postgres::fresh_database();
    let (running, overlapped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let probes: Vec<Probe> = (0..2)
        .map(|_| Probe {
            runs: Arc::new(AtomicUsize::new(0)),
            running: running.clone(),
            overlapped: overlapped.clone(),
        })
        .collect();
    let mut tasks = Vec::new();
    for probe in &probes {
        let probe = probe.clone();
        let store = node(&url).await;
        let (_, task) = every_on_one_node(store, "test.sweep", PERIOD, move || {
            let probe = probe.clone();
            async move { probe.run().await }
        });
        tasks.push(task);
    }
    let runs = |i: usize| probes[i].runs.load(Ordering::SeqCst);
    eventually("three runs", WAIT, async || runs(0) + runs(1) >= 3).await;
    let holder = if runs(0) > 0 { 0 } else { 1 };
    assert_eq!(runs(1 - holder), 0, "only the lease holder runs the job");

    // The holder stops (as a killed node does: no release); the other takes over once the
    // lease (three periods) runs out.
    tasks[holder].abort();
    eventually("the other node to take the job over", WAIT, async || runs(1 - holder) >= 2).await;
    tasks[1 - holder].abort();
    assert!(!overlapped.load(Ordering::SeqCst), "two nodes ran the job at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_job_runs_while_its_node_holds_the_lease_and_is_handed_back_at_stop() {
    let url = carepost_testkit::postgres::fresh_database();
    let active = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicBool::new(false));
    let started: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for count in &started {
        let lease = Singleton::new(node(&url).await, "test.dispatch", PERIOD * 3);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (active, overlapped, count) = (active.clone(), overlapped.clone(), count.clone());
        tasks.push(tokio::spawn(while_holding(lease, PERIOD, stopped, move |mut stop| {
            let (active, overlapped, count) = (active.clone(), overlapped.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                if active.fetch_add(1, Ordering::SeqCst) > 0 {
                    overlapped.store(true, Ordering::SeqCst);
                }
                let _ = stop.wait_for(|s| *s).await;
                active.fetch_sub(1, Ordering::SeqCst);
            }
        })));
        stops.push(stop);
    }
    eventually("one node to start the job", WAIT, async || active.load(Ordering::SeqCst) == 1).await;
    let holder = if started[0].load(Ordering::SeqCst) > 0 { 0 } else { 1 };
    // A clean stop hands the lease back: the other node starts the job without waiting for
    // the lease to run out.
    stops[holder].send(true).unwrap();
    let _ = (&mut tasks[holder]).await;
    eventually("the other node to start the job", WAIT, async || started[1 - holder].load(Ordering::SeqCst) == 1).await;
    stops[1 - holder].send(true).unwrap();
    let _ = (&mut tasks[1 - holder]).await;
    assert_eq!(active.load(Ordering::SeqCst), 0, "the job stops with its node");
    assert!(!overlapped.load(Ordering::SeqCst), "two nodes ran the job at once");
}

#[tokio::test]
async fn on_sqlite_the_one_process_runs_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&StoreOptions::sqlite(&dir.path().join("carepost.db"))).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let (lease, task) = every_on_one_node(store, "test.sweep", Duration::from_millis(50), move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    eventually("two runs", WAIT, async || runs.load(Ordering::SeqCst) >= 2).await;
    task.abort();
    assert!(lease.hold().await);
}
