//! Intake: what happens to every message between "the client finished sending" and "250".
//!
//! The message is parsed once, its text inspected by DLP, and policy decides for each
//! recipient how it must be protected. A blocked message is refused while the client is still
//! connected (a clear 5xx beats a bounce later); a quarantined recipient is held; everything
//! else is queued with its decision. Only then is the message made durable through the
//! [`Spool`]. CPU work runs on the blocking pool, off the reactor.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use carepost_dlp::{Limits, Summary};
use carepost_model::{Address, Arrival, Envelope, MessageId, Recipient, Source, TenantId};
use carepost_policy::{Decision, Direction, MessageFacts, Policy};
use carepost_secure::directory::{KeyDirectory, LearnOutcome};
use carepost_secure::smime::TrustAnchor;
use mail_parser::{MessageParser, MimeHeaders};

use crate::{Spool, SpoolError, Submission};

/// What inspection and policy made of one message, before anything is stored.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub summary: Summary,
    /// The Message-ID header, for duplicate detection.
    pub message_id: Option<String>,
    /// One decision per envelope recipient, in order.
    pub decisions: Vec<Decision>,
    /// The From address of an S/MIME-signed message with a single author, whose certificate
    /// may be learned.
    pub signed_by: Option<Address>,
}

impl Inspection {
    /// The first blocking rule's text, if any recipient is blocked.
    pub fn block(&self) -> Option<&str> {
        self.decisions.iter().find_map(|d| d.block.as_deref())
    }
}

/// Where a recipient's mail goes: to local users (inbound) or out of the organization.
pub fn direction_of(recipient: &Address, local_domains: &[String]) -> Direction {
    if local_domains.iter().any(|d| d.eq_ignore_ascii_case(recipient.domain())) {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

/// Parses `body` once, scans it and decides for every recipient. Pure and synchronous.
pub fn inspect(
    body: &[u8],
    envelope: &Envelope,
    arrival: &Arrival,
    policy: &Policy,
    limits: &Limits,
    local_domains: &[String],
) -> Inspection {
    // mail-parser 0.11 can reach a debug assertion on some malformed nesting; a message the
    // parser cannot take is scanned as unparseable, which marks it incomplete (fail closed).
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(body)).ok().flatten();
    let (summary, subject, message_id, signed_by) = match &parsed {
        Some(message) => (
            carepost_dlp::scan_message(message, limits).summary(),
            message.subject().unwrap_or("").to_owned(),
            message.message_id().map(|m| format!("<{m}>")),
            smime_signer(message),
        ),
        None => (carepost_dlp::scan_eml(body, limits).summary(), String::new(), None, None),
    };
    let dmarc_quarantine = arrival.sender_auth.as_ref().is_some_and(|a| a.action == "quarantine");
    let decisions = envelope
        .recipients
        .iter()
        .map(|r| {
            let facts = MessageFacts {
                direction: direction_of(&r.address, local_domains),
                sender: envelope.mail_from.as_ref(),
                subject: &subject,
                summary: &summary,
                size: body.len() as u64,
                require_tls: envelope.require_tls,
            };
            let mut decision = policy.decide(&facts, &r.address);
            if dmarc_quarantine {
                decision.quarantine = true;
                decision.matched_rules.push("dmarc".into());
            }
            decision
        })
        .collect();
    Inspection { summary, message_id, decisions, signed_by }
}

/// The From address of a message that is S/MIME-signed at its top level. A From with several
/// addresses names no single author (and DMARC does not judge it): no signer.
fn smime_signer(message: &mail_parser::Message<'_>) -> Option<Address> {
    let ct = message.content_type()?;
    let kind = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase();
    let protocol = ct.attribute("protocol").unwrap_or("").to_ascii_lowercase();
    let smime_type = ct.attribute("smime-type").unwrap_or("").to_ascii_lowercase();
    let signed = (kind == "multipart/signed" && protocol.contains("pkcs7-signature"))
        || (kind.ends_with("/pkcs7-mime") && smime_type == "signed-data");
    if !signed {
        return None;
    }
    let from = message.from()?;
    if from.iter().count() != 1 {
        return None;
    }
    Address::parse(from.first()?.address()?).ok()
}

/// Why intake did not queue a message.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Policy blocks the message; the text is the operator's and safe to show the sender.
    #[error("{0}")]
    Blocked(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("inspection failed: {0}")]
    Inspection(String),
    /// The sender asked for something carepost cannot do as asked; the text is safe to show.
    #[error("{0}")]
    Invalid(String),
}

