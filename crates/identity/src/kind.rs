//! The kinds of account, the stages of a sign-in, and what every kind has in common.

use carepost_model::TenantId;

/// The kind of an account: the rules are the same, the tables differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The organization's own people and applications (`carepost user`).
    Staff,
    /// A portal recipient, known by a proven address.
    Portal,
}

impl Kind {
    /// The actor an account of this kind appears as in the audit log.
    pub fn actor(self, account_id: &str) -> String {
        match self {
            Kind::Staff => format!("staff:{account_id}"),
            Kind::Portal => format!("portal:{account_id}"),
        }
    }

    /// The target an account of this kind appears as in the audit log (the same as the CLI
    /// writes).
    pub fn target(self, account_id: &str) -> String {
        match self {
            Kind::Staff => format!("account:{account_id}"),
            Kind::Portal => format!("portal-account:{account_id}"),
        }
    }

    /// The object whose data key seals the account's own fields (address, TOTP secret,
    /// security keys).
    pub(crate) fn key_object(self, account_id: &str) -> String {
        match self {
            Kind::Staff => format!("account/{account_id}"),
            Kind::Portal => format!("portal-account/{account_id}"),
        }
    }
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Signed in completely.
    Full,
    /// The password was right; a second factor is due. A password alone reaches nothing
    /// but the second-factor page.
    SecondFactor,
    /// The password was right; the organization requires a second factor and the account
    /// has none: enrolling one is the only thing it may do (staff only).
    Enroll,
    /// Signed in with a sender's passphrase, for that one portal message only.
    OneMessage(String),
}

const ONE_MESSAGE: &str = "message:";

impl Stage {
    /// The name a stage is stored under; kept as each kind stored it before they shared
    /// this code, so sessions survive an upgrade.
    pub fn stored(&self, kind: Kind) -> String {
        match (self, kind) {
            (Stage::Full, _) => "full".into(),
            (Stage::SecondFactor, Kind::Staff) => "mfa".into(),
            (Stage::SecondFactor, Kind::Portal) => "totp".into(),
            (Stage::Enroll, _) => "enroll".into(),
            (Stage::OneMessage(id), _) => format!("{ONE_MESSAGE}{id}"),
        }
    }

    pub fn parse(kind: Kind, text: &str) -> Option<Stage> {
        if let Some(id) = text.strip_prefix(ONE_MESSAGE) {
            return (kind == Kind::Portal).then(|| Stage::OneMessage(id.to_owned()));
        }
        [Stage::Full, Stage::SecondFactor, Stage::Enroll].into_iter().find(|s| s.stored(kind) == text)
    }
}

/// An account of any kind, as far as sessions, second factors and lockout need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRef {
    pub kind: Kind,
    pub id: String,
    pub tenant: TenantId,
}

impl AccountRef {
    pub fn staff(account: &crate::Account) -> Self {
        AccountRef { kind: Kind::Staff, id: account.id.clone(), tenant: account.tenant.clone() }
    }

    pub fn portal(account: &crate::PortalAccount) -> Result<Self, crate::IdentityError> {
        let tenant = TenantId::new(&account.tenant).map_err(|e| crate::IdentityError::Corrupt(e.to_string()))?;
        Ok(AccountRef { kind: Kind::Portal, id: account.id.clone(), tenant })
    }

    pub fn actor(&self) -> String {
        self.kind.actor(&self.id)
    }

    pub fn target(&self) -> String {
        self.kind.target(&self.id)
    }
}

/// An account's sign-in state beyond its password: second factors (sealed) and the lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Factors {
    pub totp: Option<Vec<u8>>,
    pub totp_pending: Option<Vec<u8>>,
    pub security_keys: i64,
    pub locked_until: Option<i64>,
    /// Failed sign-ins counted in the current window.
    pub failures: i64,
}

impl Factors {
    /// Whether the account has any second factor.
    pub fn has_second_factor(&self) -> bool {
        self.totp.is_some() || self.security_keys > 0
    }

    /// Whether the account is locked at `now` (microseconds).
    pub fn locked_at(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_keep_each_kinds_stored_names() {
        for kind in [Kind::Staff, Kind::Portal] {
            for stage in [Stage::Full, Stage::SecondFactor, Stage::Enroll] {
                assert_eq!(Stage::parse(kind, &stage.stored(kind)), Some(stage));
            }
        }
        assert_eq!(Stage::SecondFactor.stored(Kind::Staff), "mfa");
        assert_eq!(Stage::SecondFactor.stored(Kind::Portal), "totp");
        assert_eq!(Stage::parse(Kind::Portal, "message:P1"), Some(Stage::OneMessage("P1".into())));
        assert_eq!(Stage::parse(Kind::Staff, "message:P1"), None, "a passphrase opens no staff session");
        assert_eq!(Stage::parse(Kind::Staff, "totp"), None);
        assert_eq!(Kind::Portal.target("A"), "portal-account:A");
        assert_eq!(Kind::Staff.actor("A"), "staff:A");
    }
}
