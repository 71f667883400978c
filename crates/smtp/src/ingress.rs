//! The seam between SMTP and everything after it.
//!
//! A session that has a complete, well-formed message hands it to an [`Ingress`] and says 250
//! only when that returns an id. The SMTP layer knows nothing of inspection or policy: a
//! content filter wraps an `Ingress` and answers with a [`Rejection`] (550 5.7.1 for a
//! refused message, 451 4.3.0 to make the client try later), which the client sees as is.

use std::fmt;

use bytes::Bytes;
use carepost_delivery::{Spool, Submission};
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

impl AcceptedMessage {
    /// Whether DMARC handling asked for the message to be held rather than delivered.
    pub fn quarantined(&self) -> bool {
        self.arrival.sender_auth.as_ref().is_some_and(|a| a.action == "quarantine")
    }
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

/// The plain way in: straight into the durable queue.
#[derive(Debug, Clone)]
pub struct SpoolIngress {
    spool: Spool,
}

impl SpoolIngress {
    pub fn new(spool: Spool) -> Self {
        SpoolIngress { spool }
    }
}

/// The Message-ID header of a message, if it has one in its header section.
pub fn message_id_header(message: &[u8]) -> Option<String> {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(message.len());
    let head = &message[..end];
    let mut lines = head.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() >= 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            let mut value = String::from_utf8_lossy(&line[11..]).trim().to_owned();
            while let Some(next) = lines.peek() {
                if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    let next = next.strip_suffix(b"\r").unwrap_or(next);
                    value.push_str(String::from_utf8_lossy(next).trim());
                    lines.next();
                } else {
                    break;
                }
            }
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

impl Ingress for SpoolIngress {
    fn accept(&self, m: AcceptedMessage) -> BoxFuture<'_, Result<MessageId, Rejection>> {
        Box::pin(async move {
            let held = m.quarantined();
            let recipients = m.envelope.recipients.len();
            let message_id = message_id_header(&m.message);
            let mut s = Submission::new(m.tenant, m.envelope, m.arrival, m.message);
            s.message_id_header = message_id;
            if held {
                s.held = vec![true; recipients];
            }
            self.spool.accept(s).await.map_err(|e| {
                tracing::error!(error = %e, "cannot queue an accepted message");
                Rejection::temporary("Error: queue file write error; try again later")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_message_id_header() {
        assert_eq!(message_id_header(b"From: a\r\nMessage-ID: <x@y>\r\n\r\nbody").as_deref(), Some("<x@y>"));
        assert_eq!(message_id_header(b"message-id:\r\n <folded@y>\r\n\r\n").as_deref(), Some("<folded@y>"));
        assert_eq!(message_id_header(b"From: a\r\n\r\nMessage-ID: <in-body@y>\r\n"), None);
        assert_eq!(message_id_header(b""), None);
    }
}
