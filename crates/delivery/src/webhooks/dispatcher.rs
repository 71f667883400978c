//! The dispatcher: fans new events out to endpoints and POSTs what is due, with retries.
//!
//! Restart-safe: what is owed lives in `webhook_deliveries`, and an attempt is recorded
//! only after the endpoint answered (or did not), so a crash in between sends that event
//! again. Receivers drop repeats by event id.

use std::collections::HashMap;
use std::time::Duration;

use carepost_model::{Id, Timestamp};
use carepost_store::StoreError;
use carepost_store::webhooks::{AttemptResult, DeliveryRow, EndpointRow, state};
use futures::StreamExt;
use tokio::sync::watch;

use super::{Payload, WebhooksConfig, check_url, endpoints, signature};
use crate::Spool;

/// Events fanned out per endpoint and pass, and deliveries attempted per pass.
const BATCH: i64 = 500;

/// Sends webhook events. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    spool: Spool,
    config: WebhooksConfig,
    http: reqwest::Client,
}

impl Dispatcher {
    pub fn new(spool: Spool, config: WebhooksConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .https_only(!config.allow_http_loopback)
            // A redirect could lead the signed payload somewhere the administrator did not name.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout.duration().max(Duration::from_secs(1)))
            .user_agent(concat!("carepost-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Dispatcher { spool, config, http })
    }

    /// Runs until `shutdown` turns true. An attempt in progress at shutdown is not recorded
    /// and is made again after the next start.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let attempted = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "webhook dispatch failed");
                    0
                }
            };
            if attempted as i64 >= BATCH {
                continue;
            }
            let now = Timestamp::now().as_micros();
            let wait = match self.spool.store().next_webhook_due().await {
                Ok(Some(due)) => Duration::from_micros((due - now).clamp(0, 1_000_000) as u64),
                _ => Duration::from_secs(1),
            }
            .max(Duration::from_millis(50));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One pass: owes new events to the endpoints that want them, then attempts every due
    /// delivery. Returns how many deliveries it attempted.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let store = self.spool.store();
        let now = Timestamp::now().as_micros();
        let endpoints: HashMap<String, EndpointRow> = store.webhook_endpoints(false).await?.into_iter().map(|e| (e.id.clone(), e)).collect();
        // Only endpoints behind the newest event take the write lock the queue also needs.
        let newest = store.last_event_seq().await?;
        for endpoint in endpoints.values().filter(|e| e.cursor < newest) {
            store.fan_out_webhook_events(&endpoint.id, now, BATCH).await?;
        }
        let due = store.due_webhook_deliveries(now, BATCH).await?;
        let count = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(self.config.concurrency.max(1), |d| {
                let endpoint = endpoints.get(&d.endpoint_id).cloned();
                async move {
                    let result = match endpoint {
                        Some(endpoint) => self.attempt(&endpoint, &d).await,
                        None => self.give_up(&d, "the endpoint was removed"),
                    };
                    if let Err(e) = self.spool.store().record_webhook_attempt(&d.endpoint_id, d.event_seq, result).await {
                        tracing::error!(error = %e, "cannot record a webhook attempt; it will be made again");
                    }
                }
            })
            .await;
        Ok(count)
    }

    fn give_up(&self, d: &DeliveryRow, why: &str) -> AttemptResult {
        AttemptResult { state: state::FAILED, next_attempt_at: d.next_attempt_at, status: None, error: Some(why.to_owned()), at: Timestamp::now().as_micros() }
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
            Ok(status) if (200..300).contains(&status) => AttemptResult {
                state: state::DELIVERED,
                next_attempt_at: d.next_attempt_at,
                status: Some(i64::from(status)),
                error: None,
                at: Timestamp::now().as_micros(),
            },
            Ok(status) => self.retry_or_give_up(d, Some(i64::from(status)), format!("HTTP {status}")),
            Err(e) => self.retry_or_give_up(d, None, e),
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
        let spread = if aws_lc_rs::rand::fill(&mut random).is_ok() { f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX) } else { 0.5 };
        wait + wait.mul_f64(spread / 5.0)
    }

    /// POSTs a payload, signed with the endpoint's secret. Returns the HTTP status, or why
    /// there was none (never payload content).
    async fn post(&self, endpoint: &EndpointRow, payload: &Payload) -> Result<u16, String> {
        let url = check_url(&endpoint.url, self.config.allow_http_loopback).map_err(|e| e.to_string())?;
        let secret = endpoints::secret(&self.spool, endpoint).await.map_err(|e| format!("cannot open the endpoint's secret: {e}"))?;
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
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
                if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "the request failed".to_owned()
                }
            })?;
        Ok(response.status().as_u16())
    }

    /// Sends a signed `test` event to an endpoint now; returns the HTTP status or why there
    /// was none.
    pub async fn send_test(&self, endpoint: &EndpointRow) -> Result<(String, u16), String> {
        let payload = Payload::test(Id::new().to_string());
        let status = self.post(endpoint, &payload).await?;
        Ok((payload.id, status))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}
