//! Password hashing for sign-in: argon2id in the PHC string format.
//!
//! Parameters are argon2's defaults (19 MiB of memory, 2 passes, 1 lane), the OWASP
//! recommendation; a hash names its own parameters, so raising them later only affects new
//! hashes while old ones keep verifying. Hashing costs tens of milliseconds of CPU and 19 MiB
//! of memory by design: callers on an async runtime use the `*_limited` functions, which run
//! it on a blocking thread and at most one per CPU core at once over the whole process (SMTP
//! AUTH, staff and portal sign-in, portal passphrases), so that a flood of sign-in attempts
//! queues instead of taking every core and hundreds of megabytes.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;
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

/// Bounds how many password hashes run at once.
#[derive(Debug)]
pub struct HashingLimit {
    slots: std::sync::Arc<Semaphore>,
}

impl HashingLimit {
    pub fn new(at_once: usize) -> Self {
        HashingLimit { slots: std::sync::Arc::new(Semaphore::new(at_once.max(1))) }
    }

    /// The process-wide limit: one hash per CPU core.
    pub fn global() -> &'static HashingLimit {
        static GLOBAL: OnceLock<HashingLimit> = OnceLock::new();
        GLOBAL.get_or_init(|| HashingLimit::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)))
    }

    /// Runs `work` on a blocking thread once a slot is free.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, VaultError> {
        // The slot goes with the work, not with this future: a caller that gives up (a client
        // that drops its request) must not free the slot while the hash still runs.
        let slot = self.slots.clone().acquire_owned().await.map_err(|e| VaultError::Password(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| VaultError::Password(e.to_string()))
    }
}

/// [`hash_password`] under the process-wide [`HashingLimit`].
pub async fn hash_password_limited(password: String) -> Result<String, VaultError> {
    let password = Zeroizing::new(password);
    HashingLimit::global().run(move || hash_password(&password)).await?
}

/// [`verify_password`] under the process-wide [`HashingLimit`].
pub async fn verify_password_limited(hash: String, password: String) -> Result<bool, VaultError> {
    let password = Zeroizing::new(password);
    HashingLimit::global().run(move || verify_password(&hash, &password)).await
}

/// [`verify_nothing`] under the process-wide [`HashingLimit`].
pub async fn verify_nothing_limited(password: String) -> Result<(), VaultError> {
    let password = Zeroizing::new(password);
    HashingLimit::global().run(move || verify_nothing(&password)).await
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_the_limit() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let limit = Arc::new(HashingLimit::new(2));
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (limit, running, peak) = (limit.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                limit
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        let hashed = hash_password("correct horse").unwrap();
                        running.fetch_sub(1, Ordering::SeqCst);
                        hashed
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert!(verify_password(&t.await.unwrap(), "correct horse"));
        }
        assert!(peak.load(Ordering::SeqCst) <= 2, "peak {}", peak.load(Ordering::SeqCst));
        assert!(verify_password_limited(hash_password_limited("pw".into()).await.unwrap(), "pw".into()).await.unwrap());
        verify_nothing_limited("x".into()).await.unwrap();
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_free_the_slot_of_running_work() {
        use std::sync::mpsc;
        let limit = std::sync::Arc::new(HashingLimit::new(1));
        let (started, wait_started) = mpsc::channel();
        let (release, wait_release) = mpsc::channel::<()>();
        let first = {
            let limit = limit.clone();
            tokio::spawn(async move {
                limit
                    .run(move || {
                        started.send(()).unwrap();
                        wait_release.recv().unwrap();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || wait_started.recv().unwrap()).await.unwrap();
        // The caller gives up while its work still runs: the slot must stay taken.
        first.abort();
        let _ = first.await;
        let second = tokio::time::timeout(std::time::Duration::from_millis(300), limit.run(|| ())).await;
        assert!(second.is_err(), "a second hash ran while the first still held the only slot");
        release.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(20), limit.run(|| ()))
            .await
            .expect("the slot comes back")
            .unwrap();
    }
}
