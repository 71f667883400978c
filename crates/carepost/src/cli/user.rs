//! `carepost user`: the organization's accounts: SMTP submission and the staff pages, their
//! roles, and the organization's require-MFA setting.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use carepost::install::{Access, Installation};
use carepost_audit::Event;
use carepost_model::{Address, TenantId, Timestamp};
use carepost_store::StoreError;
use carepost_store::accounts::{Account, DEFAULT_ROLE, NewAccount, Role, app_password_hash};
use carepost_store::staff::REQUIRE_MFA;
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password is asked for (or read from stdin with
    /// --password-stdin); it is never given on the command line.
    Add {
        /// The login name, usually the person's e-mail address.
        login: String,
        /// An address the account may send as (repeatable). A login that is an address is
        /// always one of them.
        #[arg(long = "address", value_name = "ADDRESS")]
        addresses: Vec<Address>,
        #[arg(long, value_name = "TENANT", default_value = "default")]
        tenant: TenantId,
        /// admin, compliance (reads audit and reports, changes no settings), sender, or
        /// api_only (API keys only: no web or SMTP sign-in).
        #[arg(long, default_value_t = DEFAULT_ROLE)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Create the account without a password (app passwords only).
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
    },
    /// Set a new password.
    Passwd {
        login: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give an account another role: admin, compliance, sender or api_only.
    Role { login: String, role: Role },
    /// Require a second factor (authenticator app or security key) of every staff account,
    /// enforced at each account's next sign-in; or stop requiring it.
    RequireMfa {
        #[arg(value_parser = ["on", "off"])]
        value: String,
        #[arg(long, value_name = "TENANT", default_value = "default")]
        tenant: TenantId,
    },
    /// Lift the lock that repeated failed sign-ins put on an account.
    Unlock { login: String },
    /// Remove an account's authenticator app and security keys (a lost phone or key); it
    /// enrolls again at its next sign-in if MFA is required.
    ResetMfa { login: String },
    /// Stop an account from signing in.
    Disable { login: String },
    /// Let a disabled account sign in again.
    Enable { login: String },
    /// List accounts.
    List,
    /// Per-application passwords for SMTP submission: random, named, revocable. An account
    /// with a second factor (or whose organization requires one) signs in to SMTP with these
    /// only; they never open the staff pages.
    #[command(subcommand)]
    AppPassword(AppPasswordCommand),
}

#[derive(Subcommand, Debug)]
pub enum AppPasswordCommand {
    /// Create an app password and print it once.
    Add { login: String, name: String },
    /// List an account's app passwords (names and dates; the secrets are never shown again).
    List { login: String },
    /// Revoke an app password by name.
    #[command(alias = "remove")]
    Revoke { login: String, name: String },
}

/// Reads a password: from stdin with `--password-stdin`, else from the terminal without echo.
/// It must pass the password policy (`[staff]`): long enough, not a common password, not
/// containing the login name.
fn read_password(from_stdin: bool, policy: &carepost_vault::PasswordPolicy, login: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let password = if from_stdin {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        if !stdin.is_terminal() {
            bail!("no terminal to ask for the password on; use --password-stdin");
        }
        let first = prompt("Password: ")?;
        let second = prompt("Again: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        first
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    if let Err(rejected) = policy.check(&password, login) {
        bail!("{rejected}");
    }
    Ok(password)
}

/// Asks on the terminal with echo off (through stty, so no extra dependency is needed).
fn prompt(label: &str) -> anyhow::Result<String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty").arg(arg).stdin(std::process::Stdio::inherit()).status().map(|s| s.success())
    };
    eprint!("{label}");
    std::io::stderr().flush()?;
    let echo_off = stty("-echo").unwrap_or(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        let _ = stty("echo");
    }
    eprintln!();
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn hash(password: String) -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(move || carepost_vault::hash_password(&password)).await??)
}

