//! Background jobs on a clock. Each job is its room's (the portal's expiry, the audit head's
//! signature); the binary only decides how often it runs.

use std::future::Future;
use std::time::Duration;

/// Runs `job` now and then every `period` until the task is aborted. A run that overruns its
/// period delays the next one rather than overlapping it.
pub fn every<F, Fut>(period: Duration, job: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            job().await;
        }
    })
}

/// A job that runs on one node at a time when several nodes share a store: the node that
/// holds the store lease `name` runs it, and keeps the lease by renewing it on every run. A
/// node that dies stops renewing, and another takes the lease once it runs out (`ttl`). On
/// an unshared store (SQLite) the one process always runs it.
#[derive(Clone)]
pub struct Singleton {
    store: carepost_store::Store,
    name: &'static str,
    ttl: Duration,
}

impl Singleton {
    pub fn new(store: carepost_store::Store, name: &'static str, ttl: Duration) -> Self {
        Singleton { store, name, ttl }
    }

    /// Takes or renews the lease; whether this node may run the job now.
    pub async fn hold(&self) -> bool {
        if !self.store.backend().is_shared() {
            return true;
        }
        let now = carepost_model::Timestamp::now().as_micros();
        let until = now + self.ttl.as_micros() as i64;
        match self.store.try_acquire_lease(self.name, self.store.node_id(), now, until).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, lease = self.name, "cannot renew a job lease; the job waits");
                false
            }
        }
    }

    /// Hands the lease back at a clean stop, so another node need not wait for it to run out.
    pub async fn release(&self) {
        if self.store.backend().is_shared()
            && let Err(e) = self.store.release_lease(self.name, self.store.node_id()).await
        {
            tracing::warn!(error = %e, lease = self.name, "cannot hand back a job lease; it runs out");
        }
    }
}

/// [`every`], on one node at a time: the lease lasts three periods, so a dead holder's job
/// is taken over at most three periods later.
pub fn every_on_one_node<F, Fut>(
    store: carepost_store::Store,
    name: &'static str,
    period: Duration,
    job: F,
) -> (Singleton, tokio::task::JoinHandle<()>)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let lease = Singleton::new(store, name, period * 3);
    let job = std::sync::Arc::new(job);
    let held = lease.clone();
    let handle = every(period, move || {
        let (lease, job) = (held.clone(), job.clone());
        async move {
            if lease.hold().await {
                job().await;
            }
        }
    });
    (lease, handle)
}

/// Runs a long-lived task (started by `start` with its own stop signal) only while this node
/// holds `lease`, checked every `check`; stops it when the lease is lost and starts it again
/// when the lease is taken back. Returns when `shutdown` turns true, after stopping the task
/// and handing the lease back.
pub async fn while_holding<F, Fut>(
    lease: Singleton,
    check: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    start: F,
) where
    F: Fn(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !lease.hold().await {
            tokio::select! {
                _ = tokio::time::sleep(check) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut task = tokio::spawn(start(stopped));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(check) => {
                    if !lease.hold().await {
                        tracing::warn!(lease = lease.name, "lost a job lease; another node runs the job");
                        break;
                    }
                }
                _ = shutdown.changed() => break,
                _ = &mut task => break,
            }
        }
        let _ = stop.send(true);
        if !task.is_finished() {
            let _ = task.await;
        }
    }
    lease.release().await;
}
