//! The hook the archive's journal hangs on: every message intake queues is told to a
//! [`Journal`] once it is durable, with what inspection and policy made of it.
//!
//! The entry names the message in the spool rather than carrying its body: the body is
//! already sealed there, and the journal opens it (or copies the sealed blob) on its own
//! time. Recording must not hold up the sender's 250; a journal that fails reconciles from
//! the queue later, so a failure is the journal's to report, not intake's to refuse.

use carepost_model::{MessageId, Source, TenantId};
use futures::future::BoxFuture;

use crate::Inspection;

/// One queued message, as the journal is told of it.
#[derive(Debug, Clone, Copy)]
pub struct JournalEntry<'a> {
    pub tenant: &'a TenantId,
    /// The message's id in the spool.
    pub id: &'a MessageId,
    pub source: Source,
    /// The verdict and each recipient's decision, typed.
    pub inspection: &'a Inspection,
}

/// Implemented by the archive; intake calls it after each message is durable.
pub trait Journal: Send + Sync {
    fn record<'a>(&'a self, entry: JournalEntry<'a>) -> BoxFuture<'a, ()>;
}
