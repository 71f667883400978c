//! Policy: ordered rules from the configuration turn a message, its DLP summary and one
//! recipient into a [`Decision`]: how the message must be protected on its way to that
//! recipient, and whether it is blocked, quarantined, reported, tagged.
//!
//! Pure and synchronous: no I/O, no clock. What a recipient can receive (a known S/MIME or
//! OpenPGP key, verified TLS at its servers) is only known at delivery time, so a decision
//! names the protection required and [`Decision::plan`] turns it into the ordered methods to
//! try once those capabilities are known. A plan never ends in plaintext.

mod config;
mod decision;
mod engine;
mod pattern;

pub use config::{Actions, Conditions, EntityName, NoticeSubject, PolicyConfig, PolicyError, Rule, TlsFallback};
pub use decision::{Capabilities, Decision, Method, Step};
pub use engine::{Direction, MessageFacts, Policy};
pub use pattern::AddressPattern;
