//! The seam between SMTP and everything after it.
//!
//! A session that has a complete, well-formed message hands it to an [`Ingress`] and says 250
//! only when that returns an id. The SMTP layer knows nothing of inspection or policy: a
//! content filter wraps an `Ingress` and answers with a [`Rejection`] (550 5.7.1 for a
//! refused message, 451 4.3.0 to make the client try later), which the client sees as is.

use std::fmt;

use bytes::Bytes;
use carepost_intake::{Intake, IntakeError};
use carepost_model::{Arrival, Envelope, MessageId, TenantId};
use futures::future::BoxFuture;

use crate::reply::Reply;

/// A message that passed every SMTP-level check.
#[derive(Debug, Clone)]
pub struct AcceptedMessage {
    pub tenant: TenantId,
    pub envelope: Envelope,
    /// How it arrived; `arrival.sender_auth` holds the MX's SPF/DKIM/DMARC/ARC results and
    /// what was decided about a DMARC failure.
    pub arrival: Arrival,
    /// The whole message with carepost's Received and Authentication-Results headers first.
    pub message: Bytes,
}

/// Why a message was not taken: the SMTP reply the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    /// The enhanced status code, `class.subject.detail`.
    pub status: &'static str,
    pub text: String,
}

impl Rejection {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Self {
        Rejection { code, status, text: text.into() }
    }

    /// A temporary local failure: the client keeps the message and retries.
    pub fn temporary(text: impl Into<String>) -> Self {
        Rejection::new(451, "4.3.0", text)
    }

    pub fn reply(&self) -> Reply {
        Reply::new(self.code, self.status, self.text.clone())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

/// Takes accepted messages. `accept` returns only once the message is durable.
pub trait Ingress: Send + Sync + 'static {
    fn accept(&self, message: AcceptedMessage) -> BoxFuture<'_, Result<MessageId, Rejection>>;
}

/// The way in: intake inspects the message, applies policy and makes it durable. A message
/// policy blocks gets a permanent refusal with the operator's text; anything else that goes
/// wrong is temporary, so the client keeps the message and retries.
#[derive(Debug, Clone)]
pub struct IntakeIngress {
    intake: Intake,
}

impl IntakeIngress {
    pub fn new(intake: Intake) -> Self {
        IntakeIngress { intake }
    }
}

impl Ingress for IntakeIngress {
    fn accept(&self, m: AcceptedMessage) -> BoxFuture<'_, Result<MessageId, Rejection>> {
        Box::pin(async move {
            match self.intake.submit(m.tenant, m.envelope, m.arrival, m.message).await {
                Ok(accepted) => Ok(accepted.id),
                Err(IntakeError::Blocked(text)) => Err(Rejection::new(550, "5.7.1", text)),
                Err(IntakeError::Invalid(text)) => Err(Rejection::new(550, "5.6.0", text)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot queue an accepted message");
                    Err(Rejection::temporary("Error: queue file write error; try again later"))
                }
            }
        })
    }
}
