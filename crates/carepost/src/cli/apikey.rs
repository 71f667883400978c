//! `carepost apikey`: keys applications use for the REST API.

use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, bail};
use carepost::install::{Access, Installation};
use carepost_audit::Event;
use carepost_guard::Network;
use carepost_identity::api_keys::KeyRequest;
use carepost_identity::{ApiKey, IdentityError};
use carepost_model::{Address, TenantId, Timestamp};
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Create a key and print it once; only its hash is kept.
    Create {
        /// What the key is for (unique among the tenant's active keys).
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: send, status, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        /// A network (CIDR) the key may be used from; repeatable. Default: anywhere.
        #[arg(long = "ip", value_name = "CIDR")]
        networks: Vec<String>,
        /// When the key stops working: a date (midnight UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// Requests the key may make per minute.
        #[arg(long, default_value_t = 600)]
        rate: u32,
        /// A From address the key may send with, or `@domain` for any address of a domain;
        /// repeatable or comma-separated. Default: any address of the tenant's own domains
        /// (its DKIM domains; for the default tenant also smtp.local_domains).
        #[arg(long = "from", value_name = "ADDRESS|@DOMAIN", value_delimiter = ',')]
        allowed_from: Vec<String>,
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id; it stops working at once.
    Revoke { id: String },
}

pub async fn run(global: &Global, command: ApikeyCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let install = Installation::open(config, Access::Shared).await?;
    let result = run_with(&install, command).await;
    // Signs the audit head this command wrote.
    let closed = install.close().await;
    result.and_then(|code| closed.map(|()| code))
}

fn audit_event(action: &str, key: &ApiKey) -> Event {
    Event::new("cli", action).target(format!("apikey:{}", key.id)).detail("tenant", key.tenant.as_str())
}

fn describe(k: &ApiKey, now: i64) -> String {
    let state = if k.revoked_at.is_some() {
        "revoked"
    } else if !k.is_usable(now) {
        "expired"
    } else {
        "active"
    };
    format!(
        "{}  {}...  {}  tenant={}  scopes={}  ip={}  from={}  rate={}/min  expires={}  created={}  {state}",
        k.id,
        k.prefix,
        k.name,
        k.tenant,
        k.scopes.join(","),
        if k.networks.is_empty() { "any".to_owned() } else { k.networks.join(",") },
        if k.allowed_from.is_empty() { "tenant-domains".to_owned() } else { k.allowed_from.join(",") },
        k.rate_per_minute,
        k.expires_at.map_or_else(|| "never".to_owned(), |e| Timestamp::from_micros(e).to_rfc3339()),
        Timestamp::from_micros(k.created_at).to_rfc3339(),
    )
}

/// `--from` values checked and lowercased: an address, or `@` and a domain.
fn allowed_senders(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let ok = match value.strip_prefix('@') {
            Some(domain) => !domain.is_empty() && Address::parse(&format!("postmaster@{domain}")).is_ok(),
            None => Address::parse(value).is_ok(),
        };
        if !ok || value.contains(',') {
            bail!("--from '{value}' is neither an address nor @domain");
        }
        let value = value.to_ascii_lowercase();
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

async fn run_with(install: &Installation, command: ApikeyCommand) -> anyhow::Result<ExitCode> {
    let identity = install.identity();
    match command {
        ApikeyCommand::Create { name, scope, networks, expires, rate, allowed_from, tenant } => {
            for n in &networks {
                Network::from_str(n).map_err(|_| anyhow::anyhow!("--ip '{n}' is not an address or a CIDR network"))?;
            }
            let expires_at = match &expires {
                None => None,
                Some(text) => Some(
                    Timestamp::parse(text)
                        .with_context(|| format!("--expires '{text}' is not a date (2027-01-31) or an RFC 3339 time"))?
                        .as_micros(),
                ),
            };
            let request = KeyRequest {
                tenant,
                name,
                scopes: scope,
                networks,
                rate_per_minute: rate,
                allowed_from: allowed_senders(&allowed_from)?,
                expires_at,
            };
            let (secret, key) = match identity.create_api_key(request).await {
                Err(IdentityError::Refused(reason)) => bail!("{reason}"),
                other => other?,
            };
            install
                .audit
                .append(
                    audit_event("apikey.create", &key)
                        .detail("scopes", key.scopes.join(","))
                        .detail("networks", key.networks.len())
                        .detail("senders", key.allowed_from.len()),
                )
                .await?;
            eprintln!("API key {} '{}' created (shown once; only its hash is kept):", key.id, key.name);
            println!("{secret}");
        }
        ApikeyCommand::List => {
            let keys = identity.api_keys().await?;
            if keys.is_empty() {
                println!("no API keys");
            }
            let now = Timestamp::now().as_micros();
            for k in keys {
                println!("{}", describe(&k, now));
            }
        }
        ApikeyCommand::Revoke { id } => {
            let id = id.trim().to_ascii_uppercase();
            let Some(key) = identity.api_key_by_id(&id).await? else { bail!("no API key with the id '{id}'") };
            if !identity.revoke_api_key(&key).await? {
                bail!("API key {id} was already revoked");
            }
            install.audit.append(audit_event("apikey.revoke", &key)).await?;
            println!("API key {id} '{}' revoked", key.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
