//! `[staff]`: sign-in of the organization's own people to the staff pages.
//!
//! Every key has a default; docs/config.md describes each one.

use carepost_model::Interval;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaffConfig {
    /// A staff session that sees no request for this long is signed out.
    pub session_idle: Interval,
    /// A staff session ends this long after sign-in, however active.
    pub session_lifetime: Interval,
    /// Failed sign-ins (passwords, codes, security keys, SMTP AUTH passwords) within
    /// `failure_window` that lock the account.
    pub lockout_failures: u32,
    /// How long a locked account refuses every sign-in, on the staff pages and over SMTP
    /// (app passwords excepted); `carepost user unlock` ends it early.
    pub lockout_duration: Interval,
    /// The window over which failures are counted.
    pub failure_window: Interval,
    /// The shortest password a staff account may choose, in characters.
    pub password_min_length: u32,
    /// Mail the account a notice when it signs in from a client address it never used.
    pub new_ip_notice: bool,
}

impl Default for StaffConfig {
    fn default() -> Self {
        StaffConfig {
            session_idle: Interval::secs(15 * 60),
            session_lifetime: Interval::secs(10 * 3600),
            lockout_failures: 5,
            lockout_duration: Interval::secs(15 * 60),
            failure_window: Interval::secs(15 * 60),
            password_min_length: 12,
            new_ip_notice: true,
        }
    }
}

/// Why a `[staff]` section cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StaffConfigError {
    #[error("staff.{0} must be more than zero")]
    Zero(&'static str),
    #[error("staff.password_min_length must be at least 8 (NIST SP 800-63B); it is {0}")]
    ShortPasswords(u32),
}

impl StaffConfig {
    pub fn validate(&self) -> Result<(), StaffConfigError> {
        for (name, value) in [
            ("session_idle", self.session_idle.as_secs()),
            ("session_lifetime", self.session_lifetime.as_secs()),
            ("lockout_failures", u64::from(self.lockout_failures)),
            ("lockout_duration", self.lockout_duration.as_secs()),
            ("failure_window", self.failure_window.as_secs()),
        ] {
            if value == 0 {
                return Err(StaffConfigError::Zero(name));
            }
        }
        if self.password_min_length < 8 {
            return Err(StaffConfigError::ShortPasswords(self.password_min_length));
        }
        Ok(())
    }

    /// The account lockout, as the store counts it for the staff pages and SMTP AUTH alike.
    pub fn lockout(&self) -> carepost_store::signin::Lockout {
        carepost_store::signin::Lockout {
            failures: i64::from(self.lockout_failures.max(1)),
            window: crate::micros(self.failure_window.as_secs()),
            lock_for: crate::micros(self.lockout_duration.as_secs()),
        }
    }

    /// The rules new staff passwords are held to (web and CLI alike). Commands that do not
    /// validate the whole configuration still never go below 8 characters.
    pub fn password_policy(&self) -> carepost_vault::PasswordPolicy {
        carepost_vault::PasswordPolicy {
            min_length: usize::try_from(self.password_min_length.max(8)).unwrap_or(usize::MAX),
        }
    }

    /// What the identity room holds staff accounts to.
    pub fn policy(&self) -> carepost_identity::KindPolicy {
        carepost_identity::KindPolicy {
            lockout: self.lockout(),
            session_idle: crate::micros(self.session_idle.as_secs()),
            session_lifetime: crate::micros(self.session_lifetime.as_secs()),
            passwords: self.password_policy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_round_trip_and_unknown_keys_fail() {
        let c = StaffConfig::default();
        c.validate().unwrap();
        assert_eq!(toml::from_str::<StaffConfig>(&toml::to_string(&c).unwrap()).unwrap(), c);
        assert!(toml::from_str::<StaffConfig>("session_idel = \"1m\"").is_err());
        assert_eq!(
            StaffConfig { password_min_length: 6, ..c.clone() }.validate(),
            Err(StaffConfigError::ShortPasswords(6))
        );
        assert_eq!(
            StaffConfig { password_min_length: 6, ..c.clone() }.password_policy().min_length,
            8,
            "never below 8"
        );
        assert_eq!(
            StaffConfig { lockout_failures: 0, ..c }.validate(),
            Err(StaffConfigError::Zero("lockout_failures"))
        );
    }
}
