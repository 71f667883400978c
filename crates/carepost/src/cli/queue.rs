//! `carepost queue`: see and steer the outbound queue. Works while `carepost serve` runs.

use std::process::ExitCode;

use carepost::{Access, Installation};
use carepost_delivery::queue_admin;
use clap::Subcommand;

use super::{Global, spool_of};

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Messages with recipients still to deliver, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// One message: sender, recipients, their state and last reply. Shows addresses; the
    /// look is recorded in the audit log.
    Show { id: String },
    /// Try the message's queued recipients now.
    Retry { id: String },
    /// Hold the message's queued recipients until released.
    Hold { id: String },
    /// Release held recipients for delivery now.
    Release { id: String },
    /// Stop delivering the message: open recipients are returned to the sender with REASON.
    Delete {
        id: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

pub async fn run(global: &Global, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let hostname = config.hostname.clone();
    let install = Installation::open(config, Access::Shared).await?;
    let spool = spool_of(&install);
    let code = match command {
        QueueCommand::List { limit } => {
            let entries = queue_admin::list(&spool, limit).await?;
            if entries.is_empty() {
                println!("the queue is empty");
            }
            for e in entries {
                let counts: Vec<String> = e.counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
                println!(
                    "{}  {}  {:>8} bytes  {:<10}  {}  attempts={}  next={}",
                    e.id,
                    e.received_at.to_rfc3339(),
                    e.size,
                    e.source,
                    counts.join(" "),
                    e.attempts,
                    e.next_attempt.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
                );
            }
            ExitCode::SUCCESS
        }
        QueueCommand::Show { id } => {
            let m = queue_admin::show(&spool, "cli", &id).await?;
            println!("message   {}", m.id);
            println!("tenant    {}", m.tenant);
            println!("received  {}  via {}  {} bytes  {}", m.received_at.to_rfc3339(), m.source, m.size, m.state);
            println!(
                "sender    <{}>{}",
                m.sender.as_deref().unwrap_or(""),
                if m.require_tls { "  REQUIRETLS" } else { "" }
            );
            for r in m.recipients {
                println!(
                    "  [{}] <{}>  {}  attempts={}  next={}{}{}",
                    r.idx,
                    r.address,
                    r.state,
                    r.attempts,
                    r.next_attempt.to_rfc3339(),
                    r.method.map(|m| format!("  via {m}")).unwrap_or_default(),
                    if r.require_verified_tls { "  verified-TLS required" } else { "" }
                );
                if let Some(reply) = r.last_reply {
                    println!("      last: {reply}");
                }
            }
            ExitCode::SUCCESS
        }
        QueueCommand::Retry { id } => report(queue_admin::retry(&spool, "cli", &id).await?, "recipients due now"),
        QueueCommand::Hold { id } => report(queue_admin::hold(&spool, "cli", &id).await?, "recipients held"),
        QueueCommand::Release { id } => report(queue_admin::release(&spool, "cli", &id).await?, "recipients released"),
        QueueCommand::Delete { id, reason } => {
            anyhow::ensure!(!reason.trim().is_empty(), "--reason must say why");
            report(
                queue_admin::delete(&spool, "cli", &id, &reason, &hostname).await?,
                "recipients returned to the sender",
            )
        }
    };
    // Signs the audit head this command wrote.
    install.close().await?;
    Ok(code)
}

fn report(n: u64, what: &str) -> ExitCode {
    println!("{n} {what}");
    ExitCode::SUCCESS
}
