//! Wiring of the secure portal: the [`Portal`] built from `[web]`, the hand-off the queue
//! runner calls when a recipient's plan reaches the portal, and the expiry sweep.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use carepost_audit::{Audit, Event, Outcome};
use carepost_delivery::portal::PortalHandoff;
use carepost_delivery::{OpenedMessage, Submission};
use carepost_model::Arrival;
use carepost_secure::portal::{Notice, PickupRequest, Portal, PortalSettings};

use crate::Installation;

/// The portal over the installation's store, keys and blobs. `public_url` is where links point.
pub fn portal(install: &Installation, public_url: String) -> Portal {
    let web = &install.config.web;
    let settings = PortalSettings {
        public_url,
        organization: web.organization.clone(),
        expiry_secs: i64::try_from(web.portal_expiry.as_secs()).unwrap_or(i64::MAX / 2_000_000),
        hostname: install.config.hostname.clone(),
    };
    Portal::new(install.store.clone(), install.ring.clone(), install.blobs.clone(), settings)
}

/// Hands copies to the [`Portal`] and returns its notices as submissions to queue.
pub struct Handoff {
    portal: Portal,
    audit: Audit,
}

impl Handoff {
    pub fn new(portal: Portal, audit: Audit) -> Self {
        Handoff { portal, audit }
    }
}

fn system_arrival() -> Arrival {
    Arrival {
        source: carepost_model::Source::System,
        client_ip: None,
        helo: None,
        authenticated_as: None,
        tls: None,
        sender_auth: None,
    }
}

/// A notice as a queue submission: carepost's own mail, DKIM-signed by normal delivery.
pub fn notice_submission(tenant: &carepost_model::TenantId, notice: Notice) -> Submission {
    let message_id = mail_message_id(&notice.message);
    let mut s = Submission::new(tenant.clone(), notice.envelope, system_arrival(), Bytes::from(notice.message));
    s.message_id_header = message_id;
    s
}

fn mail_message_id(message: &[u8]) -> Option<String> {
    let head = message.split(|b| *b == b'\n').take_while(|l| l.len() > 1);
    for line in head {
        let text = String::from_utf8_lossy(line);
        if let Some((name, value)) = text.split_once(':')
            && name.eq_ignore_ascii_case("message-id")
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

impl PortalHandoff for Handoff {
    fn hand_over<'a>(
        &'a self,
        message: &'a OpenedMessage,
        recipient: usize,
        body: &'a Bytes,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Submission>, String>> + Send + 'a>> {
        Box::pin(async move {
            let rcpt =
                message.recipients.get(recipient).ok_or_else(|| format!("no recipient at position {recipient}"))?;
            let source = message.row.id.to_string();
            // Decisions that do not read back are treated as the strictest: a neutral subject.
            let reveal_subject =
                carepost_delivery::decision::read(rcpt.row.decision.as_deref()).is_some_and(|d| d.reveal_subject);
            let request = PickupRequest {
                tenant: &message.tenant,
                source_message: &source,
                source_recipient: Some(rcpt.row.idx),
                sender: message.envelope.mail_from.as_ref(),
                recipient: &rcpt.recipient.address,
                message: body,
                reveal_subject,
                passphrase_hash: message.portal_passphrase.as_deref(),
            };
            let pickup = self.portal.deliver(request).await.map_err(|e| e.to_string())?;
            let _ = self
                .audit
                .append(
                    Event::new("system", "portal.store")
                        .target(pickup.id.to_string())
                        .detail("message", &source)
                        .detail("expires_at", pickup.expires_at.as_micros()),
                )
                .await;
            let mut out = vec![notice_submission(&message.tenant, pickup.notification)];
            if let Some(receipt) = pickup.receipt {
                out.push(notice_submission(&message.tenant, receipt));
            }
            Ok(out)
        })
    }
}

/// Shreds expired portal messages every `every`, until the task is aborted.
pub fn start_sweep(portal: Portal, audit: Audit, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match portal.sweep_expired().await {
                Ok(ids) => {
                    for id in ids {
                        let _ = audit.append(Event::new("system", "portal.expire").target(id)).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "portal expiry sweep failed");
                    let _ = audit.append(Event::new("system", "portal.expire").outcome(Outcome::Failure)).await;
                }
            }
        }
    })
}
