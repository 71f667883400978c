//! Keeping PHI out of logs.
//!
//! Addresses, subjects, file names and similar values must never reach a log line, yet an
//! operator chasing a problem needs to see that two log lines talk about the same recipient.
//! [`Sensitive`] prints a short keyed hash instead of the value: stable within an
//! installation (the key is derived from the vault at start-up), meaningless outside it.

use std::fmt;
use std::sync::OnceLock;

use aws_lc_rs::hmac;

static REDACTION_KEY: OnceLock<hmac::Key> = OnceLock::new();

/// Installs the installation's redaction key. The first call wins; later calls are ignored so
/// that a library cannot change how earlier log lines correlate with later ones.
pub fn install_redaction_key(secret: &[u8]) {
    let _ = REDACTION_KEY.set(hmac::Key::new(hmac::HMAC_SHA256, secret));
}

fn key() -> &'static hmac::Key {
    REDACTION_KEY.get_or_init(|| {
        // Before the vault is open (or in tests) hash under a random per-process key: the
        // value still never appears, it only stops correlating across restarts.
        let mut secret = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut secret);
        hmac::Key::new(hmac::HMAC_SHA256, &secret)
    })
}

/// The keyed tag of a value as logs show it: `h:` and 12 hex digits.
pub fn redaction_tag(value: &[u8]) -> String {
    let tag = hmac::sign(key(), value);
    let mut out = String::with_capacity(14);
    out.push_str("h:");
    for b in &tag.as_ref()[..6] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A value that must not be logged. `Debug` and `Display` print its keyed tag; the value
/// itself is reachable only through [`Sensitive::expose`], which makes every disclosure
/// explicit in the code.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    pub fn new(value: T) -> Self {
        Sensitive(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redaction_tag(self.0.as_ref()))
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<T> From<T> for Sensitive<T> {
    fn from(value: T) -> Self {
        Sensitive(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_a_stable_tag_not_the_value() {
        let subject = Sensitive::new("Lab results for Jane Roe");
        let shown = format!("{subject} {subject:?}");
        assert!(!shown.contains("Jane"));
        let tag = subject.to_string();
        assert!(tag.starts_with("h:") && tag.len() == 14);
        assert_eq!(tag, Sensitive::new("Lab results for Jane Roe").to_string());
        assert_ne!(tag, Sensitive::new("Lab results for John Roe").to_string());
        assert_eq!(*subject.expose(), "Lab results for Jane Roe");
    }
}