/// A random app password: 20 lowercase letters in groups of four (94 bits), easy to type
/// into a phone's mail settings.
fn new_app_password() -> anyhow::Result<String> {
    const LETTERS: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    let mut out = String::with_capacity(24);
    let mut random = [0u8; 64];
    random_bytes(&mut random)?;
    let mut picked = 0;
    for b in random {
        // Rejection sampling keeps every letter equally likely.
        if usize::from(b) >= 250 {
            continue;
        }
        if picked > 0 && picked % 4 == 0 {
            out.push('-');
        }
        out.push(LETTERS[usize::from(b) % LETTERS.len()] as char);
        picked += 1;
        if picked == 20 {
            return Ok(out);
        }
    }
    bail!("the random number generator gave too few usable bytes")
}

fn random_bytes(buf: &mut [u8]) -> anyhow::Result<()> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, buf))
        .context("reading /dev/urandom")
}

async fn find(install: &Installation, login: &str) -> anyhow::Result<Account> {
    install
        .store
        .account(&install.ring, login)
        .await?
        .with_context(|| format!("no account with the login name '{login}'"))
}

fn audit_event(action: &str, account: &Account) -> Event {
    Event::new("cli", action).target(format!("account:{}", account.id)).detail("tenant", account.tenant.as_str())
}

pub async fn run(global: &Global, command: UserCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let install = Installation::open(config, Access::Shared).await?;
    let result = run_with(&install, command).await;
    // Signs the audit head this command wrote.
    let closed = install.close().await;
    result.and_then(|code| closed.map(|()| code))
}

