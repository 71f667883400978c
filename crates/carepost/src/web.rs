//! Wiring of the HTTPS listener: the same TLS identity as SMTP, and carepost's services as
//! the web handlers' state.

use anyhow::Context;
use carepost_web::{RunningWeb, Services, WebContext, WebServer};

use crate::Installation;
use crate::tls::TlsIdentity;

/// Binds `web.listen` and starts serving; `None` when the listener is off.
pub async fn start(install: &Installation, spool: &carepost_delivery::Spool, tls: &TlsIdentity) -> anyhow::Result<Option<RunningWeb>> {
    let config = &install.config.web;
    config.validate()?;
    let Some(addr) = config.listen.0 else { return Ok(None) };
    let tls_config = carepost_smtp::tls::server_config(&tls.cert_file, &tls.key_file)
        .with_context(|| format!("loading the TLS certificate {}", tls.cert_file.display()))?;
    let server = WebServer::bind(addr, &tls_config).await.with_context(|| format!("web.listen: cannot listen on {addr}"))?;
    let public_url = config.public_url_for(server.local_addr()?);
    let services = Services {
        store: install.store.clone(),
        ring: install.ring.clone(),
        blobs: install.blobs.clone(),
        audit: install.audit.clone(),
        intake: std::sync::Arc::new(crate::smtp::intake(install, spool)?),
    };
    let state = WebContext::new(config.clone(), public_url, services)?;
    Ok(Some(server.start(carepost_web::router(state))?))
}
