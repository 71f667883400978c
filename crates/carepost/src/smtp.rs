//! Wiring of the SMTP listeners: intake (inspection, policy, spool) as their way into the queue, local accounts for
//! AUTH, the client-address guard, sender verification and the TLS identity.

use std::sync::Arc;

use anyhow::Context;
use carepost_guard::Guard;
use carepost_smtp::{IntakeIngress, RunningServer, SenderVerifier, Services, SmtpServer, StoreAuthenticator};
use carepost_spool::Spool;

use crate::Installation;
use crate::tls::TlsIdentity;

/// Binds the configured listeners and starts serving.
pub async fn start(install: &Installation, spool: &Spool, tls: &TlsIdentity) -> anyhow::Result<RunningServer> {
    let config = &install.config;
    let smtp = config.smtp.clone();
    let tls_config = carepost_smtp::tls::server_config(&tls.cert_file, &tls.key_file)
        .with_context(|| format!("loading the TLS certificate {}", tls.cert_file.display()))?;
    let guard = Guard::load(smtp.guard_settings(), install.store.clone(), install.audit.clone()).await?;
    let verifier = if smtp.verify_senders && smtp.mx_listen.0.is_some() {
        Some(Arc::new(SenderVerifier::new(&smtp.dns_servers, &config.hostname, smtp.dmarc_enforcement)?))
    } else {
        None
    };
    let services = Services {
        ingress: Arc::new(IntakeIngress::new(crate::intake::intake(install, spool)?)),
        authenticator: Arc::new(StoreAuthenticator::new(install.identity())),
        guard: Arc::new(guard),
        verifier,
        tls: Some(tls_config),
    };
    let server = SmtpServer::bind(smtp, &config.hostname, services).await?;
    Ok(server.start())
}
