//! Registering and removing webhook endpoints (`carepost webhook ...`). The signing secret
//! is shown once and kept sealed under the endpoint's own data key; removing the endpoint
//! shreds that key. Every change is audited.

use carepost_audit::{Event, Outcome};
use carepost_model::{Id, TenantId, Timestamp};
use carepost_store::events::kind;
use carepost_store::webhooks::{self as rows, EndpointRow};
use carepost_store::{StoreError, keys};

use super::target::TargetPolicy;
use super::{UrlError, WebhooksConfig, check_url, signature};
use crate::{Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("unknown event type '{0}': use {1}")]
    UnknownEvent(String, String),
    #[error("no webhook endpoint with the id '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl From<StoreError> for EndpointError {
    fn from(e: StoreError) -> Self {
        EndpointError::Spool(SpoolError::Store(e))
    }
}

impl From<carepost_vault::VaultError> for EndpointError {
    fn from(e: carepost_vault::VaultError) -> Self {
        EndpointError::Spool(SpoolError::Vault(e))
    }
}

/// The data-key object the endpoint's secret is sealed under.
pub fn secret_object(id: &str) -> String {
    format!("webhook/{id}")
}

/// Checks event kinds against those carepost records; duplicates collapse.
pub fn check_events(requested: &[String]) -> Result<Vec<String>, EndpointError> {
    let mut out: Vec<String> = Vec::new();
    for e in requested.iter().map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()) {
        if !kind::ALL.contains(&e.as_str()) {
            return Err(EndpointError::UnknownEvent(e, kind::ALL.join(", ")));
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.is_empty() {
        out = super::DEFAULT_EVENTS.iter().map(|e| (*e).to_owned()).collect();
    }
    Ok(out)
}

/// Registers an endpoint and returns it with its secret (to show once). A URL whose host is
/// (or resolves to) an address `config` does not permit is refused and the refusal audited.
pub async fn add(
    spool: &Spool,
    actor: &str,
    tenant: &TenantId,
    url: &str,
    events: &[String],
    config: &WebhooksConfig,
) -> Result<(EndpointRow, String), EndpointError> {
    let url = check_url(url, config.allow_http_loopback)?;
    let events = check_events(events)?;
    if let Err(e) = TargetPolicy::from_config(config)?.check_url_host(&url).await {
        let event = Event::new(actor, "webhook.add")
            .outcome(Outcome::Denied)
            .detail("tenant", tenant.as_str())
            .detail("host", url.host_str().unwrap_or(""))
            .detail("reason", e.to_string());
        spool
            .audit()
            .append(event)
            .await
            .map_err(|a| SpoolError::Corrupt { id: "webhook".into(), reason: a.to_string() })?;
        return Err(e.into());
    }
    let secret = signature::generate_secret().map_err(|_| SpoolError::Corrupt {
        id: "webhook".into(),
        reason: "the system random number generator failed".into(),
    })?;
    let id = Id::new().to_string();
    let object = secret_object(&id);
    let (key, wrapped) = spool.ring().new_data_key(tenant, &object)?;
    let row = EndpointRow {
        id: id.clone(),
        tenant: tenant.to_string(),
        url: url.to_string(),
        events,
        secret: key.seal_field("secret", secret.as_bytes())?,
        cursor: 0,
        created_at: Timestamp::now().as_micros(),
        removed_at: None,
    };
    let event = Event::new(actor, "webhook.add")
        .target(format!("webhook:{id}"))
        .detail("tenant", tenant.as_str())
        .detail("events", row.events.join(","))
        .detail("scheme", url.scheme());
    let (r, t, audit) = (row.clone(), tenant.clone(), spool.audit().clone());
    spool
        .store()
        .write(move |tx| {
            Box::pin(async move {
                keys::put_data_key(tx, &t, &object, &wrapped).await?;
                rows::insert_endpoint(tx, &r).await?;
                audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(())
            })
        })
        .await?;
    Ok((row, secret))
}

/// Removes an endpoint: nothing more is sent to it and its secret is shredded.
pub async fn remove(spool: &Spool, actor: &str, id: &str) -> Result<EndpointRow, EndpointError> {
    let row = spool
        .store()
        .webhook_endpoint(id)
        .await?
        .filter(|r| r.removed_at.is_none())
        .ok_or_else(|| EndpointError::NotFound(id.to_owned()))?;
    let tenant =
        TenantId::new(&row.tenant).map_err(|e| SpoolError::Corrupt { id: id.to_owned(), reason: e.to_string() })?;
    let event = Event::new(actor, "webhook.remove").target(format!("webhook:{id}")).detail("tenant", tenant.as_str());
    let (id_owned, audit) = (id.to_owned(), spool.audit().clone());
    let removed = spool
        .store()
        .write(move |tx| {
            Box::pin(async move {
                let removed = rows::remove_endpoint(tx, &id_owned, Timestamp::now().as_micros()).await?;
                if removed {
                    keys::shred_data_key(tx, &tenant, &secret_object(&id_owned)).await?;
                    audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                }
                Ok(removed)
            })
        })
        .await?;
    if !removed {
        return Err(EndpointError::NotFound(id.to_owned()));
    }
    Ok(row)
}

/// The endpoint's signing secret, opened.
pub async fn secret(spool: &Spool, endpoint: &EndpointRow) -> Result<String, EndpointError> {
    let tenant = TenantId::new(&endpoint.tenant)
        .map_err(|e| SpoolError::Corrupt { id: endpoint.id.clone(), reason: e.to_string() })?;
    let key = spool.store().data_key(spool.ring(), &tenant, &secret_object(&endpoint.id)).await?;
    let plain = key.open_field("secret", &endpoint.secret)?;
    String::from_utf8(plain)
        .map_err(|e| EndpointError::Spool(SpoolError::Corrupt { id: endpoint.id.clone(), reason: e.to_string() }))
}
