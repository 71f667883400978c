//! The one place that knows which store rows each kind of account lives in. Sessions,
//! failures and TOTP are one shape in the store for both kinds ([`carepost_store::signin`]);
//! what still differs (second factors and lock as read, the account's data key) is chosen here.

use carepost_model::TenantId;
use carepost_store::signin::{AccountKind, FailureCount, SessionRow};
use carepost_vault::DataKey;

use crate::{Factors, Identity, IdentityError, Kind, Session, Stage};

impl Kind {
    fn stored(self) -> AccountKind {
        match self {
            Kind::Staff => AccountKind::Staff,
            Kind::Portal => AccountKind::Portal,
        }
    }
}

impl Identity {
    pub(crate) async fn insert_session(&self, s: &Session) -> Result<(), IdentityError> {
        let row = SessionRow {
            account_id: s.account_id.clone(),
            stage: s.stage.stored(s.kind),
            ceremony: s.ceremony.clone(),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
        };
        Ok(self.store.insert_session(s.kind.stored(), s.id_hash.clone(), row).await?)
    }

    /// The stored session; `None` also for a stage the kind does not know.
    pub(crate) async fn load_session(&self, kind: Kind, id_hash: Vec<u8>) -> Result<Option<Session>, IdentityError> {
        let Some(row) = self.store.session(kind.stored(), &id_hash).await? else { return Ok(None) };
        let Some(stage) = Stage::parse(kind, &row.stage) else { return Ok(None) };
        Ok(Some(Session {
            kind,
            id_hash,
            account_id: row.account_id,
            stage,
            ceremony: row.ceremony,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
        }))
    }

    pub(crate) async fn touch_session(
        &self,
        kind: Kind,
        id_hash: &[u8],
        now: i64,
        stage: Option<&Stage>,
    ) -> Result<(), IdentityError> {
        let stage = stage.map(|s| s.stored(kind));
        Ok(self.store.touch_session(kind.stored(), id_hash, now, stage.as_deref()).await?)
    }

    /// Ends one session (`id_hash`), or every session of `account_id`.
    pub(crate) async fn end_sessions(
        &self,
        kind: Kind,
        id_hash: Option<Vec<u8>>,
        account_id: Option<String>,
    ) -> Result<u64, IdentityError> {
        Ok(self.store.end_sessions(kind.stored(), id_hash, account_id).await?)
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
        Ok(self.store.signin_failed(kind.stored(), account_id, now, policy).await?)
    }

    pub(crate) async fn forget_failures(&self, kind: Kind, account_id: &str) -> Result<(), IdentityError> {
        Ok(self.store.signin_succeeded(kind.stored(), account_id).await?)
    }

    /// Accepts a TOTP time step once: false when it (or a later one) was used already.
    pub(crate) async fn use_totp_step(&self, kind: Kind, account_id: &str, step: i64) -> Result<bool, IdentityError> {
        Ok(self.store.use_totp_step(kind.stored(), account_id, step).await?)
    }

    /// Stores a TOTP secret being set up, or (`confirm`) makes the pending one active.
    pub(crate) async fn store_totp(
        &self,
        kind: Kind,
        account_id: &str,
        secret: Option<Vec<u8>>,
        confirm: bool,
    ) -> Result<(), IdentityError> {
        Ok(self.store.set_totp(kind.stored(), account_id, secret, confirm, crate::now()).await?)
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
