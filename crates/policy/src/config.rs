//! Policy as the configuration file writes it (`[policy]`, `[policy.groups]`,
//! `[[policy.rules]]`), and the checks that run before a policy is used.

use std::collections::BTreeMap;

use carepost_dlp::{EntityType, Verdict};
use carepost_model::Address;
use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::Direction;
use crate::{AddressPattern, Method};

/// What happens when verified TLS was required and the recipient's servers cannot give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsFallback {
    /// Store the message in the secure portal and send the recipient a notice.
    #[default]
    Portal,
    /// Keep it in the queue for an operator.
    Hold,
    /// Return it to the sender with the reason.
    Bounce,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Named lists of address patterns, used by `sender_group` and `recipient_group`.
    pub groups: BTreeMap<String, Vec<AddressPattern>>,
    /// For `tls_verified` decisions whose recipient cannot get verified TLS.
    pub tls_fallback: TlsFallback,
    /// Where `notify_compliance` actions write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance_address: Option<Address>,
    /// Evaluated in order; see [`Rule`].
    #[serde(skip_serializing)]
    pub rules: Vec<Rule>,
}

/// One rule: when every condition holds, the actions apply. Rules are evaluated in order;
/// every matching rule contributes its actions, the first rule that names a method decides
/// the method, and a rule with `stop = true` ends the evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub when: Conditions,
    #[serde(default)]
    pub then: Actions,
    #[serde(default)]
    pub stop: bool,
}

/// Conditions of a rule; absent ones always hold. Lists match when any element matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Conditions {
    pub direction: Option<Direction>,
    pub sender: Vec<AddressPattern>,
    pub sender_group: Vec<String>,
    pub recipient: Vec<AddressPattern>,
    pub recipient_group: Vec<String>,
    /// DLP verdicts: "phi", "pii", "clean".
    pub verdict: Vec<VerdictName>,
    /// Entity types with the least number of distinct values, e.g. `{ US_SSN = 1 }`: the
    /// condition holds when any listed type reaches its count.
    pub entities: BTreeMap<EntityName, usize>,
    /// At least this many distinct sensitive values of any type.
    pub min_entities: Option<usize>,
    /// The scan could not read everything (encrypted archive, limits hit).
    pub incomplete: Option<bool>,
    /// Case-insensitive markers in the subject, such as "[secure]" or "+encrypt+".
    pub subject_contains: Vec<String>,
    /// Attachment content types: "application/pdf", or "image/*".
    pub attachment_type: Vec<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// The sender asked for REQUIRETLS (RFC 8689).
    pub require_tls: Option<bool>,
}

/// Actions of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Actions {
    /// tls_verified, smime, pgp, portal or best.
    pub method: Option<Method>,
    /// Refuse the message with this text (SMTP 550 5.7.1, or a bounce).
    pub block: Option<String>,
    /// Hold for a compliance officer (`carepost quarantine`).
    pub quarantine: bool,
    /// Send a notice (ids, rule, verdict and counts; never content) to these addresses, or to
    /// `policy.compliance_address` when the list is empty and `notify_compliance` is set.
    pub notify: Vec<Address>,
    pub notify_compliance: bool,
    pub add_header: BTreeMap<String, String>,
    /// Put this in front of the subject, e.g. "[SECURE]".
    pub tag_subject: Option<String>,
    /// The subject of a portal notice: `neutral` (the default) or `original`, which shows the
    /// real subject only when DLP found nothing sensitive in it.
    pub notice_subject: Option<NoticeSubject>,
}

/// What a portal notice may say about the message's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeSubject {
    /// "Secure message from <organization>".
    Neutral,
    /// The message's own subject, unless DLP found an identifier or a health term in it.
    Original,
}

/// A DLP entity type as written in rules (`US_SSN`, `MEDICARE_MBI`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntityName(pub EntityType);

impl<'de> Deserialize<'de> for EntityName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntityType::ALL.iter().find(|e| e.as_str() == s).map(|e| EntityName(*e)).ok_or_else(|| {
            let names: Vec<_> = EntityType::ALL.iter().map(|e| e.as_str()).collect();
            serde::de::Error::custom(format!("'{s}' is not an entity type; expected one of {}", names.join(", ")))
        })
    }
}

/// A DLP verdict as written in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictName(pub Verdict);

impl<'de> Deserialize<'de> for VerdictName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        [Verdict::Phi, Verdict::Pii, Verdict::Clean]
            .into_iter()
            .find(|v| v.as_str() == s)
            .map(VerdictName)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a verdict; expected phi, pii or clean")))
    }
}

/// A policy that parsed but does not make sense, naming the rule and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy.rules[{index}] \"{rule}\": {key}: {problem}")]
pub struct PolicyError {
    pub index: usize,
    pub rule: String,
    pub key: &'static str,
    pub problem: String,
}

fn header_name_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

fn line_safe(value: &str) -> bool {
    !value.contains(['\r', '\n', '\0'])
}

impl PolicyConfig {
    /// Checks what serde cannot: groups that exist, rule names, header syntax.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let mut names = std::collections::HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let err = |key: &'static str, problem: String| PolicyError { index, rule: rule.name.clone(), key, problem };
            if rule.name.trim().is_empty() {
                return Err(err("name", "every rule needs a name, which audit records and `policy test` show".into()));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(err("name", "two rules have this name".into()));
            }
            for (key, groups) in
                [("when.sender_group", &rule.when.sender_group), ("when.recipient_group", &rule.when.recipient_group)]
            {
                if let Some(g) = groups.iter().find(|g| !self.groups.contains_key(*g)) {
                    return Err(err(key, format!("group '{g}' is not defined in [policy.groups]")));
                }
            }
            if let (Some(lo), Some(hi)) = (rule.when.min_size, rule.when.max_size)
                && lo > hi
            {
                return Err(err("when.min_size", format!("{lo} is above max_size {hi}")));
            }
            for t in &rule.when.attachment_type {
                if !t.contains('/') {
                    return Err(err(
                        "when.attachment_type",
                        format!("'{t}' is not a content type such as application/pdf or image/*"),
                    ));
                }
            }
            for (name, value) in &rule.then.add_header {
                if !header_name_ok(name) {
                    return Err(err("then.add_header", format!("'{name}' is not a header field name")));
                }
                if !line_safe(value) {
                    return Err(err("then.add_header", format!("the value of {name} has a line break")));
                }
            }
            if let Some(tag) = &rule.then.tag_subject
                && (!line_safe(tag) || tag.trim().is_empty())
            {
                return Err(err("then.tag_subject", "must be one line of text".into()));
            }
            if let Some(text) = &rule.then.block
                && (!line_safe(text) || text.trim().is_empty() || text.len() > 400)
            {
                return Err(err("then.block", "the bounce text must be one line of at most 400 characters".into()));
            }
            if rule.then.notify_compliance && self.compliance_address.is_none() {
                return Err(err("then.notify_compliance", "policy.compliance_address is not set".into()));
            }
        }
        Ok(())
    }
}
