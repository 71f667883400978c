//! Sessions, one notion for every kind of account: a random token the client keeps (a
//! cookie), only its SHA-256 in the store; an idle timeout and an absolute lifetime from the
//! kind's policy; and stages, so that a password alone reaches nothing but the second step.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carepost_model::TenantId;

use crate::{Account, AccountRef, Factors, Identity, IdentityError, Kind, PortalAccount, Stage, permission};

/// The length of a session token: 256 bits in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub kind: Kind,
    pub id_hash: Vec<u8>,
    pub account_id: String,
    pub stage: Stage,
    /// The WebAuthn ceremony the session is in the middle of (staff only).
    pub ceremony: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

impl Session {
    pub fn is_full(&self) -> bool {
        self.stage == Stage::Full
    }

    /// Whether this session may read and answer portal message `id`: a full sign-in, or a
    /// passphrase sign-in for that message.
    pub fn allows(&self, id: &str) -> bool {
        match &self.stage {
            Stage::Full => true,
            Stage::OneMessage(only) => only == id,
            _ => false,
        }
    }
}

/// The SHA-256 a token is stored as.
pub fn hash(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

/// What a presented token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed<S> {
    Live(S),
    /// The session was idle too long (`idle`) or reached its lifetime, and is now ended.
    Ended {
        account_id: String,
        idle: bool,
    },
    /// No session (unknown token, or one that no longer stands).
    Missing,
}

/// A staff member's session with the account and its second factors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSession {
    pub session: Session,
    pub account: Account,
    pub factors: Factors,
}

pub type StaffResumed = Resumed<StaffSession>;

impl StaffSession {
    pub fn role(&self) -> crate::Role {
        self.account.role
    }

    pub fn who(&self) -> AccountRef {
        AccountRef::staff(&self.account)
    }
}

/// A portal recipient's session with the account.
#[derive(Debug, Clone)]
pub struct PortalSession {
    pub session: Session,
    pub account: PortalAccount,
    pub tenant: TenantId,
}

impl PortalSession {
    pub fn is_full(&self) -> bool {
        self.session.is_full()
    }

    pub fn allows(&self, id: &str) -> bool {
        self.session.allows(id)
    }

    pub fn who(&self) -> AccountRef {
        AccountRef { kind: Kind::Portal, id: self.account.id.clone(), tenant: self.tenant.clone() }
    }
}

impl Identity {
    /// Starts a session of `account` in `stage`. Returns the token for the client.
    pub async fn start_session(
        &self,
        kind: Kind,
        account_id: &str,
        stage: Stage,
    ) -> Result<(String, Session), IdentityError> {
        let token = URL_SAFE_NO_PAD.encode(crate::random_bytes()?);
        let now = crate::now();
        let session = Session {
            kind,
            id_hash: hash(&token),
            account_id: account_id.to_owned(),
            stage,
            ceremony: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(self.policy(kind).session_lifetime),
        };
        self.insert_session(&session).await?;
        Ok((token, session))
    }

    /// The session `token` stands for, if it is still valid: an idle or over-age one is
    /// ended. Does not yet mark activity (see [`Identity::seen`]).
    async fn resume(&self, kind: Kind, token: &str) -> Result<Resumed<Session>, IdentityError> {
        if token.len() != TOKEN_LEN {
            return Ok(Resumed::Missing);
        }
        let Some(session) = self.load_session(kind, hash(token)).await? else { return Ok(Resumed::Missing) };
        let now = crate::now();
        let idle = now - session.last_seen_at > self.policy(kind).session_idle;
        if now >= session.expires_at || idle {
            self.end_session(&session).await?;
            return Ok(Resumed::Ended { account_id: session.account_id, idle });
        }
        Ok(Resumed::Live(session))
    }

    async fn seen(&self, session: &Session) -> Result<(), IdentityError> {
        self.touch_session(session.kind, &session.id_hash, crate::now(), None).await
    }