/// What the sender asks for beyond policy; hints never weaken protection.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SubmitHints {
    /// Deliver every outbound recipient through the secure portal.
    pub force_portal: bool,
    /// A passphrase the sender tells the recipients another way (by phone, in person): a
    /// recipient who reads in the portal may prove the address with it instead of a one-time
    /// code. Only its argon2id hash is kept, sealed with the message.
    pub portal_passphrase: Option<String>,
}

impl std::fmt::Debug for SubmitHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitHints")
            .field("force_portal", &self.force_portal)
            .field("portal_passphrase", &self.portal_passphrase.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The header an SMTP sender sets a portal passphrase with. carepost removes it from every
/// message before anything is stored, and honours it only from its own senders (submission,
/// relay networks): never from the Internet.
pub const PASSPHRASE_HEADER: &str = "X-Carepost-Passphrase";

/// Shortest and longest portal passphrase accepted.
pub const PASSPHRASE_LENGTH: std::ops::RangeInclusive<usize> = 8..=256;

/// What is wrong with a portal passphrase (compared trimmed, as it is kept), if anything.
pub fn passphrase_problem(passphrase: &str) -> Option<String> {
    (!PASSPHRASE_LENGTH.contains(&passphrase.trim().chars().count())).then(|| {
        format!("a portal passphrase has {} to {} characters", PASSPHRASE_LENGTH.start(), PASSPHRASE_LENGTH.end())
    })
}

/// Removes every `X-Carepost-Passphrase` field (with its folded lines) from the header block of
/// `body`; returns the message without them and the last value, or `None` when there is none
/// (the common case, which copies nothing).
pub fn take_passphrase_header(body: &[u8]) -> Option<(Vec<u8>, String)> {
    let header_end = find_header_end(body);
    if !lines(&body[..header_end]).any(|line| passphrase_colon(line).is_some()) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut value = String::new();
    let mut skipping = false;
    for line in lines(&body[..header_end]) {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation && skipping {
            value.push(' ');
            value.push_str(String::from_utf8_lossy(line).trim());
        } else if let Some(colon) = passphrase_colon(line) {
            skipping = true;
            value = String::from_utf8_lossy(&line[colon + 1..]).trim().to_owned();
        } else {
            skipping = false;
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&body[header_end..]);
    Some((out, value))
}

/// The lines of `text`, each with its line ending.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
}

/// Where the colon is when `line` starts an `X-Carepost-Passphrase` field. RFC 5322's obsolete
/// syntax allows blanks between the name and the colon.
fn passphrase_colon(line: &[u8]) -> Option<usize> {
    let name = PASSPHRASE_HEADER.as_bytes();
    let rest = line.get(name.len()..)?;
    if !line[..name.len()].eq_ignore_ascii_case(name) {
        return None;
    }
    let colon = name.len() + rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    (line.get(colon) == Some(&b':')).then_some(colon)
}

/// Where the header block ends: just after the blank line, or the whole input if there is none.
fn find_header_end(body: &[u8]) -> usize {
    let mut at = 0;
    while at < body.len() {
        let line_end = body[at..].iter().position(|&b| b == b'\n').map_or(body.len(), |p| at + p + 1);
        let line = &body[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            return at;
        }
        at = line_end;
    }
    body.len()
}

/// The message was queued.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: MessageId,
    pub inspection: Inspection,
}

/// The settings intake needs beside the policy.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    /// Domains whose mail is for local users (inbound direction).
    pub local_domains: Vec<String>,
    pub limits: Limits,
    /// The sender of carepost's policy notices.
    pub notices_from: Address,
    /// Where certificates of validly signed inbound mail are learned (none: not learned).
    pub learning: Option<CertificateLearning>,
}

/// Learning S/MIME certificates from signed mail arriving at the MX, when the MX proved the
/// author's domain (DKIM aligned with From, DMARC pass).
#[derive(Clone)]
pub struct CertificateLearning {
    pub directory: KeyDirectory,
    /// Roots a learned certificate must chain to; empty: learned certificates wait for an
    /// operator's confirmation before they are used.
    pub anchors: Arc<Vec<TrustAnchor>>,
    /// Who is told when a certificate that differs from an address's known key is held.
    pub review_notices_to: Address,
}

impl std::fmt::Debug for CertificateLearning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateLearning({} anchors)", self.anchors.len())
    }
}

/// Inspection, policy and the spool, composed. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    spool: Spool,
    policy: Arc<Policy>,
    settings: Arc<IntakeSettings>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intake")
    }
}

fn summary_json(summary: &Summary) -> String {
    serde_json::to_string(summary).unwrap_or_else(|_| "{}".into())
}

