//! `carepost user`: the organization's accounts: SMTP submission and the staff pages, their
//! roles, and the organization's require-MFA setting. The rules are the identity room's;
//! this command reads arguments and passwords, asks the room, audits and prints.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use carepost::install::{Access, Installation};
use carepost_audit::Event;
use carepost_identity::{Account, DEFAULT_ROLE, Identity, IdentityError, NewStaffAccount, Role};
use carepost_model::{Address, TenantId, Timestamp};
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
/// The identity room holds it to the password rules (`[staff]`).
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !stdin.is_terminal() {
        bail!("no terminal to ask for the password on; use --password-stdin");
    }
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
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

async fn find(identity: &Identity, login: &str) -> anyhow::Result<Account> {
    identity.staff_account(login).await?.with_context(|| format!("no account with the login name '{login}'"))
}

/// A refusal of the account rules is the user's error, said as is.
fn refused(e: IdentityError) -> anyhow::Error {
    match e {
        IdentityError::Refused(reason) => anyhow::anyhow!(reason),
        other => other.into(),
    }
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
    let identity = install.identity();
    match command {
        UserCommand::Add { login, addresses, tenant, role, password_stdin, no_password } => {
            // A bad or taken name is refused before the password is asked for.
            identity.check_new_login(&login).await.map_err(refused)?;
            let password = if no_password { None } else { Some(read_password(password_stdin)?) };
            let new = NewStaffAccount { tenant, login: &login, role, addresses, password };
            let account = identity.create_staff_account(new).await.map_err(refused)?;
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
            let account = find(&identity, &login).await?;
            identity.set_password(&account, &read_password(password_stdin)?).await.map_err(refused)?;
            install.audit.append(audit_event("user.passwd", &account)).await?;
            println!("password of {login} changed; its sessions ended");
        }
        UserCommand::Role { login, role } => {
            let account = find(&identity, &login).await?;
            identity.set_role(&account, role).await?;
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
            identity.set_mfa_required(&tenant, value == "on", "cli").await?;
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
            let account = find(&identity, &login).await?;
            identity.unlock(&account).await?;
            install.audit.append(audit_event("user.unlock", &account)).await?;
            println!("{login} unlocked");
        }
        UserCommand::ResetMfa { login } => {
            let account = find(&identity, &login).await?;
            identity.reset_second_factors(&account).await?;
            install.audit.append(audit_event("user.reset_mfa", &account)).await?;
            println!("second factors of {login} removed; its sessions ended");
        }
        UserCommand::Disable { login } => {
            let account = find(&identity, &login).await?;
            identity.set_disabled(&account, true).await?;
            install.audit.append(audit_event("user.disable", &account)).await?;
            println!("{login} disabled");
        }
        UserCommand::Enable { login } => {
            let account = find(&identity, &login).await?;
            identity.set_disabled(&account, false).await?;
            install.audit.append(audit_event("user.enable", &account)).await?;
            println!("{login} enabled");
        }
        UserCommand::List => {
            let accounts = identity.staff_accounts().await?;
            if accounts.is_empty() {
                println!("no accounts");
            }
            let now = Timestamp::now().as_micros();
            for summary in accounts {
                let (a, factors) = (summary.account, summary.factors);
                let mfa = if factors.has_second_factor() { "mfa" } else { "no-mfa" };
                let state = match factors.locked_until {
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
            let account = find(&identity, &login).await?;
            let secret = identity.add_app_password(&account, &name).await.map_err(refused)?;
            install.audit.append(audit_event("user.app_password.add", &account).detail("name", &name)).await?;
            println!("app password '{name}' for {login} (shown once; spaces and dashes are optional):");
            println!("{secret}");
        }
        UserCommand::AppPassword(AppPasswordCommand::List { login }) => {
            let apps = identity
                .app_passwords(&login)
                .await?
                .with_context(|| format!("no account with the login name '{login}'"))?;
            if apps.is_empty() {
                println!("{login} has no app passwords");
            }
            for app in apps {
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
            let account = find(&identity, &login).await?;
            if !identity.revoke_app_password(&account, &name).await? {
                bail!("{login} has no app password named '{name}'");
            }
            install.audit.append(audit_event("user.app_password.revoke", &account).detail("name", &name)).await?;
            println!("app password '{name}' of {login} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
