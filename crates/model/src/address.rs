//! E-mail addresses as SMTP carries them (RFC 5321 mailbox, RFC 6531 for UTF-8).
//!
//! The domain is compared case-insensitively and stored lowercased; the local part keeps the
//! case the sender wrote, as RFC 5321 says only the receiving host may interpret it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Sensitive;

/// A mailbox `local@domain`. Construct with [`Address::parse`]; an `Address` is always valid.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    text: String,
    at: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("an address needs a local part, '@' and a domain")]
    Shape,
    #[error("the local part is longer than 64 octets")]
    LocalTooLong,
    #[error("the address is longer than 254 octets")]
    TooLong,
    #[error("the local part has a character that needs quoting or is not allowed")]
    LocalCharacter,
    #[error("the domain is not a valid host name or address literal")]
    Domain,
}

impl Address {
    /// Parses a mailbox without angle brackets. Quoted local parts are accepted and kept
    /// quoted. UTF-8 is accepted (RFC 6531); whether a peer may receive it is the SMTP layer's
    /// business.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if input.len() > 254 {
            return Err(AddressError::TooLong);
        }
        let at = input.rfind('@').ok_or(AddressError::Shape)?;
        let (local, domain) = (&input[..at], &input[at + 1..]);
        if local.is_empty() || domain.is_empty() {
            return Err(AddressError::Shape);
        }
        if local.len() > 64 {
            return Err(AddressError::LocalTooLong);
        }
        if !valid_local(local) {
            return Err(AddressError::LocalCharacter);
        }
        if !valid_domain(domain) {
            return Err(AddressError::Domain);
        }
        let mut text = String::with_capacity(input.len());
        text.push_str(local);
        text.push('@');
        text.push_str(&domain.to_lowercase());
        Ok(Address { text, at })
    }

    pub fn local(&self) -> &str {
        &self.text[..self.at]
    }

    /// The domain, lowercased.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when any part needs SMTPUTF8 to be transmitted.
    pub fn is_utf8(&self) -> bool {
        !self.text.is_ascii()
    }

    /// A form for comparing addresses the way users expect: whole address lowercased.
    /// Used for look-ups (blind indexes, suppression), never for delivery.
    pub fn canonical(&self) -> String {
        self.text.to_lowercase()
    }

    /// Wraps the address so that logs show a keyed hash instead of the address.
    pub fn redacted(&self) -> Sensitive<&str> {
        Sensitive::new(self.as_str())
    }
}

fn valid_local(local: &str) -> bool {
    if local.starts_with('"') {
        // quoted-string: printable characters, with backslash escapes; no CR/LF.
        if local.len() < 2 || !local.ends_with('"') {
            return false;
        }
        let inner = &local[1..local.len() - 1];
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '"' => return false,
                c if c.is_control() => return false,
                _ => {}
            }
        }
        return !escaped;
    }
    // dot-string: atoms separated by single dots.
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    local.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~.".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    })
}

fn valid_domain(domain: &str) -> bool {
    if domain.starts_with('[') {
        return domain.ends_with(']') && {
            let inner = &domain[1..domain.len() - 1];
            inner.parse::<std::net::Ipv4Addr>().is_ok()
                || inner.strip_prefix("IPv6:").is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
        };
    }
    if domain.len() > 253 {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric()))
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Debug never shows the address: debug output ends up in logs.
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.redacted())
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Address::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_common_addresses() {
        let a = Address::parse("Jane.Doe+lab@Clinic.Example.ORG").unwrap();
        assert_eq!(a.local(), "Jane.Doe+lab");
        assert_eq!(a.domain(), "clinic.example.org");
        assert_eq!(a.as_str(), "Jane.Doe+lab@clinic.example.org");
        assert_eq!(a.canonical(), "jane.doe+lab@clinic.example.org");
        assert!(!a.is_utf8());
        assert!(Address::parse("\"john smith\"@example.com").is_ok());
        assert!(Address::parse("postmaster@[127.0.0.1]").is_ok());
        assert!(Address::parse("user@[IPv6:::1]").is_ok());
        assert!(Address::parse("θσερ@παράδειγμα.δοκιμή").unwrap().is_utf8());
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "@x.org",
            "a@",
            "no-at",
            "a..b@x.org",
            ".a@x.org",
            "a b@x.org",
            "a@-x.org",
            "a@x..org",
            "a@[1.2.3]",
            "a\r\n@x.org",
            "\"a@x.org",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Address::parse(&format!("{}@x.org", "a".repeat(65))), Err(AddressError::LocalTooLong));
    }

    #[test]
    fn debug_hides_the_address() {
        let a = Address::parse("patient@example.org").unwrap();
        let shown = format!("{a:?}");
        assert!(!shown.contains("patient"), "{shown}");
        assert!(!shown.contains("example"), "{shown}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Address::parse(&s);
        }

        #[test]
        fn parsed_address_reparses_to_itself(local in "[a-zA-Z0-9._%+-]{1,20}", domain in "[a-z0-9]{1,10}\\.[a-z]{2,5}") {
            if let Ok(a) = Address::parse(&format!("{local}@{domain}")) {
                prop_assert_eq!(Address::parse(a.as_str()).unwrap(), a);
            }
        }
    }
}
