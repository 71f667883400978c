//! Carrying out policy's per-recipient decision.
//!
//! The spool hands each recipient's [`Decision`] back typed (an unreadable one as
//! [`Decision::strictest`]); delivery turns it into a plan ([`Decision::plan`]) once it knows
//! which keys the recipient has. A recipient without a decision (carepost's own notices, mail
//! queued before inspection) goes by the transport: opportunistic TLS unless the message has
//! REQUIRETLS or the domain is TLS-required.

use carepost_policy::Capabilities;
pub use carepost_policy::{Decision, Method, Step, TlsFallback};

/// Verified TLS or nothing: held for an operator otherwise.
pub fn strictest() -> Decision {
    Decision::strictest()
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
pub fn requires_verified_tls(decision: Option<&Decision>) -> bool {
    decision.is_some_and(|d| d.require_verified_tls)
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
        let read = |text: &str| Decision::read_stored(text);
        let d = read(r#"{"require_verified_tls":true,"tls_fallback":"bounce"}"#);
        assert_eq!(after_verified_tls(Some(&d)), Step::Bounce);
        let best = read(r#"{"method":"best","require_verified_tls":true}"#);
        assert_eq!(after_verified_tls(Some(&best)), Step::Portal);
        assert_eq!(read("not json"), strictest());
        assert_eq!(after_verified_tls(Some(&strictest())), Step::Hold);
        assert!(requires_verified_tls(Some(&read(&verified_tls().to_json()))));
        assert!(!requires_verified_tls(None));
    }
}
