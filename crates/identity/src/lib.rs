//! carepost identity: who someone is, and what they may do.
//!
//! One service ([`Identity`]) for every kind of account: the organization's staff (senders,
//! administrators, compliance officers, API-only applications) and the portal's recipients.
//! It owns passwords (argon2id through the vault's shared hashing limit), second factors (TOTP
//! and WebAuthn security keys), the per-account lockout, sessions, app passwords for SMTP
//! submission, API keys, and the permission checks (roles, `may_send_as`, key scopes). The
//! doors (SMTP AUTH, the REST API, the portal and the staff pages) translate their protocol
//! into calls here and the answers back; none of them holds an account rule.
//!
//! Staff and portal accounts are kept in different tables, but sessions, TOTP and lockout
//! are written once here, parameterized by [`Kind`]; `rows` is the only place that chooses
//! between a staff store function and its portal twin.

pub mod api_keys;
mod kind;
pub mod permission;
mod portal;
mod rows;
mod session;
mod signin;
mod smtp;
mod staff;
pub mod totp;
pub mod webauthn;

use std::sync::Arc;

use carepost_store::{Store, StoreError};
use carepost_vault::{KeyRing, PasswordPolicy, VaultError};

pub use carepost_store::accounts::{Account, DEFAULT_ROLE, Role};
pub use carepost_store::api_keys::ApiKey;
pub use carepost_store::portal::AccountRow as PortalAccount;
pub use carepost_store::signin::Lockout;
pub use carepost_store::staff::IpSeen;
pub use kind::{AccountRef, Factors, Kind, Stage};
pub use permission::{Permission, allows, may_send_as};
pub use portal::{CodeEntered, CodeIssued, CodeRules, PortalWho};
pub use session::{PortalSession, Resumed, Session, StaffResumed, StaffSession};
pub use signin::{PasswordChange, PasswordStep, SecondStep};
pub use smtp::{Refused, RefusedBecause, SignedIn};
pub use staff::{AccountSummary, NewStaffAccount};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A request the account rules refuse; the text is for the person who made it.
    #[error("{0}")]
    Refused(String),
    #[error("the system random number generator failed")]
    Random,
    #[error("stored identity data is unreadable: {0}")]
    Corrupt(String),
    #[error("security key: {0}")]
    SecurityKey(String),
}

/// The rules one kind of account is held to. Times in microseconds, carepost's stored unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindPolicy {
    pub lockout: Lockout,
    /// A session that sees no request for this long ends.
    pub session_idle: i64,
    /// A session ends this long after it began, however active.
    pub session_lifetime: i64,
    pub passwords: PasswordPolicy,
}

impl Default for KindPolicy {
    /// `[staff]`'s defaults.
    fn default() -> Self {
        KindPolicy {
            lockout: Lockout::default(),
            session_idle: 15 * 60 * 1_000_000,
            session_lifetime: 10 * 3600 * 1_000_000,
            passwords: PasswordPolicy { min_length: 12 },
        }
    }
}

/// The policy of each kind of account, from the configuration (`[staff]`, `[web]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policies {
    pub staff: KindPolicy,
    pub portal: KindPolicy,
}

/// The identity service. Cheap to clone; every node may run one (all state is in the store).
#[derive(Clone)]
pub struct Identity {
    store: Store,
    ring: Arc<KeyRing>,
    policies: Policies,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("policies", &self.policies).finish()
    }
}

impl Identity {
    pub fn new(store: Store, ring: Arc<KeyRing>, policies: Policies) -> Self {
        Identity { store, ring, policies }
    }

    pub fn policy(&self, kind: Kind) -> &KindPolicy {
        match kind {
            Kind::Staff => &self.policies.staff,
            Kind::Portal => &self.policies.portal,
        }
    }

    /// The rules new passwords of `kind` are held to.
    pub fn password_rules(&self, kind: Kind) -> PasswordPolicy {
        self.policy(kind).passwords
    }
}

/// Now, in microseconds.
pub(crate) fn now() -> i64 {
    carepost_model::Timestamp::now().as_micros()
}

/// 256 random bits.
pub(crate) fn random_bytes() -> Result<[u8; 32], IdentityError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdentityError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use carepost_model::{Address, TenantId};
    use carepost_store::Store;
    use carepost_vault::{KeyRing, MasterKey};

    use super::*;

    pub struct Fixture {
        pub _dir: tempfile::TempDir,
        pub identity: Identity,
    }

    /// A store in a temporary directory and an identity service over it, with a lockout of
    /// three failures.
    pub async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).await.unwrap();
        let ring = KeyRing::new(MasterKey::generate().unwrap());
        store.load_system_keys(&ring).await.unwrap();
        store.load_tenant_keys(&ring, &TenantId::default()).await.unwrap();
        let lockout = Lockout { failures: 3, window: 60_000_000, lock_for: 60_000_000 };
        let kind = KindPolicy { lockout, passwords: PasswordPolicy { min_length: 8 }, ..KindPolicy::default() };
        let identity = Identity::new(store.clone(), Arc::new(ring), Policies { staff: kind, portal: kind });
        Fixture { _dir: dir, identity }
    }

    pub const PASSWORD: &str = "correct horse battery";

    /// A sender account `jane@clinic.example` with [`PASSWORD`].
    pub async fn jane(f: &Fixture) -> Account {
        let jane = Address::parse("jane@clinic.example").unwrap();
        f.identity
            .create_staff_account(NewStaffAccount {
                tenant: TenantId::default(),
                login: "jane@clinic.example",
                role: Role::Sender,
                addresses: vec![jane],
                password: Some(PASSWORD.into()),
            })
            .await
            .unwrap()
    }
}
