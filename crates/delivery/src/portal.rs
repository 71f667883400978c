//! The runner's side of the secure portal.
//!
//! When a recipient's plan reaches the portal step, the runner hands the stored message to
//! the [`Portal`] (which keeps a sealed copy for that recipient, audits it, and returns the
//! notices), then queues the notices before it records the recipient as delivered through
//! the portal. The portal lives below delivery; nothing here climbs back up to the binary.

use carepost_model::{Arrival, TenantId};
use carepost_secure::portal::{Notice, PickupRequest, Portal};

use crate::{OpenedMessage, Submission};

/// What the portal needs to keep the copy for the recipient at `pos` (a position in
/// `message.recipients`). The real subject shows in the notification only when policy's
/// decision says so; a decision that did not read back is the strictest, which does not.
pub fn pickup_request<'a>(message: &'a OpenedMessage, pos: usize, body: &'a [u8]) -> Option<PickupRequest<'a>> {
    let rcpt = message.recipients.get(pos)?;
    Some(PickupRequest {
        tenant: &message.tenant,
        source_message: &message.row.id,
        source_recipient: Some(rcpt.row.idx),
        sender: message.envelope.mail_from.as_ref(),
        recipient: &rcpt.recipient.address,
        message: body,
        reveal_subject: rcpt.decision.as_ref().is_some_and(|d| d.reveal_subject),
        passphrase_hash: message.portal_passphrase.as_deref(),
    })
}

/// A portal notice as a queue submission: carepost's own mail, DKIM-signed by normal delivery.
pub fn notice_submission(tenant: &TenantId, notice: Notice) -> Submission {
    let mut s = Submission::new(tenant.clone(), notice.envelope, Arrival::system(), notice.message.into());
    s.message_id_header = Some(notice.message_id);
    s
}

/// Keeps the copy and returns the notices as submissions to queue.
pub async fn hand_over(
    portal: &Portal,
    audit: &carepost_audit::Audit,
    message: &OpenedMessage,
    pos: usize,
    body: &[u8],
) -> Result<Vec<Submission>, String> {
    let request = pickup_request(message, pos, body).ok_or_else(|| format!("no recipient at position {pos}"))?;
    let notices = portal.hand_over(request, audit).await.map_err(|e| e.to_string())?;
    Ok(notices.into_iter().map(|n| notice_submission(&message.tenant, n)).collect())
}
