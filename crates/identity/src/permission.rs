//! What an account may do: one table of roles and permissions, the sender addresses an
//! account may use, and the scopes and senders of an API key. Every door asks here.

use carepost_model::Address;

use crate::{Account, ApiKey, Role};

/// Something a role may or may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Sign in to the staff web pages.
    SignInToWeb,
    /// Sign in to SMTP submission (password or app password).
    SubmitOverSmtp,
    /// Read the audit log and reports.
    ReadAudit,
    /// Change organization settings (require MFA, accounts).
    ChangeSettings,
}

/// Whether `role` has `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    match permission {
        // API-only accounts are applications: API keys only.
        Permission::SignInToWeb | Permission::SubmitOverSmtp => role != Role::ApiOnly,
        Permission::ReadAudit => matches!(role, Role::Admin | Role::Compliance),
        Permission::ChangeSettings => role == Role::Admin,
    }
}

/// Whether the account may use `address` as its envelope sender or From (compared the way
/// users expect: case-insensitively).
pub fn may_send_as(account: &Account, address: &Address) -> bool {
    let wanted = address.canonical();
    account.addresses.iter().any(|a| a.canonical() == wanted)
}

/// Whether an API key may call what needs `scope`; `admin` covers every scope.
pub fn key_allows(key: &ApiKey, scope: &str) -> bool {
    key.has_scope(scope) || key.has_scope("admin")
}

/// Whether a key limited to `allowed` senders (addresses, or `@domain` for a whole domain)
/// may send from `from`. An empty list allows no one here: such a key is limited to its
/// tenant's domains instead, which the caller knows.
pub fn listed_sender(allowed: &[String], from: &Address) -> bool {
    allowed.iter().any(|a| match a.strip_prefix('@') {
        Some(domain) => from.domain().eq_ignore_ascii_case(domain),
        None => from.as_str().eq_ignore_ascii_case(a),
    })
}

#[cfg(test)]
mod tests {
    use carepost_model::TenantId;

    use super::*;

    #[test]
    fn roles_and_what_they_allow() {
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Compliance, [true, true, true, false]),
            (Role::Sender, [true, true, false, false]),
            (Role::ApiOnly, [false, false, false, false]),
        ];
        let all =
            [Permission::SignInToWeb, Permission::SubmitOverSmtp, Permission::ReadAudit, Permission::ChangeSettings];
        for (role, expected) in table {
            for (permission, want) in all.into_iter().zip(expected) {
                assert_eq!(allows(role, permission), want, "{role} {permission:?}");
            }
        }
    }

    #[test]
    fn may_send_as_its_own_addresses_only() {
        let account = Account {
            id: "A".into(),
            tenant: TenantId::default(),
            login: "jane".into(),
            role: Role::Sender,
            addresses: vec![Address::parse("Jane.Roe@Clinic.example").unwrap()],
            disabled: false,
            has_password: true,
            created_at: 0,
            updated_at: 0,
        };
        assert!(may_send_as(&account, &Address::parse("jane.roe@clinic.EXAMPLE").unwrap()));
        assert!(!may_send_as(&account, &Address::parse("boss@clinic.example").unwrap()));
        assert!(!may_send_as(&Account { addresses: vec![], ..account }, &Address::parse("jane@x.example").unwrap()));
    }

    #[test]
    fn senders_are_matched_by_address_or_domain() {
        let from = Address::parse("Results@Lab.example.org").unwrap();
        assert!(!listed_sender(&[], &from));
        assert!(listed_sender(&["results@lab.example.org".into()], &from));
        assert!(listed_sender(&["@lab.example.org".into()], &from));
        assert!(!listed_sender(&["@example.org".into()], &from), "a parent domain is another domain");
        assert!(!listed_sender(&["billing@lab.example.org".into(), "@clinic.example".into()], &from));
    }
}
