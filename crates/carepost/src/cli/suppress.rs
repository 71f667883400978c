//! `carepost suppress`: the per-tenant list of addresses carepost does not send to.

use std::process::ExitCode;

use carepost::{Access, Installation};
use carepost_delivery::suppression::{self, SuppressionReason};
use carepost_model::{Address, TenantId};
use clap::{Subcommand, ValueEnum};

use super::{Global, spool_of};

#[derive(Subcommand, Debug)]
pub enum SuppressCommand {
    /// Every suppressed address of the tenant, with why and since when.
    List {
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// Stop sending to ADDRESS.
    Add {
        address: Address,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        #[arg(long, value_enum, default_value_t = Reason::Manual)]
        reason: Reason,
        /// A note kept (sealed) with the entry.
        #[arg(long)]
        note: Option<String>,
    },
    /// Send to ADDRESS again.
    Remove {
        address: Address,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Reason {
    HardBounce,
    Complaint,
    Unsubscribe,
    Manual,
}

pub async fn run(global: &Global, command: SuppressCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let install = Installation::open(config, Access::Shared).await?;
    let spool = spool_of(&install);
    let code = match command {
        SuppressCommand::List { tenant } => {
            let entries = suppression::list(&spool, &tenant).await?;
            if entries.is_empty() {
                println!("no suppressed addresses");
            }
            for e in entries {
                println!(
                    "{}  {:<12} {}{}",
                    e.created_at.to_rfc3339(),
                    e.reason,
                    e.address,
                    e.detail.map(|d| format!("  ({d})")).unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        SuppressCommand::Add { address, tenant, reason, note } => {
            let reason = match reason {
                Reason::HardBounce => SuppressionReason::HardBounce,
                Reason::Complaint => SuppressionReason::Complaint,
                Reason::Unsubscribe => SuppressionReason::Unsubscribe,
                Reason::Manual => SuppressionReason::Manual,
            };
            if suppression::add(&spool, "cli", &tenant, &address, reason, note.as_deref()).await? {
                println!("suppressed");
            } else {
                println!("already suppressed");
            }
            ExitCode::SUCCESS
        }
        SuppressCommand::Remove { address, tenant } => {
            if suppression::remove(&spool, "cli", &tenant, &address).await? {
                println!("removed");
                ExitCode::SUCCESS
            } else {
                eprintln!("carepost: that address is not suppressed");
                ExitCode::from(1)
            }
        }
    };
    // Signs the audit head this command wrote.
    install.close().await?;
    Ok(code)
}
