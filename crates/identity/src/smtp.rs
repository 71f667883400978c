//! Signing in to SMTP submission with a password or an app password.
//!
//! One account lock for every way in: a wrong password here counts toward the same lockout
//! as the staff pages, and a locked account is refused here too. Whatever the reason for a
//! refusal (unknown, disabled, locked, wrong password, main password of an account with a
//! second factor), the same work is done: one argon2id verification, against a dummy hash
//! when there is no real one, and app passwords compared in constant time.

use carepost_model::TenantId;
use carepost_store::accounts::app_password_hash;

use crate::{Account, AccountRef, Identity, IdentityError, Kind, permission};

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: Account,
    /// The name of the app password used, if one was.
    pub app_password: Option<String>,
}

/// Why a sign-in was refused. For the audit log only: the client is told none of this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBecause {
    /// No account by that name, or one that is disabled or may not use SMTP.
    Unknown,
    /// A wrong password (or app password).
    WrongPassword,
    /// The account is locked after failed sign-ins; the password was not looked at twice.
    Locked,
    /// The right main password of an account with a second factor (or whose organization
    /// requires one): over SMTP such accounts use app passwords only.
    SecondFactor,
}

impl RefusedBecause {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedBecause::Unknown => "unknown, disabled or api-only account",
            RefusedBecause::WrongPassword => "wrong password",
            RefusedBecause::Locked => "account locked",
            RefusedBecause::SecondFactor => "main password of an account with a second factor: app passwords only",
        }
    }

    /// Whether the refusal stopped an attempt that would otherwise have gone further (a
    /// right password on a locked account, or a password that needs a second factor).
    pub fn denied(self) -> bool {
        matches!(self, RefusedBecause::Locked | RefusedBecause::SecondFactor)
    }
}

/// A refused sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The account the login names, when it is one that may use SMTP.
    pub account_id: Option<String>,
    pub because: RefusedBecause,
    /// This failure locked the account.
    pub locked_now: bool,
}

/// Compares two byte strings in time independent of where they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Identity {
    /// Checks a login name and password (or app password) for SMTP submission. `Ok(Err(_))`
    /// is a refusal; callers answer every refusal the same way.
    pub async fn smtp_sign_in(&self, login: &str, password: &str) -> Result<Result<SignedIn, Refused>, IdentityError> {
        let creds = self.store.account_credentials(&self.ring, login).await?;
        // api_only accounts are applications: they send with API keys, never SMTP AUTH.
        let creds = creds.filter(|c| {
            !c.account.disabled && permission::allows(c.account.role, permission::Permission::SubmitOverSmtp)
        });
        // The keyed hash is computed for every login, known or not: the same work.
        let tenant = creds.as_ref().map_or_else(TenantId::default, |c| c.account.tenant.clone());
        let presented = app_password_hash(&self.ring, &tenant, password)?;
        let Some(creds) = creds else {
            self.slow_check(None, password).await?;
            return Ok(Err(Refused { account_id: None, because: RefusedBecause::Unknown, locked_now: false }));
        };
        // Every app password is compared (no early exit on the first match).
        let app = creds
            .app_passwords
            .iter()
            .fold(None, |found, a| if same_bytes(&a.secret_hash, &presented) { Some(a) } else { found });
        // App passwords are long random secrets nobody guesses, so the lock (which stops
        // guessing) does not stop them: an attacker who locks an account by failing on
        // purpose does not cut its mail clients off.
        if let Some(app) = app {
            if let Err(e) = self.store.touch_app_password(&app.id).await {
                tracing::warn!(error = %e, "cannot record app password use");
            }
            return Ok(Ok(SignedIn { account: creds.account, app_password: Some(app.name.clone()) }));
        }
        let who = AccountRef::staff(&creds.account);
        let factors = self.factors(Kind::Staff, &who.id).await?.unwrap_or_default();
        let locked = factors.locked_at(crate::now());
        // The password is verified before the lock is looked at, so that a locked
        // account answers exactly as an unknown one and a wrong password.
        let has_hash = creds.password_hash.is_some();
        let right = self.slow_check(creds.password_hash, password).await? && has_hash;
        let refused = |because: RefusedBecause, locked_now: bool| {
            Ok(Err(Refused { account_id: Some(who.id.clone()), because, locked_now }))
        };
        if locked {
            return refused(RefusedBecause::Locked, false);
        }
        if !right {
            let locked_now = self.count_failure(&who).await?;
            return refused(RefusedBecause::WrongPassword, locked_now);
        }
        if factors.has_second_factor() || self.mfa_required(&who.tenant).await? {
            return refused(RefusedBecause::SecondFactor, false);
        }
        if factors.failures > 0 {
            self.forget_failures(Kind::Staff, &who.id).await?;
        }
        Ok(Ok(SignedIn { account: creds.account, app_password: None }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{PASSWORD, fixture, jane};

    #[test]
    fn compares_bytes() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
    }

    #[tokio::test]
    async fn smtp_shares_the_lock_and_app_passwords_pass_it() {
        let f = fixture().await;
        let jane = jane(&f).await;
        let secret = f.identity.add_app_password(&jane, "phone").await.unwrap();
        assert!(f.identity.smtp_sign_in("jane@clinic.example", PASSWORD).await.unwrap().is_ok());
        for n in 1..=3 {
            let refused = f.identity.smtp_sign_in("jane@clinic.example", "nope").await.unwrap().unwrap_err();
            assert_eq!((refused.because, refused.locked_now), (RefusedBecause::WrongPassword, n == 3));
        }
        let refused = f.identity.smtp_sign_in("jane@clinic.example", PASSWORD).await.unwrap().unwrap_err();
        assert_eq!(refused.because, RefusedBecause::Locked);
        let signed = f.identity.smtp_sign_in("JANE@clinic.example", &secret.to_uppercase()).await.unwrap().unwrap();
        assert_eq!(signed.app_password.as_deref(), Some("phone"), "the lock does not stop app passwords");
        let unknown = f.identity.smtp_sign_in("nobody@clinic.example", PASSWORD).await.unwrap().unwrap_err();
        assert_eq!((unknown.because, unknown.account_id), (RefusedBecause::Unknown, None));
    }
}
