//! The compliance officer's view of quarantined mail (`carepost quarantine ...`).
//!
//! Policy quarantines a recipient's copy instead of queueing it; nothing leaves until someone
//! releases it (it continues to delivery, as policy decided) or rejects it (the sender is
//! told, with the reason). Every action is audited.

use carepost_dlp::{Limits, Report};
use carepost_model::Timestamp;
use carepost_store::queue::state;

use crate::queue_admin::{Ending, change, end_recipients};
use crate::{Spool, SpoolError};

/// One line of `carepost quarantine list`.
#[derive(Debug, Clone)]
pub struct QuarantinedMessage {
    pub id: String,
    pub received_at: Timestamp,
    pub source: String,
    pub size: i64,
    pub quarantined: usize,
    /// The value-free inspection summary (JSON).
    pub inspection: Option<String>,
    /// Rules that matched for the quarantined recipients.
    pub rules: Vec<String>,
}

/// Messages with at least one quarantined recipient, newest first.
pub async fn list(spool: &Spool, limit: i64) -> Result<Vec<QuarantinedMessage>, SpoolError> {
    let store = spool.store();
    let mut out = Vec::new();
    for m in store.messages_with_recipient_state(state::QUARANTINED, limit).await? {
        let rows = store.recipients(&m.id).await?;
        let held: Vec<_> = rows.iter().filter(|r| r.state == state::QUARANTINED).collect();
        let mut rules: Vec<String> = Vec::new();
        for r in &held {
            let decision = r.decision.as_deref().and_then(carepost_policy::Decision::from_json);
            for rule in decision.map(|d| d.matched_rules).unwrap_or_default() {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
        out.push(QuarantinedMessage {
            id: m.id.clone(),
            received_at: Timestamp::from_micros(m.received_at),
            source: m.source.clone(),
            size: m.size,
            quarantined: held.len(),
            inspection: m.inspection.clone(),
            rules,
        });
    }
    Ok(out)
}

/// What a reviewer needs to decide: the envelope, which recipients are held and why, and the
/// findings with their values (this is the operator's own tool, on the operator's host).
pub struct Review {
    pub message: QuarantinedMessage,
    pub sender: Option<String>,
    /// Quarantined recipients' addresses.
    pub recipients: Vec<String>,
    pub report: Report,
    /// The message itself, opened.
    pub body: bytes::Bytes,
}

pub async fn show(spool: &Spool, id: &str) -> Result<Review, SpoolError> {
    let opened = spool.open(id).await?;
    let recipients: Vec<String> = opened
        .recipients
        .iter()
        .filter(|r| r.row.state == state::QUARANTINED)
        .map(|r| r.recipient.address.to_string())
        .collect();
    if recipients.is_empty() {
        return Err(SpoolError::NotFound(format!("quarantined message {id}")));
    }
    let body = spool.body(&opened).await?;
    let report = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || carepost_dlp::scan_eml(&body, &Limits::default()))
            .await
            .map_err(|e| SpoolError::Corrupt { id: id.to_owned(), reason: e.to_string() })?
    };
    let message = list_entry(spool, id).await?;
    Ok(Review {
        message,
        sender: opened.envelope.mail_from.as_ref().map(ToString::to_string),
        recipients,
        report,
        body,
    })
}

async fn list_entry(spool: &Spool, id: &str) -> Result<QuarantinedMessage, SpoolError> {
    list(spool, i64::MAX)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| SpoolError::NotFound(format!("quarantined message {id}")))
}

/// Lets the quarantined recipients continue to delivery, under the decision policy made.
pub async fn release(spool: &Spool, actor: &str, id: &str) -> Result<u64, SpoolError> {
    let n = change(spool, actor, id, "quarantine.release", &[state::QUARANTINED], state::QUEUED).await?;
    if n == 0 {
        return Err(SpoolError::NotFound(format!("quarantined message {id}")));
    }
    Ok(n)
}

/// Refuses the quarantined recipients: they are bounced and the sender is told the reason.
pub async fn reject(
    spool: &Spool,
    actor: &str,
    id: &str,
    reason: &str,
    reporting_mta: &str,
) -> Result<u64, SpoolError> {
    let ending = Ending {
        from_states: &[state::QUARANTINED],
        action: "quarantine.reject",
        status: "5.7.1",
        explanation: format!("the message was refused on compliance review: {reason}"),
        reason,
    };
    let n = end_recipients(spool, actor, id, &ending, reporting_mta).await?;
    if n == 0 {
        return Err(SpoolError::NotFound(format!("quarantined message {id}")));
    }
    Ok(n)
}
