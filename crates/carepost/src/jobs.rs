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
