//! Portal recipients' accounts: made when an address is first proven (a one-time code or the
//! sender's passphrase), found by the address's blind index, sealed under their own data
//! key.

use aws_lc_rs::constant_time;
use carepost_model::{Address, Id, TenantId};
use carepost_store::portal::{NewPortalCode, purpose};

use crate::{AccountRef, Identity, IdentityError, Kind, PortalAccount, Stage};

/// How many codes an address may be sent per hour, how long one is valid (microseconds) and
/// how many entries one allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRules {
    pub per_hour: i64,
    pub lifetime: i64,
    pub attempts: i64,
}

/// What asking for a one-time code came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeIssued {
    /// A new code (voiding the address's earlier ones of the same purpose), to mail.
    Issued { id: String, code: String },
    /// The address was sent `per_hour` codes in the last hour already.
    TooMany,
}

/// What entering a one-time code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeEntered {
    /// The address has no current code of this purpose (none, used, expired or void).
    NoCode,
    /// The code's entries are used up; it is void.
    Exhausted,
    Wrong,
    /// The code matched and is used up: the address is proven.
    Right,
}

fn new_code() -> Result<String, IdentityError> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdentityError::Random)?;
    Ok(format!("{:08}", u64::from_le_bytes(bytes) % 100_000_000))
}

/// Whose address a portal request is about.
#[derive(Debug, Clone)]
pub struct PortalWho {
    pub tenant: TenantId,
    pub address: Address,
    /// The address's blind index, as the portal's messages know it.
    pub index: Vec<u8>,
}

impl Identity {
    /// The account of an address, if it has one.
    pub async fn portal_account(&self, who: &PortalWho) -> Result<Option<PortalAccount>, IdentityError> {
        Ok(self.store.portal_account(who.tenant.as_str(), &who.index).await?)
    }

    /// The account of an address, created (its own data key seals the address) when it has
    /// none yet: the address was just proven.
    pub async fn portal_account_for(&self, who: &PortalWho) -> Result<PortalAccount, IdentityError> {
        if let Some(account) = self.portal_account(who).await? {
            return Ok(account);
        }
        let id = self.new_portal_account(who, None).await?;
        self.portal_account_by_id(&id).await
    }

    pub async fn portal_account_by_id(&self, id: &str) -> Result<PortalAccount, IdentityError> {
        self.store
            .portal_account_by_id(id)
            .await?
            .ok_or_else(|| IdentityError::Corrupt(format!("portal account {id} vanished")))
    }

    async fn new_portal_account(
        &self,
        who: &PortalWho,
        password_hash: Option<String>,
    ) -> Result<String, IdentityError> {
        let now = crate::now();
        let id = Id::new().to_string();
        let object = Kind::Portal.key_object(&id);
        let (key, wrapped) = self.ring.new_data_key(&who.tenant, &object)?;
        let tenant = who.tenant.clone();
        self.store
            .write(move |tx| {
                Box::pin(async move { carepost_store::keys::put_data_key(tx, &tenant, &object, &wrapped).await })
            })
            .await?;
        let sealed = key.seal_field("address", who.address.as_str().as_bytes())?;
        let row = PortalAccount::new(id, who.tenant.to_string(), who.index.clone(), sealed, now);
        Ok(self.store.insert_portal_account(row, password_hash, now).await?)
    }

    /// Sets the password of a proven address: a reset of its account (which forgets failures,
    /// lifts the lock and ends every session), or a new account. Then starts a session, in the
    /// second-factor stage when the account has an authenticator app. The caller checked the
    /// password against [`Identity::password_rules`].
    pub async fn portal_set_password(
        &self,
        who: &PortalWho,
        password: &str,
    ) -> Result<(PortalAccount, String, crate::Session), IdentityError> {
        let hash = carepost_vault::hash_password_limited(password.to_owned()).await?;
        let id = match self.portal_account(who).await? {
            Some(existing) => {
                self.replace_password(&AccountRef::portal(&existing)?, hash).await?;
                existing.id
            }
            None => self.new_portal_account(who, Some(hash)).await?,
        };
        let account = self.portal_account_by_id(&id).await?;
        let stage = if account.totp.is_some() { Stage::SecondFactor } else { Stage::Full };
        let (token, session) = self.start_session(Kind::Portal, &id, stage).await?;
        Ok((account, token, session))
    }

    /// Stores a new password hash of a portal account, forgetting failures and the lock.
    pub(crate) async fn set_portal_password_hash(&self, id: &str, hash: String) -> Result<(), IdentityError> {
        let row = self.portal_account_by_id(id).await?;
        self.store.set_portal_password(row, hash, crate::now()).await?;
        Ok(())
    }

