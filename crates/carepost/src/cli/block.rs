//! `carepost block`: client networks refused by SMTP.

use std::process::ExitCode;

use anyhow::{Context, bail};
use carepost::install::{Access, Installation};
use carepost_audit::{Event, Outcome};
use carepost_guard::Network;
use carepost_model::Timestamp;
use carepost_store::accounts::BlockRow;
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum BlockCommand {
    /// List the blocks in force.
    List,
    /// Refuse a client address or network. A running server sees it within seconds.
    Add {
        /// An address (192.0.2.7) or CIDR network (192.0.2.0/24).
        network: Network,
        /// How long: seconds, or a number with s, m, h or d (90m, 12h, 7d). Default: until removed.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why, for the list and the audit log.
        #[arg(long, default_value = "blocked by an administrator")]
        reason: String,
    },
    /// Lift a block (automatic or manual).
    Remove { network: Network },
}

/// Seconds in `90`, `90s`, `15m`, `12h` or `7d`.
fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits.parse().with_context(|| format!("'{text}' is not a duration such as 90m, 12h or 7d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("'{text}' is not a duration such as 90m, 12h or 7d"),
    };
    if n <= 0 {
        bail!("a block lasts at least one second");
    }
    n.checked_mul(unit).context("duration too long")
}

pub async fn run(global: &Global, command: BlockCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let install = Installation::open(config, Access::Shared).await?;
    let result = run_with(&install, command).await;
    // Signs the audit head this command wrote.
    let closed = install.close().await;
    result.and_then(|code| closed.map(|()| code))
}

async fn run_with(install: &Installation, command: BlockCommand) -> anyhow::Result<ExitCode> {
    match command {
        BlockCommand::List => {
            let blocks = install.store.active_blocks(Timestamp::now().as_micros()).await?;
            if blocks.is_empty() {
                println!("no blocks");
            }
            for b in blocks {
                let until =
                    b.until.map(|u| Timestamp::from_micros(u).to_rfc3339()).unwrap_or_else(|| "until removed".into());
                println!("{}  until={until}  by={}  reason={}", b.network, b.created_by, b.reason);
            }
        }
        BlockCommand::Add { network, duration, reason } => {
            let now = Timestamp::now();
            let until = duration.as_deref().map(parse_duration).transpose()?.map(|s| now.plus_seconds(s));
            install
                .store
                .put_block(BlockRow {
                    network: network.to_string(),
                    until: until.map(Timestamp::as_micros),
                    reason: reason.clone(),
                    created_by: "cli".into(),
                    created_at: now.as_micros(),
                })
                .await?;
            let mut event = Event::new("cli", "smtp.block")
                .target(format!("ip:{network}"))
                .outcome(Outcome::Denied)
                .detail("reason", &reason);
            if let Some(u) = until {
                event = event.detail("until", u.to_rfc3339());
            }
            install.audit.append(event).await?;
            match until {
                Some(u) => println!("{network} blocked until {}", u.to_rfc3339()),
                None => println!("{network} blocked until removed"),
            }
        }
        BlockCommand::Remove { network } => {
            if !install.store.remove_block(&network.to_string()).await? {
                bail!("{network} is not blocked (give the network exactly as `carepost block list` shows it)");
            }
            install.audit.append(Event::new("cli", "smtp.unblock").target(format!("ip:{network}"))).await?;
            println!("{network} unblocked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("2d").unwrap(), 172800);
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
