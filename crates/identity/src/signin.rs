//! Signing in, for every kind of account: the password, then the second factor, or (staff)
//! enrollment when the organization requires one and the account has none. Failures count
//! toward the account's lockout; the failure that locks the account ends its sessions; a
//! completed second factor moves the session to a new token; a new password ends every
//! other session.

use std::net::IpAddr;

use carepost_vault as vault;
use carepost_vault::PasswordRejected;

use crate::{Account, AccountRef, Identity, IdentityError, Kind, PortalAccount, Session, Stage, permission, totp};

/// What the password step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordStep<A> {
    /// No usable account: the password was checked against a dummy hash, taking the same
    /// time as a real check.
    Unknown,
    /// The account is locked; `password_right` is for the audit log only. Not counted again:
    /// a right password must not extend the lock.
    Locked { account: A, password_right: bool },
    /// A wrong password, counted; `locked_now` when this failure locked the account.
    Wrong { account: A, locked_now: bool },
    /// A session began, in the returned stage. `notice` when the sign-in is complete and
    /// came from a client address the account never used before (see `Identity::complete`).
    Passed { account: A, token: String, session: Session, notice: bool },
}

/// What a second step (an authenticator code, a security key) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondStep {
    /// The session moved to a complete sign-in under `token`.
    Passed { token: String, notice: bool },
    /// Not accepted, counted; `locked_now` when this failure locked the account (and ended
    /// its sessions).
    Wrong { locked_now: bool },
    /// The account is locked; the session is ended.
    Locked,
    /// The account has no such factor.
    NoFactor,
}

/// What a password change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// The current password was wrong (counted as a failed sign-in).
    WrongCurrent {
        locked_now: bool,
    },
    Rejected(PasswordRejected),
    /// The new password and its repetition differ.
    Mismatch,
    /// Changed; every session of the account ended, and this client goes on in a new one.
    Changed {
        token: String,
    },
}

/// What the first check of a password found, before any session.
enum Checked {
    Unknown,
    Locked { right: bool },
    Wrong { locked_now: bool },
    Right,
}

impl Identity {
    /// One argon2id verification: against `hash`, or against a dummy hash when there is none
    /// (which never matches), so that both take the same time.
    pub(crate) async fn slow_check(&self, hash: Option<String>, password: &str) -> Result<bool, IdentityError> {
        let password = password.to_owned();
        Ok(match hash {
            Some(hash) => vault::verify_password_limited(hash, password).await?,
            None => vault::verify_nothing_limited(password).await.map(|()| false)?,
        })
    }

    /// The password step shared by every kind. The password is verified before the lock is
    /// looked at, so that a locked account takes as long as an unknown one.
    async fn check_password(
        &self,
        found: Option<(&AccountRef, Option<String>)>,
        password: &str,
    ) -> Result<Checked, IdentityError> {
        let Some((who, Some(hash))) = found else {
            self.slow_check(None, password).await?;
            return Ok(Checked::Unknown);
        };
        let right = self.slow_check(Some(hash), password).await?;
        let factors = self.factors(who.kind, &who.id).await?.unwrap_or_default();
        if factors.locked_at(crate::now()) {
            return Ok(Checked::Locked { right });
        }
        if !right {
            return Ok(Checked::Wrong { locked_now: self.count_failure(who).await? });
        }
        Ok(Checked::Right)
    }

    /// Counts a failed sign-in step of `who`; true when it locked the account. The lock ends
    /// the account's sessions: someone is guessing, and a session they may already hold must
    /// not outlive the lock.
    pub async fn count_failure(&self, who: &AccountRef) -> Result<bool, IdentityError> {
        let count = self.count_failed(who.kind, &who.id, crate::now()).await?;
        let locked = count.locked_until.is_some();
        if locked {
            self.end_sessions_of(who).await?;
        }
        Ok(locked)
    }

    /// The stage a right password leads to.
    async fn after_password(&self, who: &AccountRef) -> Result<Stage, IdentityError> {
        let factors = self.factors(who.kind, &who.id).await?.unwrap_or_default();
        Ok(if factors.has_second_factor() {
            Stage::SecondFactor
        } else if who.kind == Kind::Staff && self.mfa_required(&who.tenant).await? {
            Stage::Enroll
        } else {
            Stage::Full
        })
    }

