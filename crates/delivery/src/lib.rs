//! The durable queue and everything that moves mail out of it.
//!
//! Messages come in through intake (carepost-intake), which queues them in the spool
//! (carepost-spool); delivery reads them back through the same spool, and queues its own
//! DSNs and reports there. It depends on neither intake nor the doors.
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
pub mod portal;
pub mod protect;
pub mod quarantine;
pub mod queue_admin;
pub mod retry;
pub mod routing;
pub mod runner;
pub mod suppression;
pub mod tls_policy;
pub mod tls_rpt;
pub mod webhooks;

pub(crate) use carepost_spool::{OpenedMessage, Spool, SpoolError, Submission};
pub use config::{DeliveryConfig, Interval, SmartHostTls};
pub use runner::{QueueRunner, RunnerEnv, RunnerError};
