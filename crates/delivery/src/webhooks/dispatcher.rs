//! The dispatcher: fans new events out to endpoints and POSTs what is due, with retries.
//!
//! Restart-safe: what is owed lives in `webhook_deliveries`, and an attempt is recorded
//! only after the endpoint answered (or did not), so a crash in between sends that event
//! again. Receivers drop repeats by event id.
//!
//! Each endpoint with something due gets its own worker, which sends that endpoint's events
//! one at a time, oldest first; at most `concurrency` workers run at once. An endpoint that
//! is slow, or never answers, therefore holds up only its own events, and never for longer
//! than `timeout` per attempt. A stopping dispatcher gives its workers [`SHUTDOWN_GRACE`]
//! to finish the attempt in hand, then drops them; what they were sending is sent again
//! after the next start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use carepost_audit::{Event, Outcome};
use carepost_model::{Id, Timestamp};
use carepost_store::StoreError;
use carepost_store::webhooks::{AttemptResult, DeliveryRow, EndpointRow, state};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::target::{self, CheckedResolver, TargetPolicy};
use super::{Payload, WebhooksConfig, check_url, endpoints, signature};
use crate::Spool;

/// Events fanned out per endpoint and pass, and deliveries one worker fetches at a time.
const BATCH: i64 = 500;
/// How long a stopping dispatcher waits for attempts in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Sends webhook events. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    spool: Spool,
    config: WebhooksConfig,
    policy: Arc<TargetPolicy>,
    http: reqwest::Client,
}

/// Why a POST got no HTTP status.
enum PostError {
    /// The endpoint's address is one the configuration does not permit.
    Refused(target::Refused),
    Other(String),
}

impl Dispatcher {
    pub fn new(spool: Spool, config: WebhooksConfig) -> Result<Self, String> {
        let policy = Arc::new(TargetPolicy::from_config(&config).map_err(|e| e.to_string())?);
        let http = reqwest::Client::builder()
            .https_only(!config.allow_http_loopback)
            // A redirect could lead the signed payload somewhere the administrator did not name.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, out of reach of the address check.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver::new(policy.clone())))
            .timeout(config.timeout.duration().max(Duration::from_secs(1)))
            .user_agent(concat!("carepost-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Dispatcher { spool, config, policy, http })
    }

    /// Runs until `shutdown` turns true, then waits at most [`SHUTDOWN_GRACE`] for attempts
    /// in progress. An attempt cut short is not recorded and is made again after the next
    /// start.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut workers: JoinSet<String> = JoinSet::new();
        let mut busy = Busy::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = workers.try_join_next_with_id() {
                busy.finished(done);
            }
            if let Err(e) = self.start_workers(&mut workers, &mut busy, &shutdown).await {
                tracing::error!(error = %e, "webhook dispatch failed");
            }
            let now = Timestamp::now().as_micros();
            let wait = match self.spool.store().next_webhook_due().await {
                Ok(Some(due)) => Duration::from_micros((due - now).clamp(0, 1_000_000) as u64),
                _ => Duration::from_secs(1),
            }
            // What is due may belong to endpoints whose workers are still at it; a worker that
            // finishes wakes the loop, so there is no need to poll faster than once a second.
            .max(if workers.is_empty() { Duration::from_millis(50) } else { Duration::from_secs(1) });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
                Some(done) = workers.join_next_with_id(), if !workers.is_empty() => busy.finished(done),
            }
        }
        let drained =
            tokio::time::timeout(SHUTDOWN_GRACE, async { while workers.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::info!(
                workers = workers.len(),
                "webhook attempts still in progress at shutdown are made again after the next start"
            );
            workers.abort_all();
            while workers.join_next().await.is_some() {}
        }
    }

