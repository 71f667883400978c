//! SMTP AUTH's way to the identity room: the room checks the login and password (one lock
//! for every way in, the same work for every refusal); this door only sets the pace of
//! refusals.

use carepost_identity::{Identity, IdentityError};
use futures::future::BoxFuture;

pub use carepost_identity::{Refused, RefusedBecause, SignedIn};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
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

/// Accounts of the identity room: argon2id passwords and keyed-hash app passwords.
pub struct StoreAuthenticator {
    identity: Identity,
}

impl StoreAuthenticator {
    /// `identity` holds the staff lockout policy (`[staff]`), so that SMTP and the staff
    /// pages share one lock. Its argon2id checks run under the process-wide hashing limit,
    /// so a flood of sign-ins on either side cannot starve the rest of the server.
    pub fn new(identity: Identity) -> Self {
        StoreAuthenticator { identity }
    }
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
            let outcome = self.identity.smtp_sign_in(login, password).await.map_err(AuthError::from);
            if !matches!(outcome, Ok(Ok(_))) {
                tokio::time::sleep_until(started + REFUSAL_FLOOR).await;
            }
            outcome
        })
    }
}
