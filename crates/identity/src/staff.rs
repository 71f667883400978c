//! The organization's accounts as administrators manage them (`carepost user`): creating
//! them, passwords, roles, locks, second factors, app passwords, and the organization's
//! require-MFA setting.

use carepost_model::{Address, TenantId};
use carepost_store::StoreError;
use carepost_store::accounts::{AppPassword, NewAccount, app_password_hash};
use carepost_store::staff::REQUIRE_MFA;
use carepost_vault as vault;

use crate::{Account, AccountRef, Factors, Identity, IdentityError, Kind, Role};

/// An account to create.
#[derive(Debug, Clone)]
pub struct NewStaffAccount<'a> {
    pub tenant: TenantId,
    pub login: &'a str,
    pub role: Role,
    /// Addresses the account may send as; a login that is an address is always one.
    pub addresses: Vec<Address>,
    /// `None`: no password sign-in (app passwords only).
    pub password: Option<String>,
}

/// An account with its second factors and lock, as listings show it.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    pub account: Account,
    pub factors: Factors,
}

fn conflict(e: StoreError) -> IdentityError {
    match e {
        StoreError::Conflict(reason) => IdentityError::Refused(reason),
        other => other.into(),
    }
}

impl Identity {
    /// The account `login` names, in any tenant.
    pub async fn staff_account(&self, login: &str) -> Result<Option<Account>, IdentityError> {
        Ok(self.store.account(&self.ring, login).await?)
    }

    /// Whether `login` may name a new account: 1 to 254 printable characters, not taken in
    /// any tenant. Checked before a password is asked for.
    pub async fn check_new_login(&self, login: &str) -> Result<(), IdentityError> {
        if login.trim().is_empty() || login.len() > 254 || login.chars().any(char::is_control) {
            return Err(IdentityError::Refused("a login name has 1 to 254 printable characters".into()));
        }
        if self.store.account(&self.ring, login).await?.is_some() {
            return Err(IdentityError::Refused("an account with this login name already exists".into()));
        }
        Ok(())
    }

    /// Creates an account; its password (if any) is held to the staff password rules.
    pub async fn create_staff_account(&self, new: NewStaffAccount<'_>) -> Result<Account, IdentityError> {
        self.check_new_login(new.login).await?;
        let mut addresses = new.addresses;
        if let Ok(address) = Address::parse(new.login) {
            addresses.insert(0, address);
        }
        let password_hash = match new.password {
            Some(p) => Some(self.hash_new_password(new.login, p).await?),
            None => None,
        };
        self.store.load_tenant_keys(&self.ring, &new.tenant).await?;
        let new =
            NewAccount { tenant: new.tenant, login: new.login, role: new.role, addresses: &addresses, password_hash };
        self.store.create_account(&self.ring, new).await.map_err(conflict)
    }

    async fn hash_new_password(&self, login: &str, password: String) -> Result<String, IdentityError> {
        if password.is_empty() {
            return Err(IdentityError::Refused("the password is empty".into()));
        }
        self.password_rules(Kind::Staff).check(&password, login).map_err(|e| IdentityError::Refused(e.to_string()))?;
        Ok(vault::hash_password_limited(password).await?)
    }

    /// Sets a new password (an administrator's reset), held to the password rules. Every
    /// session of the account ends.
    pub async fn set_password(&self, account: &Account, password: &str) -> Result<(), IdentityError> {
        let hash = self.hash_new_password(&account.login, password.to_owned()).await?;
        self.replace_password(&AccountRef::staff(account), hash).await
    }

    /// Gives an account another role. It takes effect at once: sessions signed in under the
    /// old one end.
    pub async fn set_role(&self, account: &Account, role: Role) -> Result<(), IdentityError> {
        self.store.set_account_role(&account.id, role).await?;
        self.end_sessions_of(&AccountRef::staff(account)).await?;
        Ok(())
    }

    /// Stops (or again allows) an account's sign-ins; a disabled account's sessions end at
    /// their next request.
    pub async fn set_disabled(&self, account: &Account, disabled: bool) -> Result<(), IdentityError> {
        Ok(self.store.set_account_disabled(&account.id, disabled).await?)
    }

    /// Lifts the lock that failed sign-ins put on an account.
    pub async fn unlock(&self, account: &Account) -> Result<(), IdentityError> {
        Ok(self.store.staff_unlock(&account.id).await?)
    }

    /// Removes every second factor of an account (a lost phone and key), and ends its
    /// sessions; it enrolls again at its next sign-in when MFA is required.
    pub async fn reset_second_factors(&self, account: &Account) -> Result<(), IdentityError> {
        self.store.staff_reset_mfa(&account.id).await?;
        self.end_sessions_of(&AccountRef::staff(account)).await?;
        Ok(())
    }

