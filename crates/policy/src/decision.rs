//! What policy decides for one recipient, and how that becomes the methods to try.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::TlsFallback;

/// How a message must be protected on its way to a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// SMTP over TLS whose server identity is verified (DANE, MTA-STS or a valid certificate).
    TlsVerified,
    /// S/MIME encryption to the recipient's certificate.
    Smime,
    /// OpenPGP (PGP/MIME) encryption to the recipient's key.
    Pgp,
    /// The secure portal: the recipient gets a notice and reads the message there.
    Portal,
    /// The strongest the recipient can take: S/MIME or OpenPGP when a valid key is known,
    /// else verified TLS, else the portal.
    Best,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::TlsVerified => "tls_verified",
            Method::Smime => "smime",
            Method::Pgp => "pgp",
            Method::Portal => "portal",
            Method::Best => "best",
        }
    }
}

/// The decision for one recipient of one message. Serialized into the queue (it holds no
/// PHI: rule names, methods, and the operator's own header and tag texts). Absent fields
/// read as their defaults, so decisions written by older versions stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Decision {
    /// `None` for inbound mail to local users, which goes as the transport says.
    pub method: Option<Method>,
    /// Verified TLS is required on the next hop (for `tls_verified` and `best`, and for
    /// REQUIRETLS messages).
    pub require_verified_tls: bool,
    /// For `tls_verified` when verified TLS is unavailable.
    pub tls_fallback: TlsFallback,
    /// Refused, with this text.
    pub block: Option<String>,
    pub quarantine: bool,
    pub notify: Vec<String>,
    pub add_headers: BTreeMap<String, String>,
    pub tag_subject: Option<String>,
    /// A portal notice may carry the message's real subject (a rule asked for it and DLP
    /// found nothing sensitive in the subject).
    pub reveal_subject: bool,
    /// The rule that chose the method, or `default`.
    pub method_rule: String,
    /// Every rule that matched, in order.
    pub matched_rules: Vec<String>,
}

/// What delivery found out about a recipient before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// A valid (unexpired, unrevoked) S/MIME certificate for the recipient is known.
    pub smime_certificate: bool,
    /// A valid OpenPGP key for the recipient is known.
    pub pgp_key: bool,
}

/// One way of delivering, in the order a plan tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Encrypt with S/MIME, then send over TLS if offered.
    Smime,
    /// Encrypt with PGP/MIME, then send over TLS if offered.
    Pgp,
    /// Send only over verified TLS; if the servers cannot verify, go to the next step.
    TlsVerified,
    /// Send with TLS when offered (inbound to local users through the configured transport).
    Transport,
    Portal,
    Hold,
    Bounce,
}

impl Decision {
    /// The steps to try in order, given what is known about the recipient. Every plan for an
    /// outbound decision ends in a protected method, holding, or bouncing — never plaintext.
    pub fn plan(&self, caps: Capabilities) -> Vec<Step> {
        let end = |fallback: TlsFallback| match fallback {
            TlsFallback::Portal => Step::Portal,
            TlsFallback::Hold => Step::Hold,
            TlsFallback::Bounce => Step::Bounce,
        };
        match self.method {
            None if self.require_verified_tls => vec![Step::TlsVerified, end(self.tls_fallback)],
            None => vec![Step::Transport],
            Some(Method::Portal) => vec![Step::Portal],
            Some(Method::TlsVerified) => vec![Step::TlsVerified, end(self.tls_fallback)],
            // A rule asked for a method the recipient cannot take: use the portal, which every
            // recipient can, rather than send less protected.
            Some(Method::Smime) if caps.smime_certificate => vec![Step::Smime],
            Some(Method::Pgp) if caps.pgp_key => vec![Step::Pgp],
            Some(Method::Smime) | Some(Method::Pgp) => vec![Step::Portal],
            Some(Method::Best) => {
                let mut steps = Vec::with_capacity(3);
                if caps.smime_certificate {
                    steps.push(Step::Smime);
                } else if caps.pgp_key {
                    steps.push(Step::Pgp);
                } else {
                    steps.push(Step::TlsVerified);
                }
                steps.push(Step::Portal);
                steps
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn from_json(text: &str) -> Option<Decision> {
        serde_json::from_str(text).ok()
    }

    /// Verified TLS or nothing: held for an operator otherwise. What a stored decision that
    /// no longer reads back stands for: failing closed costs a held message, failing open
    /// could leak PHI.
    pub fn strictest() -> Decision {
        Decision {
            method: Some(Method::TlsVerified),
            require_verified_tls: true,
            tls_fallback: TlsFallback::Hold,
            method_rule: "unreadable decision".into(),
            ..Decision::default()
        }
    }

    /// The stored text of a decision read back; an unreadable one is [`Decision::strictest`].
    pub fn read_stored(text: &str) -> Decision {
        Decision::from_json(text).unwrap_or_else(Decision::strictest)
    }
}
