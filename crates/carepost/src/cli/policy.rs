//! `carepost policy test`: what policy would decide for a message, changing nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use carepost_intake::inspect;
use carepost_model::{Address, Arrival, Envelope, Recipient, Source};
use carepost_policy::{Capabilities, Policy};
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Inspect MESSAGE.eml and print, for each recipient, the decision and the rule that made
    /// it. Reads the key directory to show the plan; sends nothing, stores nothing.
    Test {
        /// The message, as an .eml file.
        message: PathBuf,
        /// The envelope sender.
        #[arg(long, value_name = "ADDRESS")]
        from: Address,
        /// An envelope recipient (repeat for several).
        #[arg(long = "to", value_name = "ADDRESS", required = true)]
        to: Vec<Address>,
        /// Treat the message as sent with REQUIRETLS.
        #[arg(long)]
        require_tls: bool,
    },
}

pub async fn run(global: &Global, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Test { message, from, to, require_tls } = command;
    let (config, _) = global.load_config()?;
    let policy = Policy::new(config.policy.clone()).context("the [policy] configuration")?;
    let body = std::fs::read(&message).with_context(|| format!("{}", message.display()))?;
    let envelope = Envelope {
        mail_from: Some(from),
        recipients: to.iter().cloned().map(Recipient::new).collect(),
        dsn_ret: None,
        dsn_envid: None,
        require_tls,
        smtputf8: false,
        body: Default::default(),
    };
    let arrival = Arrival {
        source: Source::Submission,
        client_ip: None,
        helo: None,
        authenticated_as: None,
        tls: None,
        sender_auth: None,
    };
    let inspection =
        inspect(&body, &envelope, &arrival, &policy, &carepost_dlp::Limits::default(), &config.smtp.local_domains);
    let s = &inspection.summary;
    let entities: Vec<String> = s.entities.iter().map(|(e, n)| format!("{} {n}", e.as_str())).collect();
    println!("message:  {}", message.display());
    println!(
        "verdict:  {} (confidence {:.2}){}",
        s.verdict.as_str(),
        s.confidence,
        if s.incomplete { ", scan incomplete" } else { "" }
    );
    println!("entities: {}", if entities.is_empty() { "none".into() } else { entities.join(", ") });

    let directory = super::keys::directory_if_installed(&config).await?;
    for (recipient, decision) in to.iter().zip(&inspection.decisions) {
        println!();
        println!("to {recipient}");
        match decision.method {
            Some(m) => println!("  method:     {} (rule: {})", m.as_str(), decision.method_rule),
            None => println!("  method:     local delivery through the transport (inbound)"),
        }
        if let Some(text) = &decision.block {
            println!("  block:      {text}");
        }
        println!("  quarantine: {}", if decision.quarantine { "yes" } else { "no" });
        if !decision.notify.is_empty() {
            println!("  notify:     {}", decision.notify.join(", "));
        }
        for (name, value) in &decision.add_headers {
            println!("  add header: {name}: {value}");
        }
        if let Some(tag) = &decision.tag_subject {
            println!("  tag:        {tag}");
        }
        let caps = match &directory {
            Some(dir) => {
                let keys = dir.lookup(&carepost_model::TenantId::default(), recipient).await?;
                Capabilities { smime_certificate: !keys.smime.is_empty(), pgp_key: !keys.pgp.is_empty() }
            }
            None => Capabilities::default(),
        };
        let plan: Vec<&str> = decision.plan(caps).iter().map(step_name).collect();
        println!("  plan:       {}", plan.join(" -> "));
        println!(
            "  rules:      {}",
            if decision.matched_rules.is_empty() { "none".into() } else { decision.matched_rules.join(", ") }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn step_name(step: &carepost_policy::Step) -> &'static str {
    use carepost_policy::Step;
    match step {
        Step::Smime => "S/MIME",
        Step::Pgp => "OpenPGP",
        Step::TlsVerified => "verified TLS",
        Step::Transport => "transport",
        Step::Portal => "portal",
        Step::Hold => "hold",
        Step::Bounce => "bounce",
    }
}
