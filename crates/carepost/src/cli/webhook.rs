//! `carepost webhook`: endpoints that receive signed delivery events.

use std::process::ExitCode;

use anyhow::bail;
use carepost::install::{Access, Installation};
use carepost_audit::{Event, Outcome};
use carepost_delivery::webhooks::endpoints::{self, EndpointError};
use carepost_delivery::webhooks::{DEFAULT_EVENTS, Dispatcher};
use carepost_model::{TenantId, Timestamp};
use carepost_store::webhooks::EndpointRow;
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Register an endpoint and print its signing secret once.
    Add {
        /// Where events are POSTed: https:// (http:// to loopback only with
        /// webhooks.allow_http_loopback); never a loopback, private, link-local or metadata
        /// address unless webhooks.allowed_networks lists it.
        url: String,
        /// Comma-separated event types. Default: delivered,deferred,bounced,opened,retracted.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// List endpoints and how their deliveries stand (never their secrets).
    List,
    /// Remove an endpoint by its id: nothing more is sent to it and its secret is destroyed.
    Remove { id: String },
    /// Send a signed `test` event to an endpoint now and print its answer.
    Test { id: String },
}

pub async fn run(global: &Global, command: WebhookCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let install = Installation::open(config, Access::Shared).await?;
    let result = run_with(&install, command).await;
    // Signs the audit head this command wrote.
    let closed = install.close().await;
    result.and_then(|code| closed.map(|()| code))
}

fn describe(e: &EndpointRow, counts: &[(String, i64)]) -> String {
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    format!(
        "{}  {}  tenant={}  events={}  created={}  pending={} delivered={} failed={}{}",
        e.id,
        e.url,
        e.tenant,
        e.events.join(","),
        Timestamp::from_micros(e.created_at).to_rfc3339(),
        count("pending"),
        count("delivered"),
        count("failed"),
        if e.removed_at.is_some() { "  removed" } else { "" },
    )
}

async fn active(install: &Installation, id: &str) -> anyhow::Result<EndpointRow> {
    let id = id.trim().to_ascii_uppercase();
    match install.store.webhook_endpoint(&id).await? {
        Some(e) if e.removed_at.is_none() => Ok(e),
        _ => bail!("no webhook endpoint with the id '{id}'"),
    }
}

async fn run_with(install: &Installation, command: WebhookCommand) -> anyhow::Result<ExitCode> {
    let spool = super::spool_of(install);
    let config = &install.config.webhooks;
    match command {
        WebhookCommand::Add { url, events, tenant } => {
            let (endpoint, secret) = match endpoints::add(&spool, "cli", &tenant, &url, &events, config).await {
                Err(e @ (EndpointError::Url(_) | EndpointError::UnknownEvent(..))) => bail!("{e}"),
                other => other?,
            };
            eprintln!(
                "webhook endpoint {} added for {} (events: {}). Its signing secret, shown once:",
                endpoint.id,
                endpoint.url,
                endpoint.events.join(",")
            );
            println!("{secret}");
        }
        WebhookCommand::List => {
            let all = install.store.webhook_endpoints(true).await?;
            if all.is_empty() {
                println!(
                    "no webhook endpoints (carepost webhook add URL; default events {})",
                    DEFAULT_EVENTS.join(",")
                );
            }
            for e in all {
                let counts = install.store.webhook_delivery_counts(&e.id).await?;
                println!("{}", describe(&e, &counts));
            }
        }
        WebhookCommand::Remove { id } => {
            let endpoint = active(install, &id).await?;
            endpoints::remove(&spool, "cli", &endpoint.id).await?;
            println!("webhook endpoint {} removed", endpoint.id);
        }
        WebhookCommand::Test { id } => {
            let endpoint = active(install, &id).await?;
            let dispatcher = Dispatcher::new(spool.clone(), config.clone()).map_err(anyhow::Error::msg)?;
            let result = dispatcher.send_test(&endpoint).await;
            let event = Event::new("cli", "webhook.test").target(format!("webhook:{}", endpoint.id));
            match result {
                Ok((event_id, status)) => {
                    let ok = (200..300).contains(&status);
                    let outcome = if ok { Outcome::Success } else { Outcome::Failure };
                    install.audit.append(event.outcome(outcome).detail("status", status)).await?;
                    println!("test event {event_id}: HTTP {status}");
                    if !ok {
                        return Ok(ExitCode::from(1));
                    }
                }
                Err(why) => {
                    install.audit.append(event.outcome(Outcome::Failure)).await?;
                    bail!("test event not delivered: {why}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
