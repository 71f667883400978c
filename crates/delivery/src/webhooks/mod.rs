//! Webhooks: delivery events, signed and sent to the endpoints an administrator registers.
//!
//! The [`events`](carepost_store::events) table is the outbox: every recipient state change
//! writes its event in the same transaction as the change. The [`Dispatcher`] started by
//! `carepost serve` fans new events out to each endpoint that asked for their kind, POSTs a
//! JSON [`Payload`] signed with the endpoint's secret ([`signature`]: HMAC-SHA256 over
//! `"<unix time>.<body>"`, as Stripe does), and retries with exponential back-off and jitter
//! until the endpoint answers 2xx or `give_up_after` passes. Delivery is at least once; the
//! event id lets receivers drop duplicates.
//!
//! Payloads carry no PHI: ids, the event type, the delivery method, attempt counts, status
//! codes, times, and the recipient as its index in the message plus a keyed hash (HMAC under
//! a tenant secret) that tells recipients apart without naming them.

mod config;
mod dispatcher;
pub mod endpoints;
mod payload;
pub mod signature;
pub mod target;

pub use config::{UrlError, WebhooksConfig, check_url};
pub use dispatcher::Dispatcher;
pub use payload::{Payload, RecipientRef};

/// Event kinds an endpoint receives when `--events` is not given.
pub const DEFAULT_EVENTS: &[&str] = &["delivered", "deferred", "bounced", "opened", "retracted"];
