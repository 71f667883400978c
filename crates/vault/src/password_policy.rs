//! What a new password must be: long enough, not one of the most common passwords (a list
//! bundled with carepost, `assets/common-passwords.txt`), and not built from the account's
//! own name. Checked wherever a password is chosen (CLI, staff pages, the portal) before it
//! is hashed; a refused password changes nothing.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::MAX_PASSWORD_LEN;

const COMMON: &str = include_str!("../assets/common-passwords.txt");

/// The minimum length when configuration says nothing else.
pub const DEFAULT_MIN_LENGTH: usize = 12;

/// The rules a new password is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Characters (not bytes) a password needs at least.
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: DEFAULT_MIN_LENGTH }
    }
}

/// Why a password was refused. The text is shown to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("the password is shorter than {0} characters")]
    TooShort(usize),
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    #[error("the password is one of the most commonly used passwords; choose another")]
    Common,
    #[error("the password contains the user name; choose one that does not")]
    ContainsName,
}

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect())
}

/// The name parts a password must not contain: the login, and for an e-mail address its
/// local part and the local part's words (`jane.roe` gives `jane` and `roe`). Parts shorter
/// than four characters are too likely to occur by chance to refuse.
fn name_parts(login: &str) -> Vec<String> {
    let login = login.trim().to_lowercase();
    let local = login.split('@').next().unwrap_or("").to_owned();
    let mut parts = vec![login.clone(), local.clone()];
    parts.extend(local.split(|c: char| !c.is_alphanumeric()).map(str::to_owned));
    parts.retain(|p| p.chars().count() >= 4);
    parts.sort();
    parts.dedup();
    parts
}

impl PasswordPolicy {
    /// Checks `password` for the account named `login` (empty when there is no name to
    /// compare against).
    pub fn check(&self, password: &str, login: &str) -> Result<(), PasswordRejected> {
        if password.len() > MAX_PASSWORD_LEN {
            return Err(PasswordRejected::TooLong);
        }
        if password.chars().count() < self.min_length.max(1) {
            return Err(PasswordRejected::TooShort(self.min_length.max(1)));
        }
        let lower = password.to_lowercase();
        // "Password123!" is "password" with decoration; such variants are the first
        // guesses of every cracking tool, so the bare word decides.
        let core = lower.trim_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace());
        let list = common();
        if list.contains(lower.as_str()) || (!core.is_empty() && list.contains(core)) {
            return Err(PasswordRejected::Common);
        }
        if name_parts(login).iter().any(|p| lower.contains(p.as_str())) {
            return Err(PasswordRejected::ContainsName);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_list_is_loaded() {
        assert_eq!(common().len(), 10_000);
        assert!(common().contains("password") && common().contains("trustno1"));
    }

    #[test]
    fn short_common_and_named_passwords_are_refused() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check("short", ""), Err(PasswordRejected::TooShort(12)));
        assert_eq!(p.check("LeaveMeAlone", ""), Err(PasswordRejected::Common));
        assert_eq!(p.check("Password1234!", ""), Err(PasswordRejected::Common), "decorated common word");
        assert_eq!(p.check("Jane.Roe-summer-walks", "jane.roe@clinic.example"), Err(PasswordRejected::ContainsName));
        assert_eq!(
            p.check("roeroeroe-tulip-42", "jane.roe@clinic.example"),
            Ok(()),
            "three-letter parts are not refused"
        );
        assert_eq!(p.check(&"x".repeat(MAX_PASSWORD_LEN + 1), ""), Err(PasswordRejected::TooLong));
        assert_eq!(p.check("correct horse battery staple", "jane.roe@clinic.example"), Ok(()));
        assert_eq!(PasswordPolicy { min_length: 8 }.check("tulip-lamp", ""), Ok(()));
        // Length counts characters, not bytes.
        assert_eq!(p.check("ééééééééééé", ""), Err(PasswordRejected::TooShort(12)));
    }
}
