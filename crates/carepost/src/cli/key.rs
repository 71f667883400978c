use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use carepost::install::{Access, Installation};
use carepost_audit::Event;
use carepost_model::TenantId;
use carepost_vault::{MasterKey, MasterKeySource};
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Rotate key-encryption keys: every data key is rewrapped under a new kek; payloads are
    /// not re-encrypted. With --master, rotate the master key instead. Stop `carepost serve`
    /// first.
    Rotate {
        /// Only this tenant (default: every tenant).
        #[arg(long, value_name = "TENANT")]
        tenant: Option<TenantId>,
        /// Rotate the master key: rewrap every tenant secret under a new master key.
        #[arg(long)]
        master: bool,
        /// With --master and a master key from env or command: write the new key here
        /// (mode 0600) for you to install in your key store.
        #[arg(long, value_name = "FILE", requires = "master")]
        new_key_out: Option<PathBuf>,
    },
}

pub async fn run(global: &Global, command: KeyCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let KeyCommand::Rotate { tenant, master, new_key_out } = command;
    let source = carepost::install::master_key_source(&config);
    let install = Installation::open(config, Access::Exclusive).await?;
    if master {
        let new_master = MasterKey::generate()?;
        let target = match (&source, new_key_out) {
            (_, Some(out)) => out,
            (MasterKeySource::File(path), None) => carepost::install::staged_master_key_path(path),
            (_, None) => anyhow::bail!("the master key comes from env or a command: give --new-key-out FILE"),
        };
        new_master.write_new_file(&target).with_context(|| format!("writing {}", target.display()))?;
        let count = install.store.rotate_master_key(&install.ring, &new_master).await?;
        if let MasterKeySource::File(path) = &source
            && target == carepost::install::staged_master_key_path(path)
        {
            std::fs::rename(&target, path).with_context(|| format!("installing {}", path.display()))?;
        }
        install
            .audit
            .append(Event::new("cli", "key.rotate.master").target(new_master.key_id()).detail("secrets", count))
            .await?;
        println!("master key rotated: {count} secrets rewrapped under master key {}", new_master.key_id());
        if !matches!(source, MasterKeySource::File(_)) {
            println!("install the new key from {} where carepost reads it, then delete that file", target.display());
        }
    } else {
        let tenants = match tenant {
            Some(t) => vec![t],
            None => install.store.tenants_with_keys().await?,
        };
        for t in tenants {
            let r = install.store.rotate_kek(&install.ring, &t).await?;
            install
                .audit
                .append(
                    Event::new("cli", "key.rotate.kek")
                        .target(format!("tenant:{t}"))
                        .detail("from_version", r.from_version)
                        .detail("to_version", r.to_version)
                        .detail("rewrapped", r.rewrapped),
                )
                .await?;
            println!("tenant {t}: kek v{} -> v{}, {} data keys rewrapped", r.from_version, r.to_version, r.rewrapped);
        }
    }
    install.close().await?;
    Ok(ExitCode::SUCCESS)
}
