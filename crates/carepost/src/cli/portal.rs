//! `carepost portal`: see a message kept in the secure portal and withdraw it. Works while
//! `carepost serve` runs; every withdrawal is audited.

use std::process::ExitCode;

use carepost::{Access, Installation};
use carepost_audit::Event;
use carepost_secure::portal::{PortalError, Withdrawal, masked};
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum PortalCommand {
    /// One portal message: recipient (masked), state, expiry, and when and from where it was opened.
    Status { id: String },
    /// Withdraw a message: the recipient sees that it was withdrawn and its content is
    /// crypto-shredded (its data key and sealed copy deleted).
    Retract {
        id: String,
        /// Why, for the audit log.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },
}

pub async fn run(global: &Global, command: PortalCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let install = Installation::open(config, Access::Shared).await?;
    let portal = carepost::portal::portal(&install, install.config.web.public_url.clone());
    let code = match command {
        PortalCommand::Status { id } => match portal.message(&id).await {
            Ok(m) => {
                println!("portal message {}", m.row.id);
                println!("  recipient   {}", masked(&m.recipient));
                println!("  from queue  {}", m.row.source_message);
                println!("  created     {}", carepost_model::Timestamp::from_micros(m.row.created_at).to_rfc3339());
                println!("  expires     {}", carepost_model::Timestamp::from_micros(m.row.expires_at).to_rfc3339());
                println!(
                    "  state       {}{}",
                    m.row.state,
                    m.row.withdrawn_by.as_deref().map(|b| format!(" (by {b})")).unwrap_or_default()
                );
                let opens = portal.opens(&m).await?;
                println!("  opened      {} time(s)", opens.len());
                for o in opens {
                    let at = o.at.map(|t| t.to_rfc3339()).unwrap_or_default();
                    println!("    {at}  {}  {}", o.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()), o.agent);
                }
                ExitCode::SUCCESS
            }
            Err(PortalError::NotFound(_)) => {
                eprintln!("carepost: no portal message {id}");
                ExitCode::from(2)
            }
            Err(e) => return Err(e.into()),
        },
        PortalCommand::Retract { id, reason } => match portal.withdraw(&id, Withdrawal::Retracted, "admin").await {
            Ok(changed) => {
                let mut event =
                    Event::new("cli", "portal.retract").target(format!("portal:{id}")).detail("changed", changed);
                if !reason.is_empty() {
                    event = event.detail("reason", &reason);
                }
                install.audit.append(event).await?;
                if changed {
                    println!("withdrawn: portal message {id}; its content is deleted");
                } else {
                    println!("portal message {id} was already withdrawn");
                }
                ExitCode::SUCCESS
            }
            Err(PortalError::NotFound(_)) => {
                eprintln!("carepost: no portal message {id}");
                ExitCode::from(2)
            }
            Err(e) => return Err(e.into()),
        },
    };
    install.close().await?;
    Ok(code)
}
