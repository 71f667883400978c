//! Address patterns in rules and groups.

use std::fmt;

use carepost_model::Address;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `user@example.org` (one address), `example.org` or `@example.org` (a domain),
/// `*.example.org` (its subdomains, not itself), `*` (anyone). Case-insensitive.
#[derive(Clone, PartialEq, Eq)]
pub enum AddressPattern {
    Exact(String),
    Domain(String),
    Subdomains(String),
    Any,
}

impl AddressPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_lowercase();
        if t == "*" {
            return Ok(AddressPattern::Any);
        }
        if let Some(rest) = t.strip_prefix("*.") {
            return valid_domain(rest).then(|| AddressPattern::Subdomains(rest.to_owned())).ok_or_else(|| bad(text));
        }
        if let Some(rest) = t.strip_prefix('@') {
            return valid_domain(rest).then(|| AddressPattern::Domain(rest.to_owned())).ok_or_else(|| bad(text));
        }
        if t.contains('@') {
            return Address::parse(&t).map(|a| AddressPattern::Exact(a.canonical())).map_err(|_| bad(text));
        }
        valid_domain(&t).then(|| AddressPattern::Domain(t.clone())).ok_or_else(|| bad(text))
    }

    pub fn matches(&self, address: &Address) -> bool {
        match self {
            AddressPattern::Any => true,
            AddressPattern::Exact(a) => address.canonical() == *a,
            AddressPattern::Domain(d) => address.domain() == d,
            AddressPattern::Subdomains(d) => {
                address.domain().len() > d.len() + 1 && address.domain().ends_with(d.as_str()) && {
                    let cut = address.domain().len() - d.len() - 1;
                    address.domain().as_bytes()[cut] == b'.'
                }
            }
        }
    }
}

fn bad(text: &str) -> String {
    format!("'{text}' is not an address, a domain, '*.domain' or '*'")
}

fn valid_domain(d: &str) -> bool {
    Address::parse(&format!("x@{d}")).is_ok()
}

impl fmt::Debug for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressPattern::Exact(a) => write!(f, "{}", carepost_model::Sensitive::new(a.as_str())),
            AddressPattern::Domain(d) => write!(f, "@{d}"),
            AddressPattern::Subdomains(d) => write!(f, "*.{d}"),
            AddressPattern::Any => f.write_str("*"),
        }
    }
}

impl Serialize for AddressPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AddressPattern::Exact(a) => s.serialize_str(a),
            AddressPattern::Domain(d) => s.serialize_str(d),
            AddressPattern::Subdomains(d) => s.collect_str(&format_args!("*.{d}")),
            AddressPattern::Any => s.serialize_str("*"),
        }
    }
}

impl<'de> Deserialize<'de> for AddressPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AddressPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_as_documented() {
        let exact = AddressPattern::parse("Billing@Clinic.example.org").unwrap();
        assert!(exact.matches(&a("billing@clinic.example.org")));
        assert!(!exact.matches(&a("billing2@clinic.example.org")));
        for p in ["clinic.example.org", "@clinic.example.org"] {
            let domain = AddressPattern::parse(p).unwrap();
            assert!(domain.matches(&a("x@CLINIC.example.org")));
            assert!(!domain.matches(&a("x@sub.clinic.example.org")));
        }
        let subs = AddressPattern::parse("*.example.org").unwrap();
        assert!(subs.matches(&a("x@clinic.example.org")));
        assert!(!subs.matches(&a("x@example.org")));
        assert!(!subs.matches(&a("x@badexample.org")));
        assert!(AddressPattern::parse("*").unwrap().matches(&a("x@y.z")));
        for bad in ["", "a@", "*@", "a b", "*.", "@"] {
            assert!(AddressPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
