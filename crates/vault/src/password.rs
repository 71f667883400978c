//! Password hashing for sign-in: argon2id in the PHC string format.
//!
//! Parameters are argon2's defaults (19 MiB of memory, 2 passes, 1 lane), the OWASP
//! recommendation; a hash names its own parameters, so raising them later only affects new
//! hashes while old ones keep verifying. Hashing costs tens of milliseconds of CPU by design:
//! callers on an async runtime run it on a blocking thread.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use zeroize::Zeroizing;

use crate::VaultError;

const SALT_LEN: usize = 16;

/// The longest password accepted. Longer input is refused before hashing so that a client
/// cannot make the server hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes `password` with a fresh random salt. Returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
pub fn hash_password(password: &str) -> Result<String, VaultError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(VaultError::Password(format!("a password has 1 to {MAX_PASSWORD_LEN} bytes")));
    }
    let mut salt = Zeroizing::new([0u8; SALT_LEN]);
    aws_lc_rs::rand::fill(salt.as_mut()).map_err(|_| VaultError::Random)?;
    let hash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), salt.as_ref())
        .map_err(|e| VaultError::Password(e.to_string()))?;
    Ok(hash.to_string())
}

/// True when `password` matches `hash`. A malformed hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// Spends the time a real verification takes, for sign-ins naming an unknown account, so
/// that response times do not reveal which accounts exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("carepost-timing-equalizer").unwrap_or_default());
    let _ = verify_password(hash, password);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(hash_password("").is_err());
        assert!(hash_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        verify_nothing("anything");
    }
}