    /// What a code for this address proves: the first visit (`verify`) or, for an account
    /// with a password, a forgotten password (`reset`). With the account, if there is one.
    pub async fn portal_code_purpose(
        &self,
        who: &PortalWho,
    ) -> Result<(&'static str, Option<PortalAccount>), IdentityError> {
        let account = self.portal_account(who).await?;
        let kind =
            if account.as_ref().is_some_and(|a| a.password_hash.is_some()) { purpose::RESET } else { purpose::VERIFY };
        Ok((kind, account))
    }

    fn code_hash(&self, tenant: &TenantId, id: &str, code: &str) -> Result<Vec<u8>, IdentityError> {
        Ok(self.ring.blind_index(tenant, "portal-code", format!("{id}\0{code}").as_bytes())?)
    }

    /// A new one-time code of `kind` for the address, within the hourly limit. Only its keyed
    /// hash is kept.
    pub async fn issue_portal_code(
        &self,
        who: &PortalWho,
        kind: &'static str,
        rules: CodeRules,
    ) -> Result<CodeIssued, IdentityError> {
        let now = crate::now();
        let tenant = who.tenant.as_str();
        let sent = self.store.portal_codes_sent_since(tenant, &who.index, kind, now - 3_600_000_000).await?;
        if sent >= rules.per_hour {
            return Ok(CodeIssued::TooMany);
        }
        let (id, code) = (Id::new().to_string(), new_code()?);
        let code_hash = self.code_hash(&who.tenant, &id, &code)?;
        let expires_at = now.saturating_add(rules.lifetime);
        let new = NewPortalCode {
            id: id.clone(),
            tenant: tenant.to_owned(),
            address_index: who.index.clone(),
            purpose: kind,
            code_hash,
            now,
            expires_at,
        };
        self.store.insert_portal_code(new).await?;
        Ok(CodeIssued::Issued { id, code })
    }

    /// Checks a one-time code of `kind` for the address. The attempt is counted before the
    /// comparison, in one statement with the check, so parallel guesses get no more than
    /// `attempts` comparisons between them.
    pub async fn enter_portal_code(
        &self,
        who: &PortalWho,
        kind: &'static str,
        code: &str,
        rules: CodeRules,
    ) -> Result<CodeEntered, IdentityError> {
        let now = crate::now();
        let Some(current) = self.store.current_portal_code(who.tenant.as_str(), &who.index, kind, now).await? else {
            return Ok(CodeEntered::NoCode);
        };
        if !self.store.reserve_portal_code_attempt(&current.id, rules.attempts, now).await? {
            return Ok(CodeEntered::Exhausted);
        }
        let code: String = code.chars().filter(|c| c.is_ascii_digit()).collect();
        let expected = self.code_hash(&who.tenant, &current.id, &code)?;
        let same = constant_time::verify_slices_are_equal(&expected, &current.code_hash).is_ok();
        let used = self.store.portal_code_entered(&current.id, same, rules.attempts, now).await?;
        Ok(if used { CodeEntered::Right } else { CodeEntered::Wrong })
    }

    /// A session for one portal message, for a recipient who proved the address with the
    /// sender's passphrase.
    pub async fn portal_message_session(
        &self,
        account: &PortalAccount,
        message_id: &str,
    ) -> Result<String, IdentityError> {
        let stage = Stage::OneMessage(message_id.to_owned());
        Ok(self.start_session(Kind::Portal, &account.id, stage).await?.0)
    }