fn entity_counts(summary: &Summary) -> String {
    let parts: Vec<String> = summary.entities.iter().map(|(e, n)| format!("{} {n}", e.as_str())).collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

impl Intake {
    pub fn new(spool: Spool, policy: Arc<Policy>, settings: IntakeSettings) -> Self {
        Intake { spool, policy, settings: Arc::new(settings) }
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn settings(&self) -> &IntakeSettings {
        &self.settings
    }

    /// Whether `domain` is one of `tenant`'s own: it holds DKIM keys for it, or (for the
    /// default tenant, the operator's own organization) it is one of `smtp.local_domains`.
    /// A sender not limited to listed addresses may use only these.
    pub async fn is_tenant_domain(&self, tenant: &TenantId, domain: &str) -> Result<bool, IntakeError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if *tenant == TenantId::default_tenant()
            && self.settings.local_domains.iter().any(|d| d.eq_ignore_ascii_case(&domain))
        {
            return Ok(true);
        }
        let keys = self.spool.store().dkim_keys(Some(&domain)).await.map_err(SpoolError::from)?;
        let tenant = tenant.to_string();
        Ok(crate::dkim::published(&keys, carepost_model::Timestamp::now()).iter().any(|k| k.tenant == tenant))
    }

    /// Inspects, decides and queues a message; returns its id once it is durable.
    pub async fn submit(
        &self,
        tenant: TenantId,
        envelope: Envelope,
        arrival: Arrival,
        body: Bytes,
    ) -> Result<Accepted, IntakeError> {
        self.submit_with(tenant, envelope, arrival, body, SubmitHints::default()).await
    }

    /// [`submit`](Self::submit) with a sender's hints, which can only make protection
    /// stronger: `force_portal` sends every outbound recipient through the portal.
    pub async fn submit_with(
        &self,
        tenant: TenantId,
        envelope: Envelope,
        arrival: Arrival,
        mut body: Bytes,
        mut hints: SubmitHints,
    ) -> Result<Accepted, IntakeError> {
        if let Some((without, value)) = take_passphrase_header(&body) {
            body = Bytes::from(without);
            if matches!(arrival.source, Source::Submission | Source::Relay | Source::Api)
                && hints.portal_passphrase.is_none()
            {
                hints.portal_passphrase = Some(value);
            }
        }
        let portal_passphrase = match hints.portal_passphrase.take().map(|p| p.trim().to_owned()) {
            Some(p) if let Some(problem) = passphrase_problem(&p) => return Err(IntakeError::Invalid(problem)),
            Some(p) => Some(
                carepost_vault::hash_password_limited(p).await.map_err(|e| IntakeError::Inspection(e.to_string()))?,
            ),
            None => None,
        };
        let mut inspection = {
            let (body, envelope, arrival) = (body.clone(), envelope.clone(), arrival.clone());
            let (policy, settings) = (self.policy.clone(), self.settings.clone());
            tokio::task::spawn_blocking(move || {
                inspect(&body, &envelope, &arrival, &policy, &settings.limits, &settings.local_domains)
            })
            .await
            .map_err(|e| IntakeError::Inspection(e.to_string()))?
        };
        if hints.force_portal {
            for d in inspection.decisions.iter_mut().filter(|d| d.method.is_some()) {
                d.method = Some(carepost_policy::Method::Portal);
                d.method_rule = "hint:force_portal".into();
            }
        }
        if let Some(text) = inspection.block() {
            self.audit_block(&arrival, &inspection).await;
            return Err(IntakeError::Blocked(text.to_owned()));
        }

        let (source, client_ip, body_for_learning) = (arrival.source, arrival.client_ip, body.clone());
        // Only the MX's own verification counts: a certificate is learned from mail whose
        // author domain signed it (DKIM aligned with From) and passes DMARC.
        let author_proven = inspection
            .signed_by
            .as_ref()
            .zip(arrival.sender_auth.as_ref())
            .is_some_and(|(sender, auth)| auth.authenticates_author_domain(sender.domain()));
        let mut submission = Submission::new(tenant.clone(), envelope, arrival, body);
        submission.message_id_header = inspection.message_id.clone();
        submission.inspection = Some(summary_json(&inspection.summary));
        submission.decisions = inspection.decisions.iter().map(|d| Some(d.to_json())).collect();
        submission.quarantined = inspection.decisions.iter().map(|d| d.quarantine).collect();
        submission.audit_details = audit_details(&inspection);
        if portal_passphrase.is_some() {
            submission.audit_details.push(("portal_passphrase".into(), "set".into()));
        }
        submission.portal_passphrase = portal_passphrase;
        let id = self.spool.accept(submission).await?;
        if let (Some(sender), Some(learning), Source::Mx) = (&inspection.signed_by, &self.settings.learning, source) {
            if author_proven {
                self.learn(learning.clone(), tenant.clone(), sender.clone(), body_for_learning.clone());
            } else {
                self.audit_unproven_signer(&tenant, &id, client_ip).await;
            }
        }
        self.send_notices(&tenant, &id, &inspection).await;
        Ok(Accepted { id, inspection })
    }

    /// Learns the signer's certificate in the background: the sender's 250 does not wait for
    /// signature verification, and a bad signature only means nothing is learned. A
    /// certificate that differs from the address's known key is held, audited, and an
    /// operator is told.
    fn learn(&self, learning: CertificateLearning, tenant: TenantId, sender: Address, body: Bytes) {
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
    async fn audit_unproven_signer(&self, tenant: &TenantId, id: &MessageId, client_ip: Option<std::net::IpAddr>) {
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

    async fn audit_block(&self, arrival: &Arrival, inspection: &Inspection) {
        let mut event = carepost_audit::Event::new(arrival.source.as_str(), "message.blocked")
            .ip(arrival.client_ip)
            .outcome(carepost_audit::Outcome::Denied);
        for (k, v) in audit_details(inspection) {
            event = event.detail(k, v);
        }
        if let Err(e) = self.spool.audit().append(event).await {
            tracing::error!(error = %e, "cannot audit a blocked message");
        }
    }

    /// Tells compliance addresses named by `notify` actions. The notice carries the message
    /// id, the rules, the verdict and entity counts: never content, subject or addresses.
    async fn send_notices(&self, tenant: &TenantId, id: &MessageId, inspection: &Inspection) {
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
        let envelope = Envelope {
            mail_from: Some(self.settings.notices_from.clone()),
            recipients: vec![Recipient::new(to.clone())],
            dsn_ret: None,
            dsn_envid: None,
            require_tls: false,
            smtputf8: false,
            body: Default::default(),
        };
        let arrival = Arrival {
            source: Source::System,
            client_ip: None,
            helo: None,
            authenticated_as: None,
            tls: None,
            sender_auth: None,
        };
        let submission = Submission::new(tenant.clone(), envelope, arrival, Bytes::from(notice));
        if let Err(e) = self.spool.accept(submission).await {
            tracing::error!(error = %e, "cannot queue a notice");
        }
    }
}

/// Value-free facts about an inspection for the audit record.
fn audit_details(inspection: &Inspection) -> Vec<(String, String)> {
    let s = &inspection.summary;
    let mut rules: Vec<&str> = Vec::new();
    let mut methods: Vec<&str> = Vec::new();
    for d in &inspection.decisions {
        for r in &d.matched_rules {
            if !rules.contains(&r.as_str()) {
                rules.push(r);
            }
        }
        let m = d.method.map(|m| m.as_str()).unwrap_or("transport");
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    vec![
        ("verdict".into(), s.verdict.as_str().into()),
        ("confidence".into(), format!("{:.2}", s.confidence)),
        ("incomplete".into(), s.incomplete.to_string()),
        ("entities".into(), entity_counts(s)),
        ("rules".into(), rules.join(",")),
        ("methods".into(), methods.join(",")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passphrase_header_is_taken_out_with_its_folded_lines() {
        let body = b"From: a@x.example\r\nX-Carepost-Passphrase: blue\r\n  harbour 42\r\nSubject: hi\r\n\r\nX-Carepost-Passphrase: in the body stays\r\n";
        let (without, value) = take_passphrase_header(body).unwrap();
        assert_eq!(value, "blue harbour 42");
        assert_eq!(without, b"From: a@x.example\r\nSubject: hi\r\n\r\nX-Carepost-Passphrase: in the body stays\r\n");
        let (without, value) = take_passphrase_header(b"X-Carepost-Passphrase \t: spaced out\r\n\r\nbody").unwrap();
        assert_eq!((without.as_slice(), value.as_str()), (&b"\r\nbody"[..], "spaced out"));
        let lower = b"x-carepost-passphrase:one two three\nTo: b@y.example\n\nbody";
        let (without, value) = take_passphrase_header(lower).unwrap();
        assert_eq!((without.as_slice(), value.as_str()), (&b"To: b@y.example\n\nbody"[..], "one two three"));
    }

    #[test]
    fn messages_without_the_header_are_left_alone() {
        assert!(take_passphrase_header(b"Subject: x\r\n\r\nX-Carepost-Passphrase: body\r\n").is_none());
        assert!(take_passphrase_header(b"X-Carepost-Passphrases: other field\r\n\r\n").is_none());
        assert!(take_passphrase_header(b"").is_none());
        assert!(take_passphrase_header(b"X-Carepost-Passphrase").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_input_keeps_everything_but_the_field(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            if let Some((without, _)) = take_passphrase_header(&body) {
                proptest::prop_assert!(without.len() < body.len());
                let end = find_header_end(&body);
                proptest::prop_assert!(without.ends_with(&body[end..]));
            }
        }
    }
}
