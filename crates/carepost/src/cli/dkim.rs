//! `carepost dkim`: DKIM signing keys per domain (Ed25519 and RSA-2048, both signing).

use std::process::ExitCode;

use carepost::{Access, Installation};
use carepost_delivery::dkim;
use carepost_model::{TenantId, Timestamp};
use clap::Subcommand;

use super::{Global, spool_of};

#[derive(Subcommand, Debug)]
pub enum DkimCommand {
    /// Create the first keys of DOMAIN; they sign at once. Prints the DNS records to publish.
    Generate {
        domain: String,
        /// Selector base (default: the prefix from the config and today's date); keys get
        /// SELECTOR-ed and SELECTOR-rsa.
        #[arg(long)]
        selector: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// Create new keys for DOMAIN that start signing after delivery.dkim_rotation_overlap;
    /// the old ones sign until then and stay published for another overlap.
    Rotate {
        domain: String,
        #[arg(long)]
        selector: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// Keys, of one domain or all, with when they sign and until when they are published.
    List { domain: Option<String> },
}

pub async fn run(global: &Global, command: DkimCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let prefix = config.delivery.dkim_selector_prefix.clone();
    let overlap = config.delivery.dkim_rotation_overlap.duration();
    let install = Installation::open(config, Access::Shared).await?;
    let spool = spool_of(&install);
    let now = Timestamp::now();
    match command {
        DkimCommand::Generate { domain, selector, tenant } => {
            let selector = selector.unwrap_or_else(|| dkim::selector_base(&prefix, now));
            let keys = dkim::create_first(&spool, "cli", &tenant, &domain, &selector).await?;
            println!("DKIM keys for {} sign from now on. Publish:", keys[0].domain);
            for k in &keys {
                println!("{}._domainkey.{}. IN TXT \"{}\"", k.selector, k.domain, dkim::txt_record(k));
            }
        }
        DkimCommand::Rotate { domain, selector, tenant } => {
            let selector = selector.unwrap_or_else(|| dkim::selector_base(&prefix, now));
            let keys = dkim::rotate(&spool, "cli", &tenant, &domain, &selector, overlap).await?;
            println!(
                "new DKIM keys for {} sign from {}. Publish them before then:",
                keys[0].domain,
                Timestamp::from_micros(keys[0].active_from).to_rfc3339()
            );
            for k in &keys {
                println!("{}._domainkey.{}. IN TXT \"{}\"", k.selector, k.domain, dkim::txt_record(k));
            }
        }
        DkimCommand::List { domain } => {
            let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
            let keys = install.store.dkim_keys(domain.as_deref()).await?;
            if keys.is_empty() {
                println!("no DKIM keys");
            }
            let signing: Vec<String> = {
                let mut ids = Vec::new();
                let mut domains: Vec<&str> = keys.iter().map(|k| k.domain.as_str()).collect();
                domains.dedup();
                for d in domains {
                    let of_domain: Vec<_> = keys.iter().filter(|k| k.domain == d).cloned().collect();
                    ids.extend(dkim::signing(&of_domain, now).into_iter().map(|k| k.id.clone()));
                }
                ids
            };
            for k in &keys {
                let status = if signing.contains(&k.id) {
                    "signing"
                } else if k.active_from > now.as_micros() {
                    "upcoming"
                } else if k.retired_at.is_some_and(|r| r <= now.as_micros()) {
                    "retired"
                } else {
                    "published"
                };
                println!(
                    "{:<28} {:<24} {:<8} {:<9} from {}{}",
                    k.domain,
                    k.selector,
                    k.algorithm,
                    status,
                    Timestamp::from_micros(k.active_from).to_rfc3339(),
                    k.retired_at
                        .map(|r| format!("  unpublish {}", Timestamp::from_micros(r).to_rfc3339()))
                        .unwrap_or_default()
                );
            }
        }
    }
    // Signs the audit head this command wrote.
    install.close().await?;
    Ok(ExitCode::SUCCESS)
}
