//! The REST API for applications: `/api/v1` (carepost's own, errors as RFC 9457 problem
//! details), `/v3/mail/send` (SendGrid v3-compatible) and the OpenAPI document at
//! `/api/openapi.json`.
//!
//! Callers authenticate with `Authorization: Bearer <API key>`; no cookies, so no CSRF token
//! is involved. Keys are scoped (`send`, `status`, `admin`), may be limited to networks and
//! may expire; each key has its own request rate. Every message goes through the same
//! [`Intake`](carepost_intake::Intake) as SMTP (DLP, policy, sealing) and 202 is answered
//! only once it is durable.

/// API key secrets are the identity room's; the idempotency hash reuses their digest.
pub use carepost_identity::api_keys as keys;
mod auth;
pub mod compose;
mod error;

mod messages;
mod openapi;
pub mod request;
mod sendgrid;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::WebState;
use crate::rate_limit::RateLimiter;

pub use auth::Caller;
pub use error::ApiError;
pub use openapi::document;

/// Largest number of messages in one batch.
pub const MAX_BATCH: usize = 1000;

/// What the API keeps between requests: per-key rate limiters and the idempotency keys of
/// requests in progress.
#[derive(Default)]
pub(crate) struct ApiShared {
    limiters: Mutex<HashMap<String, Arc<RateLimiter<()>>>>,
    in_progress: Mutex<HashSet<Vec<u8>>>,
}

impl ApiShared {
    /// Counts one request of `key_id`, allowed `per_minute`.
    fn check_rate(&self, key_id: &str, per_minute: u32) -> Result<(), Duration> {
        let limiter = {
            let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > 10_000 {
                map.clear();
            }
            map.entry(key_id.to_owned())
                .or_insert_with(|| Arc::new(RateLimiter::new(per_minute, Duration::from_secs(60))))
                .clone()
        };
        limiter.check(&())
    }

    /// Marks an idempotency hash as in progress; `None` when it already is.
    fn begin(self: &Arc<Self>, hash: Vec<u8>) -> Option<InProgress> {
        let mut set = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(hash.clone()) {
            return None;
        }
        Some(InProgress { shared: self.clone(), hash })
    }
}

/// An idempotency key being worked on; released when dropped.
pub(crate) struct InProgress {
    shared: Arc<ApiShared>,
    hash: Vec<u8>,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.shared.in_progress.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.hash);
    }
}

/// The API's routes, to merge into the main router.
pub fn routes() -> Router<WebState> {
    let shared = Arc::new(ApiShared::default());
    Router::new()
        .route("/api/openapi.json", get(openapi::serve))
        .route("/api/v1/messages", post(messages::send))
        .route("/api/v1/messages/batch", post(messages::send_batch))
        .route("/api/v1/messages/{id}", get(messages::status))
        .route("/v3/mail/send", post(sendgrid::send))
        .layer(axum::Extension(shared))
}

/// Whether a path belongs to the API (no cookies, no CSRF nonce).
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/v3/")
}
