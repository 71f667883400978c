//! Checking sign-in credentials against local accounts.

use std::sync::Arc;

use carepost_store::Store;
use carepost_store::accounts::{Account, app_password_hash};
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

/// Checks a login name and password. `Ok(None)` is a wrong password, an unknown account or a
/// disabled one; callers cannot and need not tell these apart.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, login: &'a str, password: &'a str) -> BoxFuture<'a, Result<Option<SignedIn>, AuthError>>;
}

/// Accounts in the store: argon2id passwords and keyed-hash app passwords.
pub struct StoreAuthenticator {
    store: Store,
    ring: Arc<KeyRing>,
}

impl StoreAuthenticator {
    /// argon2id takes tens of milliseconds and 19 MiB per check: checks run under the
    /// process-wide limit the web sign-ins share (`carepost_vault::HashingLimit`), so a flood
    /// of sign-ins on either side cannot starve the rest of the server.
    pub fn new(store: Store, ring: Arc<KeyRing>) -> Self {
        StoreAuthenticator { store, ring }
    }

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

impl Authenticator for StoreAuthenticator {
    fn authenticate<'a>(&'a self, login: &'a str, password: &'a str) -> BoxFuture<'a, Result<Option<SignedIn>, AuthError>> {
        Box::pin(async move {
            let Some(creds) = self.store.account_credentials(&self.ring, login).await? else {
                self.slow_check(None, password).await?;
                return Ok(None);
            };
            // api_only accounts are applications: they send with API keys, never SMTP AUTH.
            if creds.account.disabled || !creds.account.role.may_submit_over_smtp() {
                self.slow_check(None, password).await?;
                return Ok(None);
            }
            if !creds.app_passwords.is_empty() {
                let presented = app_password_hash(&self.ring, &creds.account.tenant, password)?;
                if let Some(app) = creds.app_passwords.iter().find(|a| same_bytes(&a.secret_hash, &presented)) {
                    if let Err(e) = self.store.touch_app_password(&app.id).await {
                        tracing::warn!(error = %e, "cannot record app password use");
                    }
                    return Ok(Some(SignedIn { account: creds.account, app_password: Some(app.name.clone()) }));
                }
            }
            let has_hash = creds.password_hash.is_some();
            let ok = self.slow_check(creds.password_hash, password).await?;
            Ok((ok && has_hash).then_some(SignedIn { account: creds.account, app_password: None }))
        })
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
