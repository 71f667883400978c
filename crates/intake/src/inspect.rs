//! Parse once, scan, decide: what inspection and policy make of one message, before anything
//! is stored. Pure and synchronous; [`Intake`](crate::Intake) runs it on the blocking pool.

use carepost_dlp::{Limits, Summary};
use carepost_model::{Address, Arrival, Envelope};
use carepost_policy::{Decision, Direction, MessageFacts, Policy};
use mail_parser::{MessageParser, MimeHeaders};

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
