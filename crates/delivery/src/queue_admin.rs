//! The operator's view of the queue (`carepost queue ...`): list, show, retry, hold,
//! release and delete. Every change is audited; delete returns the message to its sender
//! with the operator's reason, so nothing leaves the queue silently.

use carepost_audit::{Event, Outcome as AuditOutcome};
use carepost_model::{DsnNotify, Timestamp};
use carepost_store::StoreError;
use carepost_store::queue::{self, RecipientUpdate, state};

use crate::dsn::{self, Action, DsnRecipient};
use crate::{Spool, SpoolError, Submission, decision};

/// One line of `carepost queue list`.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    pub id: String,
    pub tenant: String,
    pub received_at: Timestamp,
    pub size: i64,
    pub source: String,
    /// Recipients per state: queued, inflight, held, quarantined, delivered, bounced.
    pub counts: Vec<(String, usize)>,
    /// When the earliest queued recipient is next tried.
    pub next_attempt: Option<Timestamp>,
    pub attempts: i64,
}

/// Messages with recipients still to deliver (queued, in flight, held or quarantined), newest first.
pub async fn list(spool: &Spool, limit: i64) -> Result<Vec<QueueEntry>, SpoolError> {
    let store = spool.store();
    let mut out = Vec::new();
    for m in store.messages_in_state(state::ACTIVE, limit).await? {
        let rows = store.recipients(&m.id).await?;
        let mut counts: Vec<(String, usize)> = Vec::new();
        for s in [state::QUEUED, state::INFLIGHT, state::HELD, state::QUARANTINED, state::DELIVERED, state::BOUNCED] {
            let n = rows.iter().filter(|r| r.state == s).count();
            if n > 0 {
                counts.push((s.to_owned(), n));
            }
        }
        let next_attempt = rows
            .iter()
            .filter(|r| r.state == state::QUEUED)
            .map(|r| r.next_attempt_at)
            .min()
            .map(Timestamp::from_micros);
        out.push(QueueEntry {
            id: m.id.clone(),
            tenant: m.tenant.clone(),
            received_at: Timestamp::from_micros(m.received_at),
            size: m.size,
            source: m.source.clone(),
            counts,
            next_attempt,
            attempts: rows.iter().map(|r| r.attempts).max().unwrap_or(0),
        });
    }
    Ok(out)
}

/// What `carepost queue show` prints about one recipient.
#[derive(Debug, Clone)]
pub struct RecipientView {
    pub idx: i64,
    pub address: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt: Timestamp,
    pub last_reply: Option<String>,
    pub method: Option<String>,
    pub require_verified_tls: bool,
}

#[derive(Debug, Clone)]
pub struct MessageView {
    pub id: String,
    pub tenant: String,
    pub received_at: Timestamp,
    pub source: String,
    pub size: i64,
    pub state: String,
    pub sender: Option<String>,
    pub require_tls: bool,
    pub recipients: Vec<RecipientView>,
}

/// Opens a message for an operator. This shows addresses (PHI), so it is audited.
pub async fn show(spool: &Spool, actor: &str, id: &str) -> Result<MessageView, SpoolError> {
    let opened = spool.open(id).await?;
    spool
        .audit()
        .append(Event::new(actor, "queue.show").target(format!("msg:{id}")))
        .await
        .map_err(|e| SpoolError::Store(StoreError::Corrupt(e.to_string())))?;
    Ok(MessageView {
        id: opened.row.id.clone(),
        tenant: opened.row.tenant.clone(),
        received_at: Timestamp::from_micros(opened.row.received_at),
        source: opened.row.source.clone(),
        size: opened.row.size,
        state: opened.row.state.clone(),
        sender: opened.envelope.mail_from.as_ref().map(|a| a.as_str().to_owned()),
        require_tls: opened.envelope.require_tls,
        recipients: opened
            .recipients
            .iter()
            .map(|r| RecipientView {
                idx: r.row.idx,
                address: r.recipient.address.as_str().to_owned(),
                state: r.row.state.clone(),
                attempts: r.row.attempts,
                next_attempt: Timestamp::from_micros(r.row.next_attempt_at),
                last_reply: r.last_reply.clone(),
                method: r.row.method.clone(),
                require_verified_tls: decision::requires_verified_tls(r.decision.as_ref()),
            })
            .collect(),
    })
}

pub(crate) async fn change(
    spool: &Spool,
    actor: &str,
    id: &str,
    action: &'static str,
    from: &'static [&'static str],
    to: &'static str,
) -> Result<u64, SpoolError> {
    if spool.store().message(id).await?.is_none() {
        return Err(SpoolError::NotFound(id.to_owned()));
    }
    let (audit, id) = (spool.audit().clone(), id.to_owned());
    let actor = actor.to_owned();
    let now = Timestamp::now().as_micros();
    let changed = spool
        .store()
        .write(move |tx| {
            Box::pin(async move {
                let n = queue::set_recipient_state(tx, &id, None, from, to, Some(now)).await?;
                let event = Event::new(actor, action).target(format!("msg:{id}")).detail("recipients", n);
                audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(n)
            })
        })
        .await?;
    spool.wake().notify_one();
    Ok(changed)
}

/// Makes queued recipients due now. Returns how many.
pub async fn retry(spool: &Spool, actor: &str, id: &str) -> Result<u64, SpoolError> {
    change(spool, actor, id, "queue.retry", &[state::QUEUED], state::QUEUED).await
}