    /// A staff session, with its account. One whose account was disabled or lost web
    /// sign-in since is ended.
    pub async fn staff_session(&self, token: &str) -> Result<StaffResumed, IdentityError> {
        let session = match self.resume(Kind::Staff, token).await? {
            Resumed::Live(s) => s,
            Resumed::Ended { account_id, idle } => return Ok(Resumed::Ended { account_id, idle }),
            Resumed::Missing => return Ok(Resumed::Missing),
        };
        let account = self.store.account_by_id(&self.ring, &session.account_id).await?;
        let factors = self.factors(Kind::Staff, &session.account_id).await?;
        let (Some(account), Some(factors)) = (account, factors) else { return Ok(Resumed::Missing) };
        if account.disabled || !permission::allows(account.role, permission::Permission::SignInToWeb) {
            self.end_session(&session).await?;
            return Ok(Resumed::Missing);
        }
        self.seen(&session).await?;
        Ok(Resumed::Live(StaffSession { session, account, factors }))
    }

    /// A portal session, with its account.
    pub async fn portal_session(&self, token: &str) -> Result<Option<PortalSession>, IdentityError> {
        let Resumed::Live(session) = self.resume(Kind::Portal, token).await? else { return Ok(None) };
        let Some(account) = self.store.portal_account_by_id(&session.account_id).await? else { return Ok(None) };
        let tenant = TenantId::new(&account.tenant).map_err(|e| IdentityError::Corrupt(e.to_string()))?;
        self.seen(&session).await?;
        Ok(Some(PortalSession { session, account, tenant }))
    }

    /// Moves `session` to `stage` under a new token and ends the old one. Used when a
    /// second factor completes: a token seen while only the password was proven (fixed by
    /// an attacker, or read off a shared screen) must not become a full session. The new
    /// session keeps the old one's start and absolute lifetime.
    pub async fn renew(&self, session: &Session, stage: Stage) -> Result<String, IdentityError> {
        let token = URL_SAFE_NO_PAD.encode(crate::random_bytes()?);
        let renewed =
            Session { id_hash: hash(&token), stage, ceremony: None, last_seen_at: crate::now(), ..session.clone() };
        self.insert_session(&renewed).await?;
        self.end_session(session).await?;
        Ok(token)
    }

    /// Ends one session (signing out).
    pub async fn end_session(&self, session: &Session) -> Result<(), IdentityError> {
        self.end_sessions(session.kind, Some(session.id_hash.clone()), None).await.map(|_| ())
    }

    /// Ends every session of an account.
    pub async fn end_sessions_of(&self, who: &AccountRef) -> Result<u64, IdentityError> {
        self.end_sessions(who.kind, None, Some(who.id.clone())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fixture, jane};

    #[tokio::test]
    async fn sessions_start_resume_renew_and_end() {
        let f = fixture().await;
        let jane = jane(&f).await;
        let (token, session) = f.identity.start_session(Kind::Staff, &jane.id, Stage::SecondFactor).await.unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        let Resumed::Live(found) = f.identity.staff_session(&token).await.unwrap() else { panic!("no session") };
        assert_eq!(found.session.stage, Stage::SecondFactor);
        assert_eq!(found.account.id, jane.id);
        let renewed = f.identity.renew(&session, Stage::Full).await.unwrap();
        assert_ne!(renewed, token);
        assert_eq!(f.identity.staff_session(&token).await.unwrap(), Resumed::Missing, "the old token is ended");
        let Resumed::Live(full) = f.identity.staff_session(&renewed).await.unwrap() else { panic!("renewed") };
        assert_eq!((full.session.stage.clone(), full.session.created_at), (Stage::Full, session.created_at));
        assert_eq!(f.identity.staff_session("short").await.unwrap(), Resumed::Missing);
        f.identity.end_session(&full.session).await.unwrap();
        assert_eq!(f.identity.staff_session(&renewed).await.unwrap(), Resumed::Missing);
    }

    #[tokio::test]
    async fn a_disabled_account_loses_its_sessions() {
        let f = fixture().await;
        let jane = jane(&f).await;
        let (token, _) = f.identity.start_session(Kind::Staff, &jane.id, Stage::Full).await.unwrap();
        f.identity.set_disabled(&jane, true).await.unwrap();
        assert_eq!(f.identity.staff_session(&token).await.unwrap(), Resumed::Missing);
        f.identity.set_disabled(&jane, false).await.unwrap();
        assert_eq!(f.identity.staff_session(&token).await.unwrap(), Resumed::Missing, "ended, not suspended");
    }
}
