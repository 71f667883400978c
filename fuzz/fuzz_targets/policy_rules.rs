//! Fuzz the policy rule parser and engine: arbitrary `[policy]` TOML is either refused with
//! an error or accepted, and an accepted policy decides for any message and recipient
//! without panicking, with a plan that always ends somewhere.
//!
//!     cargo +nightly fuzz run policy_rules
//!
//! Input: the policy text, a NUL byte, then a raw message (scanned by DLP for the facts).

#![no_main]

use carepost_model::Address;
use carepost_policy::{Capabilities, Direction, MessageFacts, Policy, PolicyConfig};
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
struct File {
    policy: PolicyConfig,
}

fuzz_target!(|data: &[u8]| {
    let (rules, message) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(rules) else { return };
    let Ok(file) = toml::from_str::<File>(text) else { return };
    let Ok(policy) = Policy::new(file.policy) else { return };
    let limits = carepost_dlp::Limits { max_message_text_bytes: 1 << 16, ..carepost_dlp::Limits::default() };
    let summary = carepost_dlp::scan_eml(message, &limits).summary();
    let sender = Address::parse("nurse@clinic.example.org").ok();
    let subject = String::from_utf8_lossy(message.get(..64).unwrap_or(message));
    for direction in [Direction::Outbound, Direction::Inbound] {
        let facts = MessageFacts {
            direction,
            sender: sender.as_ref(),
            subject: &subject,
            summary: &summary,
            size: message.len() as u64,
            require_tls: message.len() % 2 == 1,
        };
        for rcpt in ["pat@example.net", "lab@lab.example.com", "x@clinic.example.org"] {
            let decision = policy.decide(&facts, &Address::parse(rcpt).unwrap());
            for caps in [Capabilities::default(), Capabilities { smime_certificate: true, pgp_key: true }] {
                assert!(!decision.plan(caps).is_empty(), "a plan with no step");
            }
        }
    }
});
