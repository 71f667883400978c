//! Checking sign-in credentials against local accounts.
//!
//! One account lock for every way in: a wrong password here counts toward the same
//! persistent lockout as the staff pages (`[staff] lockout_*`), and a locked account is
//! refused here too. Whatever the reason for a refusal (unknown, disabled, locked, wrong
//! password, main password of an account with a second factor), the client gets the same
//! answer after the same work: one argon2id verification, against a dummy hash when there
//! is no real one, and app passwords compared in constant time.

use std::sync::Arc;

use carepost_model::{TenantId, Timestamp};
use carepost_store::Store;
use carepost_store::accounts::{Account, app_password_hash};
use carepost_store::staff::Lockout;
use carepost_vault::KeyRing;
use futures::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] carepost_store::StoreError),
    #[error("password check failed to run: {0}")]
    Worker(String),
}

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

impl Refused {
    fn unknown() -> Self {
        Refused { account_id: None, because: RefusedBecause::Unknown, locked_now: false }
    }
}

/// Checks a login name and password. `Ok(Err(_))` is a refusal; callers answer every
/// refusal the same way.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        login: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Result<SignedIn, Refused>, AuthError>>;
}

/// Accounts in the store: argon2id passwords and keyed-hash app passwords.
pub struct StoreAuthenticator {
    store: Store,
    ring: Arc<KeyRing>,
    lockout: Lockout,
}

impl StoreAuthenticator {
    /// `lockout` is the staff pages' policy (`[staff]`), so that both ways in share one lock.
    /// argon2id takes tens of milliseconds and 19 MiB per check: checks run under the
    /// process-wide limit the web sign-ins share (`carepost_vault::HashingLimit`), so a flood
    /// of sign-ins on either side cannot starve the rest of the server.
    pub fn new(store: Store, ring: Arc<KeyRing>, lockout: Lockout) -> Self {
        StoreAuthenticator { store, ring, lockout }
    }

    /// One argon2id verification: against `hash`, or against a dummy hash when there is none
    /// (which never matches), so that both take the same time.
    async fn slow_check(&self, hash: Option<String>, password: &str) -> Result<bool, AuthError> {
        let password = password.to_owned();
        let checked = match hash {
            Some(hash) => carepost_vault::verify_password_limited(hash, password).await,
            None => carepost_vault::verify_nothing_limited(password).await.map(|()| false),
        };
        checked.map_err(|e| AuthError::Worker(e.to_string()))
    }
}

/// Compares two byte strings in time independent of where they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The least time a refused AUTH takes. The paths differ by a store read or write (a known
/// account's failure is counted, an unknown one's is not); answering every refusal no sooner
/// than this hides which path was taken, and slows guessing the way Postfix's
/// `smtpd_error_sleep_time` does.
const REFUSAL_FLOOR: std::time::Duration = std::time::Duration::from_millis(400);

impl Authenticator for StoreAuthenticator {
    fn authenticate<'a>(
        &'a self,
        login: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Result<SignedIn, Refused>, AuthError>> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let outcome = self.check(login, password).await;
            if !matches!(outcome, Ok(Ok(_))) {
                tokio::time::sleep_until(started + REFUSAL_FLOOR).await;
            }
            outcome
        })
    }
}

impl StoreAuthenticator {
    async fn check(&self, login: &str, password: &str) -> Result<Result<SignedIn, Refused>, AuthError> {
        let creds = self.store.account_credentials(&self.ring, login).await?;
        // api_only accounts are applications: they send with API keys, never SMTP AUTH.
        let creds = creds.filter(|c| !c.account.disabled && c.account.role.may_submit_over_smtp());
        // The keyed hash is computed for every login, known or not: the same work.
        let tenant = creds.as_ref().map_or_else(TenantId::default, |c| c.account.tenant.clone());
        let presented = app_password_hash(&self.ring, &tenant, password)?;
        let Some(creds) = creds else {
            self.slow_check(None, password).await?;
            return Ok(Err(Refused::unknown()));
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
        let account_id = creds.account.id.clone();
        let auth = self.store.staff_auth(&account_id).await?.unwrap_or_default();
        let now = Timestamp::now().as_micros();
        let locked = auth.locked_at(now);
        // The password is verified before the lock is looked at, so that a locked
        // account answers exactly as an unknown one and a wrong password.
        let has_hash = creds.password_hash.is_some();
        let right = self.slow_check(creds.password_hash, password).await? && has_hash;
        let refused = |because: RefusedBecause, locked_now: bool| -> Result<Result<SignedIn, Refused>, AuthError> {
            Ok(Err(Refused { account_id: Some(account_id.clone()), because, locked_now }))
        };
        if locked {
            return refused(RefusedBecause::Locked, false);
        }
        if !right {
            let count = self.store.staff_signin_failed(&account_id, now, self.lockout).await?;
            return refused(RefusedBecause::WrongPassword, count.locked_until.is_some());
        }
        if auth.has_mfa() || self.store.mfa_required(creds.account.tenant.as_str()).await? {
            return refused(RefusedBecause::SecondFactor, false);
        }
        if auth.failures > 0 {
            self.store.staff_signin_succeeded(&account_id).await?;
        }
        Ok(Ok(SignedIn { account: creds.account, app_password: None }))
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn compares_bytes() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
    }
}