    /// The password step of a staff member signing in to the web pages. Unknown, disabled
    /// and API-only accounts, and accounts without a password, read as [`PasswordStep::Unknown`].
    pub async fn staff_password(
        &self,
        login: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<PasswordStep<Account>, IdentityError> {
        let creds = if login.len() <= 254 { self.store.account_credentials(&self.ring, login).await? } else { None };
        let creds = creds
            .filter(|c| !c.account.disabled && permission::allows(c.account.role, permission::Permission::SignInToWeb));
        let who = creds.as_ref().map(|c| AccountRef::staff(&c.account));
        let found = who.as_ref().zip(creds.as_ref().map(|c| c.password_hash.clone()));
        let checked = self.check_password(found, password).await?;
        let (Some(creds), Some(who)) = (creds, who) else { return Ok(PasswordStep::Unknown) };
        self.password_step(checked, creds.account, &who, ip).await
    }

    /// The password step of a portal recipient, whose account the caller found by address.
    pub async fn portal_password(
        &self,
        account: Option<PortalAccount>,
        password: &str,
        ip: IpAddr,
    ) -> Result<PasswordStep<PortalAccount>, IdentityError> {
        let who = account.as_ref().map(AccountRef::portal).transpose()?;
        let found = who.as_ref().zip(account.as_ref().map(|a| a.password_hash.clone()));
        let checked = self.check_password(found, password).await?;
        let (Some(account), Some(who)) = (account, who) else { return Ok(PasswordStep::Unknown) };
        self.password_step(checked, account, &who, ip).await
    }

    async fn password_step<A>(
        &self,
        checked: Checked,
        account: A,
        who: &AccountRef,
        ip: IpAddr,
    ) -> Result<PasswordStep<A>, IdentityError> {
        match checked {
            Checked::Unknown => Ok(PasswordStep::Unknown),
            Checked::Locked { right } => Ok(PasswordStep::Locked { account, password_right: right }),
            Checked::Wrong { locked_now } => Ok(PasswordStep::Wrong { account, locked_now }),
            Checked::Right => {
                let stage = self.after_password(who).await?;
                let (token, session) = self.start_session(who.kind, &who.id, stage).await?;
                let notice = if session.is_full() { self.complete(who, ip).await? } else { false };
                Ok(PasswordStep::Passed { account, token, session, notice })
            }
        }
    }

    /// The end of every complete sign-in: failures forgotten, and (staff) the client address
    /// noted. True when the owner should be told: a new address of an account that had
    /// signed in before (an account's first sign-in is not news to its owner).
    pub async fn complete(&self, who: &AccountRef, ip: IpAddr) -> Result<bool, IdentityError> {
        self.forget_failures(who.kind, &who.id).await?;
        if who.kind != Kind::Staff {
            return Ok(false);
        }
        let ip_hash = self.ring.blind_index(&who.tenant, "staff-ip", ip.to_string().as_bytes())?;
        let seen = self.store.note_staff_ip(&who.id, ip_hash, crate::now()).await?;
        Ok(seen.new_address && seen.seen_before)
    }

    /// Refuses a second step on a locked account, ending the session.
    async fn refused_locked(&self, session: &Session) -> Result<bool, IdentityError> {
        let factors = self.factors(session.kind, &session.account_id).await?.unwrap_or_default();
        if factors.locked_at(crate::now()) {
            self.end_session(session).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The end of a second step, either way: a pass completes the sign-in under a new token;
    /// a failure counts toward the lock.
    pub(crate) async fn second_step(
        &self,
        who: &AccountRef,
        session: &Session,
        passed: bool,
        ip: IpAddr,
    ) -> Result<SecondStep, IdentityError> {
        if !passed {
            return Ok(SecondStep::Wrong { locked_now: self.count_failure(who).await? });
        }
        let token = self.renew(session, Stage::Full).await?;
        let notice = self.complete(who, ip).await?;
        Ok(SecondStep::Passed { token, notice })
    }

    /// The authenticator-code step of a session in [`Stage::SecondFactor`].
    pub async fn totp_step(
        &self,
        who: &AccountRef,
        session: &Session,
        code: &str,
        ip: IpAddr,
    ) -> Result<SecondStep, IdentityError> {
        if self.refused_locked(session).await? {
            return Ok(SecondStep::Locked);
        }
        let factors = self.factors(who.kind, &who.id).await?.unwrap_or_default();
        let Some(sealed) = factors.totp else { return Ok(SecondStep::NoFactor) };
        let passed = self.check_totp(who, &sealed, code).await?;
        self.second_step(who, session, passed, ip).await
    }

    /// The security-key step's lock check (the key itself is checked in `webauthn`).
    pub(crate) async fn key_step_locked(&self, session: &Session) -> Result<bool, IdentityError> {
        self.refused_locked(session).await
    }

    /// Checks a code against a sealed TOTP secret of the account; each time step counts once.
    pub(crate) async fn check_totp(&self, who: &AccountRef, sealed: &[u8], code: &str) -> Result<bool, IdentityError> {
        let secret = self.open_totp(who, sealed).await?;
        let Some(step) = totp::matching_step_now(&secret, code) else { return Ok(false) };
        let step = i64::try_from(step).map_err(|e| IdentityError::Corrupt(e.to_string()))?;
        self.use_totp_step(who.kind, &who.id, step).await
    }

    /// A sealed TOTP secret of the account, opened (to show it while it is being set up).
    pub async fn open_totp(&self, who: &AccountRef, sealed: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let key = self.account_key(who.kind, &who.tenant, &who.id).await?;
        Ok(key.open_field("totp", sealed)?)
    }

    /// Begins setting up an authenticator app: a new secret, sealed and kept as pending
    /// until a code confirms it. Returns the raw secret, to show; `None`, and nothing
    /// changed, when the account has an app on already (a signed-in browser must not swap
    /// the account's second factor for one of its choosing).
    pub async fn begin_totp(&self, who: &AccountRef) -> Result<Option<Vec<u8>>, IdentityError> {
        if self.factors(who.kind, &who.id).await?.unwrap_or_default().totp.is_some() {
            return Ok(None);
        }
        let secret = totp::new_secret().ok_or(IdentityError::Random)?;
        let key = self.account_key(who.kind, &who.tenant, &who.id).await?;
        let sealed = key.seal_field("totp", &secret)?;
        self.store_totp(who.kind, &who.id, Some(sealed), false).await?;
        Ok(Some(secret))
    }

    /// Turns the pending authenticator app on once a code from it matches. False (and
    /// nothing changed) when there is no pending secret or the code does not match.
    pub async fn confirm_totp(&self, who: &AccountRef, code: &str) -> Result<bool, IdentityError> {
        let factors = self.factors(who.kind, &who.id).await?.unwrap_or_default();
        let Some(pending) = factors.totp_pending else { return Ok(false) };
        if !self.check_totp(who, &pending, code).await? {
            return Ok(false);
        }
        self.store_totp(who.kind, &who.id, None, true).await?;
        Ok(true)
    }

    /// After a factor is enrolled: a session in [`Stage::Enroll`] becomes a complete sign-in
    /// under a new token. `None` for a session that was complete already.
    pub async fn enrolled(
        &self,
        who: &AccountRef,
        session: &Session,
        ip: IpAddr,
    ) -> Result<Option<(String, bool)>, IdentityError> {
        if session.stage != Stage::Enroll {
            return Ok(None);
        }
        let token = self.renew(session, Stage::Full).await?;
        let notice = self.complete(who, ip).await?;
        Ok(Some((token, notice)))
    }

    /// Replaces the password of `who`. The one place of the rule that a new password ends
    /// every session of the account: whoever else holds one (a stolen one, say) is signed
    /// out; a client that goes on starts a new session.
    pub(crate) async fn replace_password(&self, who: &AccountRef, hash: String) -> Result<(), IdentityError> {
        match who.kind {
            Kind::Staff => self.store.set_password_hash(&who.id, Some(hash)).await?,
            Kind::Portal => self.set_portal_password_hash(&who.id, hash).await?,
        }
        self.end_sessions_of(who).await?;
        Ok(())
    }

    /// A staff member changes their own password: the current one is verified (a wrong one
    /// counts as a failed sign-in), the new one held to the password rules. On success this
    /// client goes on in a new full session.
    pub async fn change_password(
        &self,
        account: &Account,
        current: &str,
        new: &str,
        again: &str,
    ) -> Result<PasswordChange, IdentityError> {
        let who = AccountRef::staff(account);
        let hash = self.store.account_credentials(&self.ring, &account.login).await?.and_then(|c| c.password_hash);
        if !self.slow_check(hash, current).await? {
            return Ok(PasswordChange::WrongCurrent { locked_now: self.count_failure(&who).await? });
        }
        if let Err(e) = self.password_rules(Kind::Staff).check(new, &account.login) {
            return Ok(PasswordChange::Rejected(e));
        }
        if new != again {
            return Ok(PasswordChange::Mismatch);
        }
        self.replace_password(&who, vault::hash_password_limited(new.to_owned()).await?).await?;
        let (token, _) = self.start_session(Kind::Staff, &account.id, Stage::Full).await?;
        Ok(PasswordChange::Changed { token })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::Resumed;
    use crate::test_support::{PASSWORD, fixture, jane};

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn failures_lock_the_account_and_end_its_sessions() {
        let f = fixture().await;
        let jane = jane(&f).await;
        let (held, _) = f.identity.start_session(Kind::Staff, &jane.id, Stage::Full).await.unwrap();
        for n in 1..=3 {
            let step = f.identity.staff_password("jane@clinic.example", "wrong password", IP).await.unwrap();
            let PasswordStep::Wrong { locked_now, .. } = step else { panic!("{step:?}") };
            assert_eq!(locked_now, n == 3, "the third failure locks (policy: 3)");
        }
        assert_eq!(f.identity.staff_session(&held).await.unwrap(), Resumed::Missing, "the lock ends sessions");
        let step = f.identity.staff_password("jane@clinic.example", PASSWORD, IP).await.unwrap();
        assert!(matches!(step, PasswordStep::Locked { password_right: true, .. }), "{step:?}");
        f.identity.unlock(&jane).await.unwrap();
        let step = f.identity.staff_password("jane@clinic.example", PASSWORD, IP).await.unwrap();
        let PasswordStep::Passed { session, .. } = step else { panic!("{step:?}") };
        assert_eq!(session.stage, Stage::Full);
        let unknown = f.identity.staff_password("nobody@clinic.example", PASSWORD, IP).await.unwrap();
        assert_eq!(unknown, PasswordStep::Unknown);
    }

    #[tokio::test]
    async fn a_complete_sign_in_forgets_failures() {
        let f = fixture().await;
        let jane = jane(&f).await;
        for _ in 0..2 {
            f.identity.staff_password("jane@clinic.example", "wrong password", IP).await.unwrap();
        }
        assert_eq!(f.identity.factors(Kind::Staff, &jane.id).await.unwrap().unwrap().failures, 2);
        f.identity.staff_password("jane@clinic.example", PASSWORD, IP).await.unwrap();
        assert_eq!(f.identity.factors(Kind::Staff, &jane.id).await.unwrap().unwrap().failures, 0);
    }

    #[tokio::test]
    async fn the_second_factor_renews_the_session() {
        let f = fixture().await;
        let jane = jane(&f).await;
        let who = AccountRef::staff(&jane);
        let secret = f.identity.begin_totp(&who).await.unwrap().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(f.identity.confirm_totp(&who, &totp::code_at(&secret, now).unwrap()).await.unwrap());
        assert_eq!(f.identity.begin_totp(&who).await.unwrap(), None, "an app that is on is not replaced");
        let step = f.identity.staff_password("jane@clinic.example", PASSWORD, IP).await.unwrap();
        let PasswordStep::Passed { token, session, .. } = step else { panic!("{step:?}") };
        assert_eq!(session.stage, Stage::SecondFactor, "a password alone is not a sign-in");
        let wrong = f.identity.totp_step(&who, &session, "000000x", IP).await.unwrap();
        assert_eq!(wrong, SecondStep::Wrong { locked_now: false });
        let code = totp::code_at(&secret, now + 30).unwrap();
        let SecondStep::Passed { token: full, .. } = f.identity.totp_step(&who, &session, &code, IP).await.unwrap()
        else {
            panic!("the code was refused")
        };
        assert_ne!(full, token);
        assert_eq!(f.identity.staff_session(&token).await.unwrap(), Resumed::Missing, "the password-only token ends");
        let Resumed::Live(s) = f.identity.staff_session(&full).await.unwrap() else { panic!("no full session") };
        assert_eq!(s.session.stage, Stage::Full);
        assert_eq!(s.factors.failures, 0, "the complete sign-in forgot the wrong code");
    }

    #[tokio::test]
    async fn a_password_change_ends_the_other_sessions() {
        let f = fixture().await;
        let jane = jane(&f).await;
        let (other, _) = f.identity.start_session(Kind::Staff, &jane.id, Stage::Full).await.unwrap();
        let (mine, _) = f.identity.start_session(Kind::Staff, &jane.id, Stage::Full).await.unwrap();
        let new = "a much better passphrase";
        assert_eq!(
            f.identity.change_password(&jane, PASSWORD, new, "something else").await.unwrap(),
            PasswordChange::Mismatch
        );
        assert!(matches!(
            f.identity.change_password(&jane, PASSWORD, "short", "short").await.unwrap(),
            PasswordChange::Rejected(_)
        ));
        assert!(matches!(f.identity.staff_session(&other).await.unwrap(), Resumed::Live(_)), "refusals change nothing");
        let PasswordChange::Changed { token } = f.identity.change_password(&jane, PASSWORD, new, new).await.unwrap()
        else {
            panic!("not changed")
        };
        assert_eq!(f.identity.staff_session(&other).await.unwrap(), Resumed::Missing);
        assert_eq!(f.identity.staff_session(&mine).await.unwrap(), Resumed::Missing);
        assert!(matches!(f.identity.staff_session(&token).await.unwrap(), Resumed::Live(_)), "this client goes on");
        let wrong = f.identity.change_password(&jane, PASSWORD, new, new).await.unwrap();
        assert_eq!(wrong, PasswordChange::WrongCurrent { locked_now: false });
        // The administrator's way (the CLI) follows the same rule.
        let (held, _) = f.identity.start_session(Kind::Staff, &jane.id, Stage::Full).await.unwrap();
        f.identity.set_password(&jane, "yet another passphrase").await.unwrap();
        assert_eq!(f.identity.staff_session(&held).await.unwrap(), Resumed::Missing);
    }
}
