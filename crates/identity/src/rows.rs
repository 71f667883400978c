//! The one place that knows which store table each kind of account lives in. Each function
//! here pairs a staff function of the store with its portal twin; once the store keeps both
//! kinds in one shape, each becomes a single call.

use carepost_model::TenantId;
use carepost_store::portal::{FailureCount, SessionRow};
use carepost_store::staff::StaffSessionRow;
use carepost_vault::DataKey;

use crate::{Factors, Identity, IdentityError, Kind, Session, Stage};

impl Identity {
    pub(crate) async fn insert_session(&self, s: &Session) -> Result<(), IdentityError> {
        let stage = s.stage.stored(s.kind);
        match s.kind {
            Kind::Staff => {
                let row = StaffSessionRow {
                    account_id: s.account_id.clone(),
                    stage,
                    ceremony: s.ceremony.clone(),
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    expires_at: s.expires_at,
                };
                self.store.insert_staff_session(s.id_hash.clone(), row).await?
            }
            Kind::Portal => {
                let row = SessionRow {
                    account_id: s.account_id.clone(),
                    stage,
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    expires_at: s.expires_at,
                };
                self.store.insert_portal_session(s.id_hash.clone(), row).await?
            }
        }
        Ok(())
    }

    /// The stored session; `None` also for a stage the kind does not know.
    pub(crate) async fn load_session(&self, kind: Kind, id_hash: Vec<u8>) -> Result<Option<Session>, IdentityError> {
        let row = match kind {
            Kind::Staff => self
                .store
                .staff_session(&id_hash)
                .await?
                .map(|r| (r.account_id, r.stage, r.ceremony, r.created_at, r.last_seen_at, r.expires_at)),
            Kind::Portal => self
                .store
                .portal_session(&id_hash)
                .await?
                .map(|r| (r.account_id, r.stage, None, r.created_at, r.last_seen_at, r.expires_at)),
        };
        let Some((account_id, stage, ceremony, created_at, last_seen_at, expires_at)) = row else { return Ok(None) };
        let Some(stage) = Stage::parse(kind, &stage) else { return Ok(None) };
        Ok(Some(Session { kind, id_hash, account_id, stage, ceremony, created_at, last_seen_at, expires_at }))
    }

    pub(crate) async fn touch_session(
        &self,
        kind: Kind,
        id_hash: &[u8],
        now: i64,
        stage: Option<&Stage>,
    ) -> Result<(), IdentityError> {
        let stage = stage.map(|s| s.stored(kind));
        match kind {
            Kind::Staff => self.store.touch_staff_session(id_hash, now, stage.as_deref()).await?,
            Kind::Portal => self.store.touch_portal_session(id_hash, now, stage.as_deref()).await?,
        }
        Ok(())
    }

    /// Ends one session (`id_hash`), or every session of `account_id`.
    pub(crate) async fn end_sessions(
        &self,
        kind: Kind,
        id_hash: Option<Vec<u8>>,
        account_id: Option<String>,
    ) -> Result<u64, IdentityError> {
        Ok(match kind {
            Kind::Staff => self.store.end_staff_sessions(id_hash, account_id).await?,
            Kind::Portal => self.store.end_portal_sessions(id_hash, account_id).await?,
        })
    }

    /// Keeps (or clears) the WebAuthn ceremony of a session; only staff sessions have one.
    pub(crate) async fn set_ceremony(&self, s: &Session, ceremony: Option<String>) -> Result<(), IdentityError> {
        match s.kind {
            Kind::Staff => Ok(self.store.set_staff_ceremony(&s.id_hash, ceremony).await?),
            Kind::Portal => Err(IdentityError::Refused("portal accounts have no security keys".into())),
        }
    }

    pub(crate) async fn count_failed(
        &self,
        kind: Kind,
        account_id: &str,
        now: i64,
    ) -> Result<FailureCount, IdentityError> {
        let policy = self.policy(kind).lockout;
        Ok(match kind {
            Kind::Staff => self.store.staff_signin_failed(account_id, now, policy).await?,
            Kind::Portal => {
                self.store
                    .portal_signin_failed(account_id, now, policy.window, policy.failures, policy.lock_for)
                    .await?
            }
        })
    }

    pub(crate) async fn forget_failures(&self, kind: Kind, account_id: &str) -> Result<(), IdentityError> {
        match kind {
            Kind::Staff => self.store.staff_signin_succeeded(account_id).await?,
            Kind::Portal => self.store.portal_signin_succeeded(account_id).await?,
        }
        Ok(())
    }

    /// Accepts a TOTP time step once: false when it (or a later one) was used already.
    pub(crate) async fn use_totp_step(&self, kind: Kind, account_id: &str, step: i64) -> Result<bool, IdentityError> {
        Ok(match kind {
            Kind::Staff => self.store.use_staff_totp_step(account_id, step).await?,
            Kind::Portal => self.store.use_portal_totp_step(account_id, step).await?,
        })
    }

    /// Stores a TOTP secret being set up, or (`confirm`) makes the pending one active.
    pub(crate) async fn store_totp(
        &self,
        kind: Kind,
        account_id: &str,
        secret: Option<Vec<u8>>,
        confirm: bool,
    ) -> Result<(), IdentityError> {
        let now = crate::now();
        match kind {
            Kind::Staff => self.store.set_staff_totp(account_id, secret, confirm, now).await?,
            Kind::Portal => self.store.set_portal_totp(account_id, secret, confirm, now).await?,
        }
        Ok(())
    }

    /// The account's second factors and lock; `None` when there is no such account.
    pub async fn factors(&self, kind: Kind, account_id: &str) -> Result<Option<Factors>, IdentityError> {
        Ok(match kind {
            Kind::Staff => self.store.staff_auth(account_id).await?.map(|a| Factors {
                totp: a.totp,
                totp_pending: a.totp_pending,
                security_keys: a.security_keys,
                locked_until: a.locked_until,
                failures: a.failures,
            }),
            Kind::Portal => self.store.portal_account_by_id(account_id).await?.map(|a| Factors {
                totp: a.totp,
                totp_pending: a.totp_pending,
                security_keys: 0,
                locked_until: a.locked_until,
                failures: a.failures,
            }),
        })
    }

    /// The account's own data key: its sealed fields (address, TOTP secret, security keys).
    pub(crate) async fn account_key(
        &self,
        kind: Kind,
        tenant: &TenantId,
        account_id: &str,
    ) -> Result<DataKey, IdentityError> {
        Ok(self.store.data_key(&self.ring, tenant, &kind.key_object(account_id)).await?)
    }
}