/// Holds queued recipients until released. Returns how many.
pub async fn hold(spool: &Spool, actor: &str, id: &str) -> Result<u64, SpoolError> {
    change(spool, actor, id, "queue.hold", &[state::QUEUED, state::INFLIGHT], state::HELD).await
}

/// Releases held recipients for delivery now. Returns how many.
pub async fn release(spool: &Spool, actor: &str, id: &str) -> Result<u64, SpoolError> {
    change(spool, actor, id, "queue.release", &[state::HELD], state::QUEUED).await
}

/// Ends delivery of every open recipient of a message: they are bounced with the
/// operator's reason and the sender is told (unless it asked not to be, or is the null
/// sender). Returns how many recipients were bounced.
pub async fn delete(
    spool: &Spool,
    actor: &str,
    id: &str,
    reason: &str,
    reporting_mta: &str,
) -> Result<u64, SpoolError> {
    let ending = Ending {
        from_states: &[state::QUEUED, state::INFLIGHT, state::HELD, state::QUARANTINED],
        action: "queue.delete",
        status: "5.0.0",
        explanation: format!("delivery was cancelled by the administrator: {reason}"),
        reason,
    };
    end_recipients(spool, actor, id, &ending, reporting_mta).await
}

/// How a set of recipients is ended by hand.
pub(crate) struct Ending<'a> {
    /// Only recipients in these states are ended.
    pub from_states: &'a [&'a str],
    /// The audit action.
    pub action: &'static str,
    /// The enhanced status code reported to the sender.
    pub status: &'static str,
    /// What the sender's bounce says happened.
    pub explanation: String,
    /// The operator's words, kept only as a keyed hash in the audit log.
    pub reason: &'a str,
}

/// Bounces the recipients of `id` that are in `ending.from_states`, tells the sender with a
/// DSN as their NOTIFY asks, and audits it. Returns how many recipients were ended.
pub(crate) async fn end_recipients(
    spool: &Spool,
    actor: &str,
    id: &str,
    ending: &Ending<'_>,
    reporting_mta: &str,
) -> Result<u64, SpoolError> {
    let opened = spool.open(id).await?;
    let now = Timestamp::now();
    let open: Vec<_> =
        opened.recipients.iter().filter(|r| ending.from_states.contains(&r.row.state.as_str())).collect();
    if open.is_empty() {
        return Ok(0);
    }
    let text = format!("{} {}", ending.status, ending.explanation);
    let notify_entries: Vec<DsnRecipient> = open
        .iter()
        .filter(|r| {
            let n = r.recipient.notify.unwrap_or_else(DsnNotify::implicit);
            n.failure && !n.never
        })
        .map(|r| DsnRecipient {
            address: r.recipient.address.as_str().to_owned(),
            orcpt: r.recipient.orcpt.clone(),
            action: Action::Failed,
            status: ending.status.into(),
            remote_mta: None,
            diagnostic: None,
            reason: ending.explanation.clone(),
            last_attempt: Some(now),
            will_retry_until: None,
        })
        .collect();
    if let (Some(sender), false) = (opened.envelope.mail_from.clone(), notify_entries.is_empty()) {
        let original = spool.body(&opened).await.unwrap_or_default();
        let report = dsn::DsnReport {
            reporting_mta,
            sender: sender.as_str(),
            envid: opened.envelope.dsn_envid.as_deref(),
            arrival: Timestamp::from_micros(opened.row.received_at),
            queue_id: &opened.row.id,
            recipients: &notify_entries,
            original: &original,
            ret: opened.envelope.dsn_ret,
        };
        let message_id = format!("<{}.dsn@{reporting_mta}>", carepost_model::Id::new());
        let body = dsn::build(&report, &message_id);
        let strict = opened.envelope.require_tls
            || opened.recipients.iter().any(|r| decision::requires_verified_tls(r.decision.as_ref()));
        let envelope = carepost_model::Envelope {
            mail_from: None,
            recipients: vec![carepost_model::Recipient::new(sender.clone())],
            dsn_ret: None,
            dsn_envid: None,
            require_tls: false,
            smtputf8: sender.is_utf8(),
            body: carepost_model::BodyType::EightBitMime,
        };
        let arrival = carepost_model::Arrival::system();
        let mut submission = Submission::new(opened.tenant.clone(), envelope, arrival, bytes::Bytes::from(body));
        submission.message_id_header = Some(message_id);
        submission.decisions = vec![strict.then(decision::verified_tls)];
        spool.accept(submission).await?;
    }
    let mut updates = Vec::new();
    for r in &open {
        updates.push((
            r.row.idx,
            RecipientUpdate {
                state: state::BOUNCED,
                attempts: r.row.attempts,
                next_attempt_at: now.as_micros(),
                last_reply: Some(opened.seal_reply(r.row.idx, &text)?),
                method: None,
                delay_notified: r.row.delay_notified,
                status: Some(ending.status.to_owned()),
            },
        ));
    }
    let n = updates.len() as u64;
    let event = Event::new(actor, ending.action)
        .target(format!("msg:{id}"))
        .outcome(AuditOutcome::Success)
        .detail("recipients", n)
        .detail_hashed("reason", ending.reason.as_bytes());
    let (audit, id) = (spool.audit().clone(), id.to_owned());
    spool
        .store()
        .write(move |tx| {
            Box::pin(async move {
                for (idx, u) in &updates {
                    queue::update_recipient(tx, &id, *idx, u).await?;
                }
                audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                queue::finish_if_done(tx, &id).await?;
                Ok(())
            })
        })
        .await?;
    Ok(n)
}
