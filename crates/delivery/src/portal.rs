//! The seam between delivery and the secure portal.
//!
//! When a recipient's plan reaches the portal step, the runner hands the stored message to a
//! [`PortalHandoff`], which keeps a sealed copy for that recipient and returns the notices
//! to queue (the recipient's notification, the sender's receipt). The runner queues them
//! before it records the recipient as delivered through the portal.

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::{OpenedMessage, Submission};

pub trait PortalHandoff: Send + Sync {
    /// Stores `message` for the recipient at `recipient` (a position in
    /// `message.recipients`) and returns the notices to queue.
    fn hand_over<'a>(
        &'a self,
        message: &'a OpenedMessage,
        recipient: usize,
        body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Vec<Submission>, String>>;
}
