//! The part of policy's per-recipient decision that delivery reads.
//!
//! Policy stores its decision for each recipient as JSON in `recipients.decision`. Delivery
//! reads only the fields below and ignores the rest, so policy may add fields freely:
//!
//! ```json
//! { "require_verified_tls": true, "tls_fallback": "portal" }
//! ```
//!
//! - `require_verified_tls` (bool, default false): this recipient's copy may leave only over
//!   TLS whose peer was verified (DANE, MTA-STS or PKIX). When the next hop cannot give that,
//!   delivery does not send it in clear.
//! - `tls_fallback` (`portal` | `hold` | `bounce`, default `portal`): what happens then.
//!   `bounce` returns the message to its sender (status 5.7.10); `portal` and `hold` hold
//!   the recipient (state `held`, reason sealed) — the portal hand-over comes with the portal.
//!
//! No decision (policy has not run, or the message is carepost's own notice) means
//! opportunistic TLS, unless the message has REQUIRETLS or the domain is TLS-required.

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeliveryDecision {
    pub require_verified_tls: bool,
    pub tls_fallback: TlsFallback,
}

/// What to do when verified TLS is required and unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsFallback {
    #[default]
    Portal,
    Hold,
    Bounce,
}

impl DeliveryDecision {
    /// Reads a stored decision. An unreadable decision is treated as the strictest one:
    /// failing closed costs a held message, failing open could leak PHI.
    pub fn from_row(decision: Option<&str>) -> Self {
        match decision {
            None => DeliveryDecision::default(),
            Some(text) => serde_json::from_str(text)
                .unwrap_or(DeliveryDecision { require_verified_tls: true, tls_fallback: TlsFallback::Hold }),
        }
    }

    /// A decision that only requires verified TLS (carepost's own notices about protected
    /// messages).
    pub fn verified_tls() -> Self {
        DeliveryDecision { require_verified_tls: true, tls_fallback: TlsFallback::Portal }
    }

    pub fn to_json(&self) -> String {
        let fallback = match self.tls_fallback {
            TlsFallback::Portal => "portal",
            TlsFallback::Hold => "hold",
            TlsFallback::Bounce => "bounce",
        };
        format!("{{\"require_verified_tls\":{},\"tls_fallback\":\"{fallback}\"}}", self.require_verified_tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_fields_ignores_others_and_fails_closed() {
        assert!(!DeliveryDecision::from_row(None).require_verified_tls);
        let policy = r#"{"method":"tls_verified","require_verified_tls":true,"tls_fallback":"bounce","block":null,"matched_rules":[]}"#;
        assert_eq!(DeliveryDecision::from_row(Some(policy)), DeliveryDecision { require_verified_tls: true, tls_fallback: TlsFallback::Bounce });
        assert!(!DeliveryDecision::from_row(Some(r#"{"method":"tls"}"#)).require_verified_tls);
        assert!(DeliveryDecision::from_row(Some("not json")).require_verified_tls);
        let d = DeliveryDecision { require_verified_tls: true, tls_fallback: TlsFallback::Hold };
        assert_eq!(DeliveryDecision::from_row(Some(&d.to_json())), d);
    }
}
