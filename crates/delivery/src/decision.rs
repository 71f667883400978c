//! Reading policy's per-recipient decision from the queue.
//!
//! Policy stores a [`Decision`] as JSON for each recipient; delivery turns it into a plan
//! ([`Decision::plan`]) once it knows which keys the recipient has. A recipient without a
//! decision (carepost's own notices, mail queued before inspection) goes by the transport:
//! opportunistic TLS unless the message has REQUIRETLS or the domain is TLS-required.

use carepost_policy::Capabilities;
pub use carepost_policy::{Decision, Method, Step, TlsFallback};

/// The decision stored for a recipient. An unreadable decision is read as the strictest one:
/// failing closed costs a held message, failing open could leak PHI.
pub fn read(stored: Option<&str>) -> Option<Decision> {
    stored.map(|text| Decision::from_json(text).unwrap_or_else(strictest))
}

/// Verified TLS or nothing: held for an operator otherwise.
pub fn strictest() -> Decision {
    Decision {
        method: Some(Method::TlsVerified),
        require_verified_tls: true,
        tls_fallback: TlsFallback::Hold,
        method_rule: "unreadable decision".into(),
        ..Decision::default()
    }
}

/// For carepost's own notices about protected messages (a DSN quotes the message's headers):
/// verified TLS, else the portal.
pub fn verified_tls() -> Decision {
    Decision {
        require_verified_tls: true,
        method_rule: "notice about a protected message".into(),
        ..Decision::default()
    }
}

/// Whether the recipient's copy may leave only over verified TLS.
pub fn requires_verified_tls(stored: Option<&str>) -> bool {
    read(stored).is_some_and(|d| d.require_verified_tls)
}

/// What the plan does when the verified TLS it asked for is unavailable.
pub fn after_verified_tls(decision: Option<&Decision>) -> Step {
    let Some(decision) = decision else { return Step::Hold };
    let plan = decision.plan(Capabilities::default());
    plan.iter().position(|s| *s == Step::TlsVerified).and_then(|i| plan.get(i + 1).copied()).unwrap_or(Step::Hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_policy_decisions_and_fails_closed() {
        assert!(read(None).is_none());
        let d = read(Some(r#"{"require_verified_tls":true,"tls_fallback":"bounce"}"#)).unwrap();
        assert_eq!(after_verified_tls(Some(&d)), Step::Bounce);
        let best = read(Some(r#"{"method":"best","require_verified_tls":true}"#)).unwrap();
        assert_eq!(after_verified_tls(Some(&best)), Step::Portal);
        assert_eq!(read(Some("not json")).unwrap(), strictest());
        assert_eq!(after_verified_tls(Some(&strictest())), Step::Hold);
        assert!(requires_verified_tls(Some(&verified_tls().to_json())));
        assert!(!requires_verified_tls(None));
    }
}
