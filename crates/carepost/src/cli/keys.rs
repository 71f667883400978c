//! `carepost keys`: the recipient key directory (S/MIME certificates, OpenPGP keys).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use carepost::Config;
use carepost::install::{Access, Installation};
use carepost_audit::Event;
use carepost_model::{Address, TenantId};
use carepost_secure::directory::{Confirmation, KeyDirectory, KeyState};
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Import certificates or OpenPGP public keys (PEM, DER, armored or binary) from FILE.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// List stored keys and whether each would be used now.
    List {
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// Confirm a learned key (unconfirmed, or held because the address had another key) after
    /// checking its fingerprint with its holder: from then on it is used like an imported one.
    Confirm {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// Remove a stored key (its stored copy is crypto-shredded).
    Remove {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// Show the keys delivery would use for ADDRESS, looking it up through WKD if needed.
    Lookup {
        address: Address,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
}

/// The key directory of an existing installation, without network look-ups; `None` when the
/// data directory does not exist yet (nothing to look up).
pub async fn directory_if_installed(config: &Config) -> anyhow::Result<Option<KeyDirectory>> {
    let shared = carepost::install::store_options(config).backend().is_shared();
    if !shared && !config.in_data_dir(&config.store.database).exists() {
        return Ok(None);
    }
    let install = Installation::open(config.clone(), Access::Shared).await?;
    Ok(Some(KeyDirectory::new(install.store.clone(), install.ring.clone(), None)))
}

pub async fn run(global: &Global, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let install = Installation::open(config, Access::Shared).await?;
    let wkd = match &command {
        KeysCommand::Lookup { .. } => Some(carepost_secure::wkd::ReqwestWkdClient::new(&Default::default())?),
        _ => None,
    };
    let dir = KeyDirectory::new(install.store.clone(), install.ring.clone(), wkd);
    match command {
        KeysCommand::Import { file, tenant } => {
            let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
            let ids = dir.import(&tenant, &bytes).await.with_context(|| format!("{}", file.display()))?;
            for id in &ids {
                install
                    .audit
                    .append(Event::new("cli", "keys.import").target(format!("key:{id}")).detail("tenant", &tenant))
                    .await?;
            }
            println!("imported {} entr{}: {}", ids.len(), if ids.len() == 1 { "y" } else { "ies" }, ids.join(", "));
        }
        KeysCommand::List { tenant } => {
            println!(
                "{:<26}  {:<5}  {:<8}  {:<11}  {:<20}  {:<64}  address",
                "id", "kind", "source", "state", "expires", "fingerprint"
            );
            for k in dir.list(&tenant).await? {
                let expires = k.not_after.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
                let note = match (&k.unusable, k.state) {
                    (Some(why), _) => format!("  (not used: {why})"),
                    (None, KeyState::Unconfirmed) => {
                        format!("  (not used until confirmed: carepost keys confirm {})", k.id)
                    }
                    (None, KeyState::Held) => "  (held for review: the address has another key; not used)".to_owned(),
                    (None, _) => String::new(),
                };
                println!(
                    "{:<26}  {:<5}  {:<8}  {:<11}  {:<20}  {:<64}  {}{note}",
                    k.id,
                    k.kind.as_str(),
                    k.source,
                    k.state.as_str(),
                    &expires[..expires.len().min(20)],
                    k.fingerprint,
                    k.address
                );
            }
        }
        KeysCommand::Confirm { id, tenant } => match dir.confirm(&tenant, &id).await? {
            Confirmation::Confirmed { was } => {
                let event = Event::new("cli", "keys.confirm")
                    .target(format!("key:{id}"))
                    .detail("tenant", &tenant)
                    .detail("was", was.as_str());
                install.audit.append(event).await?;
                println!("confirmed {id} (was {}); it is used from now on", was.as_str());
            }
            Confirmation::AlreadyUsable(state) => {
                println!("{id} is already in use ({}); nothing changed", state.as_str())
            }
            Confirmation::NotFound => anyhow::bail!("no key {id} in tenant {tenant}"),
        },
        KeysCommand::Remove { id, tenant } => {
            if dir.remove(&tenant, &id).await? {
                install
                    .audit
                    .append(Event::new("cli", "keys.remove").target(format!("key:{id}")).detail("tenant", &tenant))
                    .await?;
                println!("removed {id}");
            } else {
                anyhow::bail!("no key {id} in tenant {tenant}");
            }
        }
        KeysCommand::Lookup { address, tenant } => {
            let keys = dir.lookup(&tenant, &address).await?;
            for cert in &keys.smime {
                println!("S/MIME   {}", cert.info().fingerprint_sha256);
            }
            for key in &keys.pgp {
                println!("OpenPGP  {}", key.fingerprint);
            }
            if keys.smime.is_empty() && keys.pgp.is_empty() {
                println!("no usable key for {address}");
            }
        }
    }
    // Signs the audit head this command wrote.
    install.close().await?;
    Ok(ExitCode::SUCCESS)
}
