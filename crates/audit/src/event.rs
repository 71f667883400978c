use std::collections::BTreeMap;
use std::net::IpAddr;

/// How an audited step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Refused by policy or access control.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One thing that happened: who (`actor`) did what (`action`) to what (`target`), from where,
/// and how it ended. `details` holds ids, counts and keyed hashes — never PHI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source_ip: Option<IpAddr>,
    pub outcome: Outcome,
    pub details: BTreeMap<String, String>,
}

impl Event {
    /// `actor` names who acted (`user:ID`, `apikey:ID`, `system`, `smtp`); `action` is a dotted
    /// verb (`smtp.auth`, `key.rotate`).
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Event {
            actor: actor.into(),
            action: action.into(),
            target: String::new(),
            source_ip: None,
            outcome: Outcome::Success,
            details: BTreeMap::new(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    pub fn ip(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip;
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.details.insert(key.into(), value.to_string());
        self
    }

    /// A detail about a sensitive value (an address, a user name that is an address): stored as
    /// the installation's keyed hash, which lets an auditor match records without revealing it.
    pub fn detail_hashed(self, key: impl Into<String>, value: &[u8]) -> Self {
        let tag = carepost_model::redaction_tag(value);
        self.detail(key, tag)
    }
}
