//! Evaluating rules.

use carepost_dlp::Summary;
use carepost_model::Address;
use serde::{Deserialize, Serialize};

use crate::config::{Conditions, NoticeSubject, PolicyConfig, PolicyError, Rule};
use crate::{AddressPattern, Decision, Method};

/// Whether a message leaves the organization or arrives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// What policy may look at about a message. The subject is read only for markers; nothing
/// of it is kept in the decision.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    pub direction: Direction,
    /// `None` for the null reverse path.
    pub sender: Option<&'a Address>,
    pub subject: &'a str,
    pub summary: &'a Summary,
    pub size: u64,
    pub require_tls: bool,
}

/// A validated policy, ready to decide.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
}

fn any_pattern(patterns: &[AddressPattern], address: &Address) -> bool {
    patterns.iter().any(|p| p.matches(address))
}

fn content_type_matches(pattern: &str, content_type: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let actual = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match pattern.strip_suffix("/*") {
        Some(major) => actual.split('/').next() == Some(major),
        None => actual == pattern,
    }
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Result<Policy, PolicyError> {
        config.validate()?;
        Ok(Policy { config })
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    fn in_groups(&self, groups: &[String], address: &Address) -> bool {
        groups.iter().any(|g| self.config.groups.get(g).is_some_and(|patterns| any_pattern(patterns, address)))
    }

    fn holds(&self, when: &Conditions, facts: &MessageFacts<'_>, recipient: &Address) -> bool {
        let summary = facts.summary;
        let sender_is = |patterns: &[AddressPattern], groups: &[String]| {
            (patterns.is_empty() || facts.sender.is_some_and(|s| any_pattern(patterns, s)))
                && (groups.is_empty() || facts.sender.is_some_and(|s| self.in_groups(groups, s)))
        };
        when.direction.is_none_or(|d| d == facts.direction)
            && sender_is(&when.sender, &when.sender_group)
            && (when.recipient.is_empty() || any_pattern(&when.recipient, recipient))
            && (when.recipient_group.is_empty() || self.in_groups(&when.recipient_group, recipient))
            && (when.verdict.is_empty() || when.verdict.iter().any(|v| v.0 == summary.verdict))
            && (when.entities.is_empty()
                || when.entities.iter().any(|(e, n)| summary.entities.get(&e.0).copied().unwrap_or(0) >= (*n).max(1)))
            && when.min_entities.is_none_or(|n| summary.entities.values().sum::<usize>() >= n)
            && when.incomplete.is_none_or(|i| i == summary.incomplete)
            && (when.subject_contains.is_empty() || {
                let subject = facts.subject.to_lowercase();
                when.subject_contains.iter().any(|m| subject.contains(&m.to_lowercase()))
            })
            && (when.attachment_type.is_empty()
                || summary
                    .attachments
                    .iter()
                    .any(|a| when.attachment_type.iter().any(|t| content_type_matches(t, &a.content_type))))
            && when.min_size.is_none_or(|n| facts.size >= n)
            && when.max_size.is_none_or(|n| facts.size <= n)
            && when.require_tls.is_none_or(|r| r == facts.require_tls)
    }

    fn apply(&self, rule: &Rule, decision: &mut Decision, notice_subject: &mut Option<NoticeSubject>) {
        let then = &rule.then;
        decision.matched_rules.push(rule.name.clone());
        if decision.method.is_none()
            && let Some(m) = then.method
        {
            decision.method = Some(m);
            decision.method_rule = rule.name.clone();
        }
        if decision.block.is_none() {
            decision.block = then.block.clone();
        }
        decision.quarantine |= then.quarantine;
        let compliance = then.notify_compliance.then(|| self.config.compliance_address.clone()).flatten();
        for address in then.notify.iter().chain(compliance.iter()) {
            let a = address.to_string();
            if !decision.notify.contains(&a) {
                decision.notify.push(a);
            }
        }
        for (name, value) in &then.add_header {
            decision.add_headers.entry(name.clone()).or_insert_with(|| value.clone());
        }
        if decision.tag_subject.is_none() {
            decision.tag_subject = then.tag_subject.clone();
        }
        if notice_subject.is_none() {
            *notice_subject = then.notice_subject;
        }
    }

    /// The decision for one recipient. Outbound mail that no rule gives a method gets `best`.
    pub fn decide(&self, facts: &MessageFacts<'_>, recipient: &Address) -> Decision {
        let mut decision = Decision {
            method: None,
            require_verified_tls: false,
            tls_fallback: self.config.tls_fallback,
            block: None,
            quarantine: false,
            notify: Vec::new(),
            add_headers: Default::default(),
            tag_subject: None,
            reveal_subject: false,
            method_rule: "default".into(),
            matched_rules: Vec::new(),
        };
        let mut notice_subject = None;
        for rule in &self.config.rules {
            if self.holds(&rule.when, facts, recipient) {
                self.apply(rule, &mut decision, &mut notice_subject);
                if rule.stop {
                    break;
                }
            }
        }
        if decision.method.is_none() && facts.direction == Direction::Outbound {
            decision.method = Some(Method::Best);
        }
        decision.reveal_subject = notice_subject == Some(NoticeSubject::Original) && !facts.summary.subject_sensitive;
        decision.require_verified_tls =
            facts.require_tls || matches!(decision.method, Some(Method::TlsVerified) | Some(Method::Best));
        decision
    }
}
