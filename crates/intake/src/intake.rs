//! Intake: what happens to every message between "the client finished sending" and "250".
//!
//! The message is parsed once, its text inspected by DLP, and policy decides for each
//! recipient how it must be protected. A blocked message is refused while the client is still
//! connected (a clear 5xx beats a bounce later); a quarantined recipient is held; everything
//! else is queued with its decision. Only then is the message made durable through the
//! [`Spool`]. CPU work runs on the blocking pool, off the reactor.

use std::sync::Arc;

use bytes::Bytes;
use carepost_dlp::{Limits, Summary};
use carepost_model::{Address, Arrival, Envelope, MessageId, Source, TenantId, Timestamp};
use carepost_policy::Policy;
use carepost_secure::directory::KeyDirectory;
use carepost_secure::smime::TrustAnchor;
use carepost_spool::{Spool, SpoolError, Submission};

use crate::inspect::{Inspection, inspect};
use crate::journal::{Journal, JournalEntry};
use crate::passphrase::{passphrase_problem, take_passphrase_header};

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
    pub(crate) spool: Spool,
    policy: Arc<Policy>,
    pub(crate) settings: Arc<IntakeSettings>,
    journal: Option<Arc<dyn Journal>>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intake")
    }
}

fn summary_json(summary: &Summary) -> String {
    serde_json::to_string(summary).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn entity_counts(summary: &Summary) -> String {
    let parts: Vec<String> = summary.entities.iter().map(|(e, n)| format!("{} {n}", e.as_str())).collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

impl Intake {
    pub fn new(spool: Spool, policy: Arc<Policy>, settings: IntakeSettings) -> Self {
        Intake { spool, policy, settings: Arc::new(settings), journal: None }
    }

    /// The same intake, telling `journal` of every message it queues (the archive's journal).
    pub fn with_journal(self, journal: Arc<dyn Journal>) -> Self {
        Intake { journal: Some(journal), ..self }
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
        let (tenant, now) = (tenant.to_string(), Timestamp::now().as_micros());
        // Published as delivery's DKIM signer sees it: not retired yet.
        Ok(keys.iter().any(|k| k.tenant == tenant && k.retired_at.is_none_or(|r| r > now)))
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
        submission.decisions = inspection.decisions.iter().cloned().map(Some).collect();
        submission.quarantined = inspection.decisions.iter().map(|d| d.quarantine).collect();
        submission.audit_details = audit_details(&inspection);
        if portal_passphrase.is_some() {
            submission.audit_details.push(("portal_passphrase".into(), "set".into()));
        }
        submission.portal_passphrase = portal_passphrase;
        let id = self.spool.accept(submission).await?;
        if let Some(journal) = &self.journal {
            let entry = JournalEntry { tenant: &tenant, id: &id, source, inspection: &inspection };
            journal.record(entry).await;
        }
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