    /// Every account with its second factors and lock, by tenant then creation time.
    pub async fn staff_accounts(&self) -> Result<Vec<AccountSummary>, IdentityError> {
        let mut out = Vec::new();
        for account in self.store.accounts(&self.ring).await? {
            let factors = self.factors(Kind::Staff, &account.id).await?.unwrap_or_default();
            out.push(AccountSummary { account, factors });
        }
        Ok(out)
    }

    /// Creates an app password named `name` and returns it; only a keyed hash is kept.
    pub async fn add_app_password(&self, account: &Account, name: &str) -> Result<String, IdentityError> {
        let secret = new_app_password()?;
        let hash = app_password_hash(&self.ring, &account.tenant, &secret)?;
        self.store.add_app_password(&account.id, name, hash).await.map_err(conflict)?;
        Ok(secret)
    }

    /// Revokes an app password by name; false when the account has none of that name.
    pub async fn revoke_app_password(&self, account: &Account, name: &str) -> Result<bool, IdentityError> {
        Ok(self.store.revoke_app_password(&account.id, name).await?)
    }

    /// The app passwords (not revoked) of the account `login` names; `None`: no such account.
    pub async fn app_passwords(&self, login: &str) -> Result<Option<Vec<AppPassword>>, IdentityError> {
        Ok(self.store.account_credentials(&self.ring, login).await?.map(|c| c.app_passwords))
    }

    /// Whether `tenant` requires a second factor of every staff account.
    pub async fn mfa_required(&self, tenant: &TenantId) -> Result<bool, IdentityError> {
        Ok(self.store.mfa_required(tenant.as_str()).await?)
    }

    /// Requires (or stops requiring) a second factor of every staff account of `tenant`,
    /// enforced at each account's next sign-in. `by` is the actor, for the record.
    pub async fn set_mfa_required(&self, tenant: &TenantId, on: bool, by: &str) -> Result<(), IdentityError> {
        let value = if on { "on" } else { "off" };
        Ok(self.store.set_org_setting(tenant.as_str(), REQUIRE_MFA, value, by, crate::now()).await?)
    }
}

/// A random app password: 20 lowercase letters in groups of four (94 bits), easy to type
/// into a phone's mail settings.
fn new_app_password() -> Result<String, IdentityError> {
    const LETTERS: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    let mut out = String::with_capacity(24);
    let mut picked = 0;
    for _ in 0..4 {
        for b in crate::random_bytes()? {
            // Rejection sampling keeps every letter equally likely.
            if usize::from(b) >= 250 {
                continue;
            }
            if picked > 0 && picked % 4 == 0 {
                out.push('-');
            }
            out.push(char::from(LETTERS[usize::from(b) % LETTERS.len()]));
            picked += 1;
            if picked == 20 {
                return Ok(out);
            }
        }
    }
    Err(IdentityError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resumed;
    use crate::Stage;
    use crate::test_support::{fixture, jane};

    #[test]
    fn app_passwords_are_grouped_letters() {
        let p = new_app_password().unwrap();
        assert_eq!(p.len(), 24, "{p}");
        assert_eq!(p.matches('-').count(), 4);
        assert!(p.chars().all(|c| c == '-' || c.is_ascii_lowercase()));
        assert_ne!(p, new_app_password().unwrap());
    }

    #[tokio::test]
    async fn accounts_are_created_once_with_their_login_as_an_address() {
        let f = fixture().await;
        let jane = jane(&f).await;
        assert_eq!(jane.addresses.len(), 1, "the login and the same address given again count once");
        assert!(matches!(f.identity.check_new_login("JANE@clinic.example").await, Err(IdentityError::Refused(_))));
        assert!(matches!(f.identity.check_new_login(" ").await, Err(IdentityError::Refused(_))));
        let weak = NewStaffAccount {
            tenant: TenantId::default(),
            login: "bob",
            role: Role::Sender,
            addresses: vec![],
            password: Some("password".into()),
        };
        assert!(matches!(f.identity.create_staff_account(weak).await, Err(IdentityError::Refused(_))));
        assert!(f.identity.staff_account("bob").await.unwrap().is_none(), "a refused account is not created");
    }

    #[tokio::test]
    async fn a_new_role_ends_the_sessions_of_the_old_one() {
        let f = fixture().await;
        let jane = jane(&f).await;
        let (token, _) = f.identity.start_session(Kind::Staff, &jane.id, Stage::Full).await.unwrap();
        f.identity.set_role(&jane, Role::Admin).await.unwrap();
        assert_eq!(f.identity.staff_session(&token).await.unwrap(), Resumed::Missing);
        assert_eq!(f.identity.staff_account("jane@clinic.example").await.unwrap().unwrap().role, Role::Admin);
    }
}
