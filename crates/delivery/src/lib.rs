//! The durable queue and everything that moves mail out of it.
//!
//! [`Spool`] is the only way into the queue: SMTP ingress, the REST API, portal replies and
//! carepost's own notices all hand it a message, and it answers only once the message is
//! durable (sealed body fsynced, queue rows and audit record committed). Delivery reads
//! messages back through it.

mod spool;

pub use spool::{OpenedMessage, OpenedRecipient, Spool, SpoolError, Submission, message_object};
