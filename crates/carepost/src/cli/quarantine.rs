//! `carepost quarantine`: review what policy held for a compliance officer. Works while
//! `carepost serve` runs; every look and decision is audited.

use std::process::ExitCode;

use carepost::{Access, Installation};
use carepost_audit::Event;
use carepost_delivery::quarantine;
use clap::Subcommand;

use super::{Global, spool_of};

#[derive(Subcommand, Debug)]
pub enum QuarantineCommand {
    /// Messages with quarantined recipients, newest first: verdict, counts and the rules that
    /// held them.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// One quarantined message: sender, held recipients, the DLP findings with their values,
    /// and (with --body) the message itself.
    Show {
        id: String,
        /// Print the whole message after the findings.
        #[arg(long)]
        body: bool,
    },
    /// Let the quarantined recipients continue to delivery, protected as policy decided.
    Release { id: String },
    /// Refuse the quarantined recipients; the sender gets a bounce with REASON.
    Reject {
        id: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

pub async fn run(global: &Global, command: QuarantineCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let hostname = config.hostname.clone();
    let install = Installation::open(config, Access::Shared).await?;
    let spool = spool_of(&install);
    match command {
        QuarantineCommand::List { limit } => {
            let held = quarantine::list(&spool, limit).await?;
            if held.is_empty() {
                println!("nothing is quarantined");
            }
            for m in held {
                let summary = m.inspection.as_deref().map(summary_line).unwrap_or_else(|| "not inspected".into());
                println!(
                    "{}  {}  {:<10} {:>8} bytes  {} held  {}  rules: {}",
                    m.id,
                    m.received_at.to_rfc3339(),
                    m.source,
                    m.size,
                    m.quarantined,
                    summary,
                    m.rules.join(", ")
                );
            }
        }
        QuarantineCommand::Show { id, body } => {
            let review = quarantine::show(&spool, &id).await?;
            install
                .audit
                .append(Event::new("cli", "quarantine.show").target(format!("msg:{id}")).detail("body", body))
                .await?;
            let m = &review.message;
            println!("message     {}", m.id);
            println!("received    {}  via {}  {} bytes", m.received_at.to_rfc3339(), m.source, m.size);
            println!("sender      <{}>", review.sender.as_deref().unwrap_or(""));
            println!(
                "held for    {}",
                review.recipients.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(" ")
            );
            println!("rules       {}", m.rules.join(", "));
            print!("{}", review.report.to_table(&m.id));
            if body {
                println!("----- message -----");
                println!("{}", String::from_utf8_lossy(&review.body));
            }
        }
        QuarantineCommand::Release { id } => {
            let n = quarantine::release(&spool, "cli", &id).await?;
            println!("{n} recipients released to delivery");
        }
        QuarantineCommand::Reject { id, reason } => {
            anyhow::ensure!(!reason.trim().is_empty(), "--reason must say why");
            let n = quarantine::reject(&spool, "cli", &id, &reason, &hostname).await?;
            println!("{n} recipients refused; the sender is told");
        }
    }
    // Signs the audit head this command wrote.
    install.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// "phi 0.97: US_SSN 2, MRN 1" from the stored inspection summary.
fn summary_line(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return "unreadable inspection".into() };
    let entities: Vec<String> =
        v["entities"].as_object().map(|m| m.iter().map(|(k, n)| format!("{k} {n}")).collect()).unwrap_or_default();
    format!(
        "{} {:.2}{}: {}",
        v["verdict"].as_str().unwrap_or("?"),
        v["confidence"].as_f64().unwrap_or(0.0),
        if v["incomplete"].as_bool() == Some(true) { " incomplete" } else { "" },
        if entities.is_empty() { "no entities".into() } else { entities.join(", ") }
    )
}
