//! Wiring of the HTTPS listener: the same TLS identity as SMTP, and carepost's services as
//! the web handlers' state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use carepost_guard::{Guard, GuardSettings};
use carepost_secure::portal::Portal;
use carepost_spool::Spool;
use carepost_web::{RunningWeb, Services, WebContext, WebServer};

use crate::Installation;
use crate::tls::TlsIdentity;

/// The HTTPS side as `serve` started it.
pub struct Web {
    /// The listener; `None` when `web.listen` is off.
    pub running: Option<RunningWeb>,
    /// The secure portal, when links to it can be made (a listener, or `web.public_url`).
    pub portal: Option<Portal>,
}

/// Binds `web.listen` and starts serving. Portal replies and one-time codes enter the queue
/// through `spool`, like everything else.
pub async fn start(install: &Installation, tls: &TlsIdentity, spool: &Spool) -> anyhow::Result<Web> {
    let config = &install.config.web;
    config.validate()?;
    install.config.staff.validate()?;
    let Some(addr) = config.listen.0 else {
        let portal = (!config.public_url.is_empty()).then(|| crate::portal::portal(install, config.public_url.clone()));
        return Ok(Web { running: None, portal });
    };
    let tls_config = carepost_smtp::tls::server_config(&tls.cert_file, &tls.key_file)
        .with_context(|| format!("loading the TLS certificate {}", tls.cert_file.display()))?;
    let server =
        WebServer::bind(addr, &tls_config).await.with_context(|| format!("web.listen: cannot listen on {addr}"))?;
    let public_url = config.public_url_for(server.local_addr()?);
    let portal = crate::portal::portal(install, public_url.clone());
    let guard_settings = GuardSettings {
        failures_per_ip: config.ip_failures,
        // An account's own failures lock it in the store ([staff]); beyond that many from one
        // client they stop counting toward the client, as in SMTP.
        failures_per_login: install.config.staff.lockout_failures.max(1),
        failures_per_account: u32::MAX,
        window: Duration::from_secs(config.failure_window.as_secs()),
        block_for: Duration::from_secs(config.block_duration.as_secs()),
        trusted: install.config.smtp.trusted_networks.clone(),
    };
    let guard = Arc::new(Guard::load(guard_settings, install.store.clone(), install.audit.clone()).await?);
    {
        // Blocks made by SMTP or `carepost block` reach the web guard too.
        let guard = guard.clone();
        crate::jobs::every(carepost_guard::REFRESH_EVERY, move || {
            let guard = guard.clone();
            async move {
                if let Err(e) = guard.refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the web's address blocks");
                }
            }
        });
    }
    let services = Services {
        store: install.store.clone(),
        ring: install.ring.clone(),
        blobs: install.blobs.clone(),
        audit: install.audit.clone(),
        intake: Arc::new(crate::intake::intake(install, spool)?),
        portal: portal.clone(),
        guard,
        identity: install.identity(),
    };
    let state = WebContext::new(config.clone(), install.config.staff.clone(), public_url, services)?;
    Ok(Web { running: Some(server.start(carepost_web::router(state))?), portal: Some(portal) })
}
