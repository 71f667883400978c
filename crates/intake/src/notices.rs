//! What intake tells people: compliance addresses named by policy's `notify` actions, and
//! operators when a learned certificate is held for review. Notices carry no message content
//! and go through the spool as carepost's own mail.

use std::collections::BTreeMap;

use bytes::Bytes;
use carepost_model::{Address, Arrival, Envelope, MessageId, TenantId};
use carepost_secure::directory::LearnOutcome;
use carepost_spool::Submission;

use crate::intake::entity_counts;
use crate::{CertificateLearning, Inspection, Intake, IntakeError};

impl Intake {
    /// Learns the signer's certificate in the background: the sender's 250 does not wait for
    /// signature verification, and a bad signature only means nothing is learned. A
    /// certificate that differs from the address's known key is held, audited, and an
    /// operator is told.
    pub(crate) fn learn(&self, learning: CertificateLearning, tenant: TenantId, sender: Address, body: Bytes) {
        let intake = self.clone();
        tokio::spawn(async move {
            let audit = intake.spool.audit();
            match learning.directory.learn_from_signed(&tenant, &body, &sender, &learning.anchors).await {
                Ok(LearnOutcome::Learned { id, state }) => {
                    let event = carepost_audit::Event::new("mx", "keys.learned")
                        .target(format!("key:{id}"))
                        .detail("tenant", &tenant)
                        .detail("state", state.as_str());
                    if let Err(e) = audit.append(event).await {
                        tracing::error!(error = %e, "cannot audit a learned certificate");
                    }
                }
                Ok(LearnOutcome::Held { id, fingerprint }) => {
                    let event = carepost_audit::Event::new("mx", "keys.held")
                        .target(format!("key:{id}"))
                        .outcome(carepost_audit::Outcome::Denied)
                        .detail("tenant", &tenant)
                        .detail("fingerprint", &fingerprint)
                        .detail("reason", "the address already has a different key");
                    if let Err(e) = audit.append(event).await {
                        tracing::error!(error = %e, "cannot audit a held certificate");
                    }
                    let text = format!(
                        "A signed message arrived with an S/MIME certificate that differs from the key already known for its sender.\r\n\r\n\
                         The certificate is held: it is not used for encryption, and the known key stays in use.\r\n\r\n\
                         Key:         {id}\r\nTenant:      {tenant}\r\nFingerprint: {fingerprint} (SHA-256)\r\n\r\n\
                         A correspondent who renewed a certificate looks like this; so does someone trying to read their mail.\r\n\
                         Check the fingerprint with the correspondent another way, then either:\r\n\
                         \x20 carepost keys confirm {id}\r\n\
                         \x20 carepost keys remove {id}\r\n\
                         See all keys with: carepost keys list\r\n\r\nThis notice carries no message content.\r\n"
                    );
                    let subject = format!("carepost key review: certificate {id} held");
                    intake.queue_notice(&tenant, &learning.review_notices_to, &subject, text).await;
                }
                Ok(LearnOutcome::Known { .. } | LearnOutcome::Unusable) => {}
                Err(e) => tracing::debug!(error = %e, "no certificate learned from a signed message"),
            }
        });
    }

    /// A signed message whose author domain the MX could not prove teaches nothing: anyone can
    /// sign with a self-made certificate for any address.
    pub(crate) async fn audit_unproven_signer(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        client_ip: Option<std::net::IpAddr>,
    ) {
        let event = carepost_audit::Event::new("mx", "keys.learn_refused")
            .target(format!("message:{id}"))
            .ip(client_ip)
            .outcome(carepost_audit::Outcome::Denied)
            .detail("tenant", tenant)
            .detail("reason", "the sender's domain is not proven (DKIM aligned with From and DMARC pass are required)");
        if let Err(e) = self.spool.audit().append(event).await {
            tracing::error!(error = %e, "cannot audit a certificate not learned");
        }
    }

    /// Tells compliance addresses named by `notify` actions. The notice carries the message
    /// id, the rules, the verdict and entity counts: never content, subject or addresses.
    pub(crate) async fn send_notices(&self, tenant: &TenantId, id: &MessageId, inspection: &Inspection) {
        let mut by_address: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in &inspection.decisions {
            for address in &d.notify {
                let rules = by_address.entry(address.as_str()).or_default();
                for r in &d.matched_rules {
                    if !rules.contains(&r.as_str()) {
                        rules.push(r.as_str());
                    }
                }
            }
        }
        let quarantined = inspection.decisions.iter().filter(|d| d.quarantine).count();
        for (address, rules) in by_address {
            let Ok(to) = Address::parse(address) else { continue };
            let text = format!(
                "A message matched carepost policy.\r\n\r\nMessage:  {id}\r\nRules:    {}\r\nVerdict:  {} (confidence {:.2}){}\r\nEntities: {}\r\nAction:   {}\r\n\r\nThis notice carries no message content. Review it with: carepost quarantine show {id}\r\n",
                rules.join(", "),
                inspection.summary.verdict.as_str(),
                inspection.summary.confidence,
                if inspection.summary.incomplete { ", scan incomplete" } else { "" },
                entity_counts(&inspection.summary),
                if quarantined > 0 {
                    format!("{quarantined} recipient(s) held in quarantine")
                } else {
                    "delivered as policy requires".into()
                },
            );
            self.queue_notice(tenant, &to, &format!("carepost policy notice: message {id}"), text).await;
        }
    }

    /// Queues one of carepost's own notices (policy notices, key reviews) to `to`. It goes as
    /// the transport says: it carries no message content.
    async fn queue_notice(&self, tenant: &TenantId, to: &Address, subject: &str, text: String) {
        let notice = mail_builder::MessageBuilder::new()
            .from(("carepost", self.settings.notices_from.as_str()))
            .to(to.as_str())
            .subject(subject)
            .text_body(text)
            .write_to_vec();
        let Ok(notice) = notice else { return };
        let from = Some(self.settings.notices_from.clone());
        if let Err(e) = self.queue_own_mail(tenant, from, to, notice).await {
            tracing::error!(error = %e, "cannot queue a notice");
        }
    }

    /// Queues carepost's own mail to one person (policy notices, sign-in notices, portal
    /// codes) as it is: it carries no PHI, so it is neither inspected nor decided on; a
    /// portal code sent through policy could even be sent to the portal it opens. It still
    /// enters here, the one way in, and is sealed and spooled like any other message.
    pub async fn queue_own_mail(
        &self,
        tenant: &TenantId,
        mail_from: Option<Address>,
        to: &Address,
        message: Vec<u8>,
    ) -> Result<MessageId, IntakeError> {
        let envelope = Envelope::to_one(mail_from, to.clone());
        let submission = Submission::new(tenant.clone(), envelope, Arrival::system(), Bytes::from(message));
        Ok(self.spool.accept(submission).await?)
    }
}
