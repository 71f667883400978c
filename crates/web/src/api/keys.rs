//! API key secrets: how they are made and hashed. The CLI creates keys with these; the
//! server only ever sees the hash in the store.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Every key starts with this, so secret scanners and people can recognize it.
pub const KEY_PREFIX: &str = "cpk_";
/// The scopes a key can have.
pub const SCOPES: &[&str] = &["send", "status", "admin"];

/// A new key: `cpk_` and 256 random bits in base64url. Returns the key and the part shown
/// for identification (its first 12 characters).
pub fn generate() -> Result<(String, String), aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)?;
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let shown = key[..12].to_owned();
    Ok((key, shown))
}

/// The SHA-256 the store keeps of a key.
pub fn hash(key: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, key.as_bytes()).as_ref().to_vec()
}

/// Whether `text` has the shape of a key (before any look-up).
pub fn well_formed(text: &str) -> bool {
    text.len() == KEY_PREFIX.len() + 43
        && text.starts_with(KEY_PREFIX)
        && text[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_well_formed_and_hashed() {
        let (a, shown) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a) && a.starts_with(&shown) && shown.len() == 12);
        assert!(!well_formed("cpk_short") && !well_formed(&a.replace("cpk_", "xxx_")));
        assert_eq!(hash(&a).len(), 32);
        assert_ne!(hash(&a), hash(&b));
    }
}