    /// Owes new events to the endpoints that want them, then starts a worker for each
    /// endpoint with something due that has none yet, up to `concurrency` in all.
    async fn start_workers(
        &self,
        workers: &mut JoinSet<String>,
        busy: &mut Busy,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<usize, StoreError> {
        let store = self.spool.store();
        let now = Timestamp::now().as_micros();
        let endpoints: HashMap<String, EndpointRow> =
            store.webhook_endpoints(false).await?.into_iter().map(|e| (e.id.clone(), e)).collect();
        // Only endpoints behind the newest event take the write lock the queue also needs.
        let newest = store.last_event_seq().await?;
        for endpoint in endpoints.values().filter(|e| e.cursor < newest) {
            store.fan_out_webhook_events(&endpoint.id, now, BATCH).await?;
        }
        let mut started = 0;
        for id in store.webhook_endpoints_due(now).await? {
            if workers.len() >= self.config.concurrency.max(1) {
                break;
            }
            let Some(endpoint) = endpoints.get(&id).cloned() else { continue };
            if busy.contains(&id) {
                continue;
            }
            let (me, stop) = (self.clone(), shutdown.clone());
            let task = workers.spawn(async move {
                if let Err(e) = me.drain(&endpoint, &stop).await {
                    tracing::error!(error = %e, endpoint = %endpoint.id, "webhook dispatch failed");
                }
                endpoint.id
            });
            busy.started(task.id(), id);
            started += 1;
        }
        Ok(started)
    }

    /// Sends one endpoint's due events in order, one at a time, until none is due, one fails
    /// (the rest wait for its retry: an endpoint that is down would otherwise hold a worker
    /// for a whole timeout per event) or the dispatcher stops.
    async fn drain(&self, endpoint: &EndpointRow, stop: &watch::Receiver<bool>) -> Result<(), StoreError> {
        let store = self.spool.store();
        loop {
            let due = store.due_webhook_deliveries_for(&endpoint.id, Timestamp::now().as_micros(), BATCH).await?;
            if due.is_empty() {
                return Ok(());
            }
            for d in due {
                if *stop.borrow() {
                    return Ok(());
                }
                let result = self.attempt_within_deadline(endpoint, &d).await;
                let delivered = result.state == state::DELIVERED;
                if let Err(e) = store.record_webhook_attempt(&d.endpoint_id, d.event_seq, result).await {
                    tracing::error!(error = %e, "cannot record a webhook attempt; it will be made again");
                    return Ok(());
                }
                if !delivered {
                    return Ok(());
                }
            }
        }
    }

    /// One pass: new events owed, and a worker for each endpoint with something due (up to
    /// `concurrency`), waited for. Returns how many endpoints were worked for.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let (_stop, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        let mut busy = Busy::new();
        let started = self.start_workers(&mut workers, &mut busy, &stopped).await?;
        while workers.join_next().await.is_some() {}
        Ok(started)
    }

    /// [`Self::attempt`], cut off at `timeout` (plus a second for the store) whatever the
    /// endpoint does.
    async fn attempt_within_deadline(&self, endpoint: &EndpointRow, d: &DeliveryRow) -> AttemptResult {
        let deadline = self.config.timeout.duration().max(Duration::from_secs(1)) + Duration::from_secs(1);
        match tokio::time::timeout(deadline, self.attempt(endpoint, d)).await {
            Ok(result) => result,
            Err(_) => self.retry_or_give_up(d, None, "timed out".into()),
        }
    }

    fn give_up(&self, d: &DeliveryRow, why: &str) -> AttemptResult {
        AttemptResult {
            state: state::FAILED,
            next_attempt_at: d.next_attempt_at,
            status: None,
            error: Some(why.to_owned()),
            at: Timestamp::now().as_micros(),
        }
    }

    /// One POST of one event to one endpoint, and what it came to.
    async fn attempt(&self, endpoint: &EndpointRow, d: &DeliveryRow) -> AttemptResult {
        let event = match self.spool.store().event(d.event_seq).await {
            Ok(Some(e)) => e,
            Ok(None) => return self.give_up(d, "the event no longer exists (its message was deleted)"),
            Err(e) => return self.retry_or_give_up(d, None, format!("store: {e}")),
        };
        let payload = match Payload::from_event(self.spool.ring(), &event) {
            Ok(p) => p,
            Err(e) => return self.retry_or_give_up(d, None, format!("vault: {e}")),
        };
        match self.post(endpoint, &payload).await {
            Err(PostError::Refused(r)) => {
                let event = Event::new("webhooks", "webhook.deliver")
                    .target(format!("webhook:{}", endpoint.id))
                    .outcome(Outcome::Denied)
                    .detail("address", r.address.to_string())
                    .detail("reason", r.kind);
                if let Err(e) = self.spool.audit().append(event).await {
                    tracing::error!(error = %e, "cannot audit a refused webhook target");
                }
                self.retry_or_give_up(d, None, format!("refused: {r}"))
            }
            Ok(status) if (200..300).contains(&status) => AttemptResult {
                state: state::DELIVERED,
                next_attempt_at: d.next_attempt_at,
                status: Some(i64::from(status)),
                error: None,
                at: Timestamp::now().as_micros(),
            },
            Ok(status) => self.retry_or_give_up(d, Some(i64::from(status)), format!("HTTP {status}")),
            Err(PostError::Other(e)) => self.retry_or_give_up(d, None, e),
        }
    }