async fn run_with(install: &Installation, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add { login, mut addresses, tenant, role, password_stdin, no_password } => {
            if login.trim().is_empty() || login.len() > 254 || login.chars().any(char::is_control) {
                bail!("a login name has 1 to 254 printable characters");
            }
            if let Ok(address) = Address::parse(&login) {
                addresses.insert(0, address);
            }
            // A taken name is refused before the password is asked for.
            if install.store.account(&install.ring, &login).await?.is_some() {
                bail!("an account with this login name already exists");
            }
            let policy = install.config.staff.password_policy();
            let password_hash =
                if no_password { None } else { Some(hash(read_password(password_stdin, &policy, &login)?).await?) };
            install.store.load_tenant_keys(&install.ring, &tenant).await?;
            let account = match install
                .store
                .create_account(
                    &install.ring,
                    NewAccount { tenant, login: &login, role, addresses: &addresses, password_hash },
                )
                .await
            {
                Err(StoreError::Conflict(reason)) => bail!("{reason}"),
                other => other?,
            };
            install
                .audit
                .append(
                    audit_event("user.add", &account)
                        .detail("role", account.role.as_str())
                        .detail("addresses", account.addresses.len()),
                )
                .await?;
            println!(
                "account {} created for {login} (role {}, {} sender addresses)",
                account.id,
                account.role,
                account.addresses.len()
            );
        }
        UserCommand::Passwd { login, password_stdin } => {
            let account = find(install, &login).await?;
            let password_hash =
                hash(read_password(password_stdin, &install.config.staff.password_policy(), &account.login)?).await?;
            install.store.set_password_hash(&account.id, Some(password_hash)).await?;
            install.audit.append(audit_event("user.passwd", &account)).await?;
            println!("password of {login} changed");
        }
        UserCommand::Role { login, role } => {
            let account = find(install, &login).await?;
            install.store.set_account_role(&account.id, role).await?;
            // A new role takes effect at once: sessions signed in under the old one end.
            install.store.end_staff_sessions(None, Some(account.id.clone())).await?;
            install
                .audit
                .append(
                    audit_event("user.role", &account)
                        .detail("from", account.role.as_str())
                        .detail("to", role.as_str()),
                )
                .await?;
            println!("{login} is now {role}");
        }
        UserCommand::RequireMfa { value, tenant } => {
            let now = Timestamp::now().as_micros();
            install.store.set_org_setting(tenant.as_str(), REQUIRE_MFA, &value, "cli", now).await?;
            install
                .audit
                .append(
                    Event::new("cli", "staff.require_mfa").target(format!("tenant:{tenant}")).detail("value", &value),
                )
                .await?;
            if value == "on" {
                println!(
                    "a second factor is now required of every staff account of tenant {tenant}, from its next sign-in"
                );
            } else {
                println!("a second factor is no longer required of staff accounts of tenant {tenant}");
            }
        }
        UserCommand::Unlock { login } => {
            let account = find(install, &login).await?;
            install.store.staff_unlock(&account.id).await?;
            install.audit.append(audit_event("user.unlock", &account)).await?;
            println!("{login} unlocked");
        }
        UserCommand::ResetMfa { login } => {
            let account = find(install, &login).await?;
            install.store.staff_reset_mfa(&account.id).await?;
            install.audit.append(audit_event("user.reset_mfa", &account)).await?;
            println!("second factors of {login} removed; its sessions ended");
        }
        UserCommand::Disable { login } => {
            let account = find(install, &login).await?;
            install.store.set_account_disabled(&account.id, true).await?;
            install.audit.append(audit_event("user.disable", &account)).await?;
            println!("{login} disabled");
        }
        UserCommand::Enable { login } => {
            let account = find(install, &login).await?;
            install.store.set_account_disabled(&account.id, false).await?;
            install.audit.append(audit_event("user.enable", &account)).await?;
            println!("{login} enabled");
        }
        UserCommand::List => {
            let accounts = install.store.accounts(&install.ring).await?;
            if accounts.is_empty() {
                println!("no accounts");
            }
            let now = Timestamp::now().as_micros();
            for a in accounts {
                let auth = install.store.staff_auth(&a.id).await?.unwrap_or_default();
                let mfa = if auth.has_mfa() { "mfa" } else { "no-mfa" };
                let state = match auth.locked_until {
                    _ if a.disabled => "disabled".to_owned(),
                    Some(until) if until > now => {
                        format!("locked-until={}", Timestamp::from_micros(until).to_rfc3339())
                    }
                    _ => "active".to_owned(),
                };
                let password = if a.has_password { "password" } else { "no-password" };
                let addresses: Vec<&str> = a.addresses.iter().map(Address::as_str).collect();
                println!(
                    "{}  {}  tenant={}  role={}  {state}  {password}  {mfa}  created={}  sends-as={}",
                    a.id,
                    a.login,
                    a.tenant,
                    a.role,
                    Timestamp::from_micros(a.created_at).to_rfc3339(),
                    addresses.join(",")
                );
            }
        }
        UserCommand::AppPassword(AppPasswordCommand::Add { login, name }) => {
            let account = find(install, &login).await?;
            let secret = new_app_password()?;
            let hash = app_password_hash(&install.ring, &account.tenant, &secret)?;
            match install.store.add_app_password(&account.id, &name, hash).await {
                Err(StoreError::Conflict(reason)) => bail!("{reason}"),
                other => other?,
            };
            install.audit.append(audit_event("user.app_password.add", &account).detail("name", &name)).await?;
            println!("app password '{name}' for {login} (shown once; spaces and dashes are optional):");
            println!("{secret}");
        }
        UserCommand::AppPassword(AppPasswordCommand::List { login }) => {
            let creds = install
                .store
                .account_credentials(&install.ring, &login)
                .await?
                .with_context(|| format!("no account with the login name '{login}'"))?;
            if creds.app_passwords.is_empty() {
                println!("{login} has no app passwords");
            }
            for app in creds.app_passwords {
                let used =
                    app.last_used_at.map_or_else(|| "never".to_owned(), |t| Timestamp::from_micros(t).to_rfc3339());
                println!(
                    "{}  created={}  last-used={used}",
                    app.name,
                    Timestamp::from_micros(app.created_at).to_rfc3339()
                );
            }
        }
        UserCommand::AppPassword(AppPasswordCommand::Revoke { login, name }) => {
            let account = find(install, &login).await?;
            if !install.store.revoke_app_password(&account.id, &name).await? {
                bail!("{login} has no app password named '{name}'");
            }
            install.audit.append(audit_event("user.app_password.revoke", &account).detail("name", &name)).await?;
            println!("app password '{name}' of {login} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn app_passwords_are_grouped_letters() {
        let p = super::new_app_password().unwrap();
        assert_eq!(p.len(), 24, "{p}");
        assert_eq!(p.matches('-').count(), 4);
        assert!(p.chars().all(|c| c == '-' || c.is_ascii_lowercase()));
        assert_ne!(p, super::new_app_password().unwrap());
    }
}
