//! The SMTP envelope and what carepost knows about how a message arrived.
//!
//! These travel sealed: the envelope holds addresses, which are PHI when they name a patient.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::Address;

/// DSN RET (RFC 3461): how much of the message a bounce returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DsnReturn {
    Full,
    Headers,
}

/// DSN NOTIFY (RFC 3461) for one recipient. `never` excludes the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DsnNotify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl DsnNotify {
    /// What applies when the client gave no NOTIFY: failure and delay (RFC 3461 section 4.1).
    pub fn implicit() -> Self {
        DsnNotify { never: false, success: false, failure: true, delay: true }
    }
}

/// The body type announced with MAIL FROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
    BinaryMime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: Address,
    /// `None` when the client gave no NOTIFY parameter.
    #[serde(default)]
    pub notify: Option<DsnNotify>,
    /// ORCPT (RFC 3461), kept verbatim as `addr-type;xtext`.
    #[serde(default)]
    pub orcpt: Option<String>,
}

impl Recipient {
    pub fn new(address: Address) -> Self {
        Recipient { address, notify: None, orcpt: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `None` is the null reverse path `<>` of bounces.
    pub mail_from: Option<Address>,
    pub recipients: Vec<Recipient>,
    #[serde(default)]
    pub dsn_ret: Option<DsnReturn>,
    #[serde(default)]
    pub dsn_envid: Option<String>,
    /// RFC 8689: the sender requires verified TLS on every hop.
    #[serde(default)]
    pub require_tls: bool,
    #[serde(default)]
    pub smtputf8: bool,
    #[serde(default)]
    pub body: BodyType,
}

impl Envelope {
    /// An envelope of carepost's own mail to one person (notices, codes, reports): no DSN
    /// options, SMTPUTF8 only when the address needs it.
    pub fn to_one(mail_from: Option<Address>, to: Address) -> Self {
        Envelope {
            mail_from,
            smtputf8: to.is_utf8(),
            recipients: vec![Recipient::new(to)],
            dsn_ret: None,
            dsn_envid: None,
            require_tls: false,
            body: Default::default(),
        }
    }
}

/// Where a message entered carepost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Inbound from the Internet on the MX.
    Mx,
    /// Authenticated submission.
    Submission,
    /// A trusted host in smtp.relay_networks.
    Relay,
    /// The REST API.
    Api,
    /// A reply written in the secure portal.
    Portal,
    /// carepost itself: bounces, delay notices, portal notifications.
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mx => "mx",
            Source::Submission => "submission",
            Source::Relay => "relay",
            Source::Api => "api",
            Source::Portal => "portal",
            Source::System => "system",
        }
    }

    /// Mail that leaves the organization (and so must be protected by policy) as opposed to
    /// mail arriving for local users.
    pub fn is_outbound(self) -> bool {
        !matches!(self, Source::Mx)
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Mx, Self::Submission, Self::Relay, Self::Api, Self::Portal, Self::System]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The TLS a connection used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// How a message arrived: kept sealed with it, for Received headers, policy and audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub source: Source,
    pub client_ip: Option<IpAddr>,
    #[serde(default)]
    pub helo: Option<String>,
    /// The authenticated account (SMTP AUTH, API key owner, portal user).
    #[serde(default)]
    pub authenticated_as: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsInfo>,
    /// What the MX verified about the sender (SPF, DKIM, DMARC, ARC); `None` where nothing
    /// was checked (submission, relay, API).
    #[serde(default)]
    pub sender_auth: Option<SenderAuthentication>,
}

impl Arrival {
    /// carepost's own mail (notices, DSNs, reports): no client, nothing authenticated.
    pub fn system() -> Self {
        Arrival {
            source: Source::System,
            client_ip: None,
            helo: None,
            authenticated_as: None,
            tls: None,
            sender_auth: None,
        }
    }
}

/// Results of inbound sender authentication, as the MX recorded them in its
/// Authentication-Results header. Each result is the RFC 8601 keyword (`pass`, `fail`,
/// `softfail`, `neutral`, `none`, `temperror`, `permerror`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SenderAuthentication {
    pub spf: String,
    /// `pass` when any DKIM signature verified, else the first signature's result.
    pub dkim: String,
    pub dmarc: String,
    /// The policy the sender's DMARC record asks for: `none`, `quarantine`, `reject`, or
    /// `unspecified` when there is no record.
    pub dmarc_policy: String,
    pub arc: String,
    /// What carepost did about a DMARC failure: `accept`, `quarantine` or `reject`.
    #[serde(default)]
    pub action: String,
    /// A passing DKIM signature's domain aligns with the header From domain, as DMARC judges
    /// alignment: the author's domain vouched for this very message, which SPF cannot say.
    #[serde(default)]
    pub dkim_aligned: bool,
    /// The header From domain DMARC evaluated, lowercased; empty when there was none (or
    /// several, which DMARC does not check).
    #[serde(default)]
    pub from_domain: String,
}

impl SenderAuthentication {
    /// The message's author domain `domain` is proven: DMARC passes, and does so through a
    /// DKIM signature aligned with that From domain (an SPF pass alone says only where the
    /// message came from, not that its content is the author's).
    pub fn authenticates_author_domain(&self, domain: &str) -> bool {
        self.dmarc == "pass"
            && self.dkim == "pass"
            && self.dkim_aligned
            && !self.from_domain.is_empty()
            && self.from_domain.eq_ignore_ascii_case(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aligned_dkim_with_dmarc_pass_proves_the_author_domain() {
        let proven = SenderAuthentication {
            spf: "fail".into(),
            dkim: "pass".into(),
            dmarc: "pass".into(),
            dmarc_policy: "reject".into(),
            arc: "none".into(),
            action: "accept".into(),
            dkim_aligned: true,
            from_domain: "partner.example".into(),
        };
        assert!(proven.authenticates_author_domain("Partner.Example"));
        assert!(!proven.authenticates_author_domain("gmail.com"));
        // DMARC passing on SPF alone, a DKIM signature of another domain, or no DMARC pass.
        let spf_only =
            SenderAuthentication { spf: "pass".into(), dkim: "none".into(), dkim_aligned: false, ..proven.clone() };
        let unaligned = SenderAuthentication { dkim_aligned: false, ..proven.clone() };
        let no_dmarc = SenderAuthentication { dmarc: "none".into(), ..proven.clone() };
        for auth in [spf_only, unaligned, no_dmarc, SenderAuthentication::default()] {
            assert!(!auth.authenticates_author_domain("partner.example"), "{auth:?}");
        }
        // Results recorded before these fields existed read as not proven.
        let old: SenderAuthentication =
            serde_json::from_str(r#"{"spf":"pass","dkim":"pass","dmarc":"pass","dmarc_policy":"reject","arc":"none"}"#)
                .unwrap();
        assert!(!old.authenticates_author_domain("partner.example"));
    }
}