    /// The next attempt after a failure: exponential back-off with jitter, or failed once
    /// `give_up_after` has passed since the event was owed.
    fn retry_or_give_up(&self, d: &DeliveryRow, status: Option<i64>, error: String) -> AttemptResult {
        let now = Timestamp::now().as_micros();
        let give_up_at = d.created_at + micros(self.config.give_up_after.duration());
        let next = now + micros(self.backoff(d.attempts + 1));
        if next > give_up_at {
            tracing::warn!(endpoint = %d.endpoint_id, event = d.event_seq, %error, "webhook given up");
            return AttemptResult { state: state::FAILED, next_attempt_at: now, status, error: Some(error), at: now };
        }
        AttemptResult { state: state::PENDING, next_attempt_at: next, status, error: Some(error), at: now }
    }

    /// The wait before attempt `attempts + 1`: retry_first doubled per attempt up to
    /// retry_max, plus up to a fifth more at random so that endpoints coming back are not
    /// hit by every retry at once.
    fn backoff(&self, attempts: i64) -> Duration {
        let first = self.config.retry_first.duration().max(Duration::from_secs(1));
        let max = self.config.retry_max.duration().max(first);
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let wait = first.saturating_mul(1u32 << doublings).min(max);
        let mut random = [0u8; 4];
        let spread = if aws_lc_rs::rand::fill(&mut random).is_ok() {
            f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX)
        } else {
            0.5
        };
        wait + wait.mul_f64(spread / 5.0)
    }

    /// POSTs a payload, signed with the endpoint's secret. Returns the HTTP status, or why
    /// there was none (never payload content).
    async fn post(&self, endpoint: &EndpointRow, payload: &Payload) -> Result<u16, PostError> {
        let url =
            check_url(&endpoint.url, self.config.allow_http_loopback).map_err(|e| PostError::Other(e.to_string()))?;
        // Names are checked by the resolver as they are connected to; an address written in
        // the URL is never resolved, so it is checked here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            self.policy.check(ip).map_err(PostError::Refused)?;
        }
        let secret = endpoints::secret(&self.spool, endpoint)
            .await
            .map_err(|e| PostError::Other(format!("cannot open the endpoint's secret: {e}")))?;
        let body = serde_json::to_vec(payload).map_err(|e| PostError::Other(e.to_string()))?;
        let now = Timestamp::now().as_micros().div_euclid(1_000_000);
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(signature::HEADER, signature::header_value(&secret, now, &body))
            .header("carepost-event-id", &payload.id)
            .header("carepost-event-type", &payload.kind)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if let Some(r) = target::refusal_in(&e) {
                    PostError::Refused(r)
                } else if e.is_timeout() {
                    PostError::Other("timed out".to_owned())
                } else if e.is_connect() {
                    PostError::Other("could not connect".to_owned())
                } else {
                    PostError::Other("the request failed".to_owned())
                }
            })?;
        Ok(response.status().as_u16())
    }

    /// Sends a signed `test` event to an endpoint now; returns the HTTP status or why there
    /// was none.
    pub async fn send_test(&self, endpoint: &EndpointRow) -> Result<(String, u16), String> {
        let payload = Payload::test(Id::new().to_string());
        let status = self.post(endpoint, &payload).await.map_err(|e| match e {
            PostError::Refused(r) => format!("refused: {r}"),
            PostError::Other(e) => e,
        })?;
        Ok((payload.id, status))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}

/// The endpoints that have a worker, by the worker's task: a worker that ends in any way,
/// a panic included, frees its endpoint for the next one.
struct Busy(HashMap<tokio::task::Id, String>);

impl Busy {
    fn new() -> Self {
        Busy(HashMap::new())
    }

    fn contains(&self, endpoint: &str) -> bool {
        self.0.values().any(|e| e == endpoint)
    }

    fn started(&mut self, task: tokio::task::Id, endpoint: String) {
        self.0.insert(task, endpoint);
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, String), tokio::task::JoinError>) {
        let task = match done {
            Ok((task, _)) => task,
            Err(e) => {
                tracing::error!(error = %e, "a webhook worker ended abnormally");
                e.id()
            }
        };
        self.0.remove(&task);
    }
}
