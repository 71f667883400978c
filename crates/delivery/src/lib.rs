//! The durable queue and everything that moves mail out of it.
//!
//! [`Spool`] is the only way into the queue: SMTP ingress, the REST API, portal replies and
//! carepost's own notices all hand it a message, and it answers only once the message is
//! durable (sealed body fsynced, queue rows and audit record committed). Delivery reads
//! messages back through it.
//!
//! Outbound delivery: [`QueueRunner`] claims due recipients and delivers them per
//! destination ([`routing`]: smart host, transport map, MX with null and implicit MX) over
//! carepost's own SMTP client ([`client`]), under the strongest TLS policy that applies
//! ([`tls_policy`]: DANE > MTA-STS > TLS-required domains > opportunistic), signs with
//! [`dkim`], retries with back-off ([`retry`]), tells senders with DSNs ([`dsn`]) and keeps
//! a per-tenant [`suppression`] list. [`queue_admin`] is the operator's view of the queue.
//! What policy decided per recipient is read through [`decision`] and carried out as its
//! plan: S/MIME or PGP/MIME ([`protect`]), verified TLS, or the secure portal ([`portal`]).

pub mod client;
pub mod config;
pub mod decision;
pub mod dkim;
pub mod dns;
pub mod dsn;
pub mod intake;
pub mod portal;
pub mod protect;
pub mod quarantine;
pub mod queue_admin;
pub mod retry;
pub mod routing;
pub mod runner;
mod spool;
pub mod suppression;
pub mod tls_policy;
pub mod tls_rpt;
pub mod webhooks;

pub use config::{DeliveryConfig, Interval, SmartHostTls};
pub use intake::{
    Accepted, CertificateLearning, Inspection, Intake, IntakeError, IntakeSettings, SubmitHints, inspect,
};
pub use runner::{QueueRunner, RunnerEnv, RunnerError};
pub use spool::{OpenedMessage, OpenedRecipient, Spool, SpoolError, Submission, message_object};