    /// The address of a portal account, unsealed.
    pub async fn portal_address(&self, who: &AccountRef, account: &PortalAccount) -> Result<String, IdentityError> {
        let key = self.account_key(Kind::Portal, &who.tenant, &account.id).await?;
        String::from_utf8(key.open_field("address", &account.address)?)
            .map_err(|_| IdentityError::Corrupt(format!("portal account {}: address is not UTF-8", account.id)))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::{PasswordStep, SecondStep, totp};

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn who() -> PortalWho {
        PortalWho {
            tenant: TenantId::default(),
            address: Address::parse("pat@home.example").unwrap(),
            index: b"pat".to_vec(),
        }
    }

    #[tokio::test]
    async fn recipients_share_the_rules_of_staff() {
        let f = crate::test_support::fixture().await;
        let (account, first, _) = f.identity.portal_set_password(&who(), "first passphrase").await.unwrap();
        let pat = AccountRef::portal(&account).unwrap();
        assert_eq!(f.identity.portal_address(&pat, &account).await.unwrap(), "pat@home.example");
        // An authenticator app makes the password a first step only.
        let secret = f.identity.begin_totp(&pat).await.unwrap().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(f.identity.confirm_totp(&pat, &totp::code_at(&secret, now).unwrap()).await.unwrap());
        let found = f.identity.portal_account(&who()).await.unwrap();
        let step = f.identity.portal_password(found, "first passphrase", IP).await.unwrap();
        let PasswordStep::Passed { session, token, .. } = step else { panic!("{step:?}") };
        assert_eq!(session.stage, Stage::SecondFactor);
        let code = totp::code_at(&secret, now + 30).unwrap();
        let SecondStep::Passed { token: full, .. } = f.identity.totp_step(&pat, &session, &code, IP).await.unwrap()
        else {
            panic!("refused")
        };
        assert!(f.identity.portal_session(&token).await.unwrap().is_none(), "renewed after the second factor");
        assert!(f.identity.portal_session(&full).await.unwrap().unwrap().is_full());
        // A reset ends every session, the earlier ones included.
        let (_, after, _) = f.identity.portal_set_password(&who(), "second passphrase").await.unwrap();
        assert!(f.identity.portal_session(&full).await.unwrap().is_none());
        assert!(f.identity.portal_session(&first).await.unwrap().is_none());
        assert!(f.identity.portal_session(&after).await.unwrap().is_some());
        // Three wrong passwords lock the account and end its sessions.
        for n in 1..=3 {
            let found = f.identity.portal_account(&who()).await.unwrap();
            let step = f.identity.portal_password(found, "wrong passphrase", IP).await.unwrap();
            assert!(matches!(step, PasswordStep::Wrong { locked_now, .. } if locked_now == (n == 3)), "{step:?}");
        }
        assert!(f.identity.portal_session(&after).await.unwrap().is_none());
        let found = f.identity.portal_account(&who()).await.unwrap();
        let step = f.identity.portal_password(found, "second passphrase", IP).await.unwrap();
        assert!(matches!(step, PasswordStep::Locked { password_right: true, .. }));
    }

    #[tokio::test]
    async fn codes_prove_the_address_once_within_their_attempts() {
        let f = crate::test_support::fixture().await;
        let rules = CodeRules { per_hour: 2, lifetime: 600_000_000, attempts: 2 };
        let (kind, account) = f.identity.portal_code_purpose(&who()).await.unwrap();
        assert_eq!((kind, account), (purpose::VERIFY, None));
        let CodeIssued::Issued { code, .. } = f.identity.issue_portal_code(&who(), kind, rules).await.unwrap() else {
            panic!("no code")
        };
        let wrong = if code == "00000000" { "00000001" } else { "00000000" };
        assert_eq!(f.identity.enter_portal_code(&who(), kind, wrong, rules).await.unwrap(), CodeEntered::Wrong);
        let spaced = format!("{} {}", &code[..4], &code[4..]);
        assert_eq!(f.identity.enter_portal_code(&who(), kind, &spaced, rules).await.unwrap(), CodeEntered::Right);
        assert_eq!(f.identity.enter_portal_code(&who(), kind, &code, rules).await.unwrap(), CodeEntered::NoCode);
        let CodeIssued::Issued { code, .. } = f.identity.issue_portal_code(&who(), kind, rules).await.unwrap() else {
            panic!("no second code")
        };
        assert_eq!(f.identity.issue_portal_code(&who(), kind, rules).await.unwrap(), CodeIssued::TooMany);
        for _ in 0..2 {
            assert_eq!(f.identity.enter_portal_code(&who(), kind, wrong, rules).await.unwrap(), CodeEntered::Wrong);
        }
        assert_eq!(
            f.identity.enter_portal_code(&who(), kind, &code, rules).await.unwrap(),
            CodeEntered::NoCode,
            "void"
        );
        f.identity.portal_set_password(&who(), "first passphrase").await.unwrap();
        assert_eq!(f.identity.portal_code_purpose(&who()).await.unwrap().0, purpose::RESET);
    }

    #[tokio::test]
    async fn a_passphrase_session_opens_one_message() {
        let f = crate::test_support::fixture().await;
        let account = f.identity.portal_account_for(&who()).await.unwrap();
        assert_eq!(f.identity.portal_account_for(&who()).await.unwrap().id, account.id, "made once");
        let token = f.identity.portal_message_session(&account, "P1").await.unwrap();
        let s = f.identity.portal_session(&token).await.unwrap().unwrap();
        assert!(s.allows("P1") && !s.allows("P2") && !s.is_full());
    }
}
