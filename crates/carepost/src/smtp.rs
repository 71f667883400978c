//! Wiring of the SMTP listeners: intake (inspection, policy, spool) as their way into the queue, local accounts for
//! AUTH, stored blocks, sender verification and the TLS identity.

use std::sync::Arc;

use anyhow::Context;
use carepost_delivery::Spool;
use carepost_delivery::{CertificateLearning, Intake, IntakeSettings};
use carepost_model::Address;
use carepost_policy::Policy;
use carepost_secure::directory::KeyDirectory;
use carepost_smtp::{Guard, IntakeIngress, RunningServer, SenderVerifier, Services, SmtpServer, StoreAuthenticator};

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
        ingress: Arc::new(IntakeIngress::new(intake(install, spool)?)),
        authenticator: Arc::new(StoreAuthenticator::new(install.identity())),
        guard: Arc::new(guard),
        verifier,
        tls: Some(tls_config),
    };
    let server = SmtpServer::bind(smtp, &config.hostname, services).await?;
    Ok(server.start())
}

/// Inspection and policy in front of the spool, as every way in uses them.
pub fn intake(install: &Installation, spool: &Spool) -> anyhow::Result<Intake> {
    let config = &install.config;
    let policy = Policy::new(config.policy.clone()).context("the [policy] configuration")?;
    let notices_from = Address::parse(&format!("postmaster@{}", config.hostname))
        .with_context(|| format!("hostname '{}' does not make a valid postmaster address", config.hostname))?;
    let learning = if config.secure.learn_certificates {
        let review_notices_to = config
            .secure
            .key_review_address
            .clone()
            .or_else(|| config.policy.compliance_address.clone())
            .unwrap_or_else(|| notices_from.clone());
        Some(CertificateLearning {
            directory: KeyDirectory::new(install.store.clone(), install.ring.clone(), None),
            anchors: Arc::new(config.secure.anchors(|p| config.in_data_dir(p))?),
            review_notices_to,
        })
    } else {
        None
    };
    Ok(Intake::new(
        spool.clone(),
        Arc::new(policy),
        IntakeSettings {
            local_domains: config.smtp.local_domains.clone(),
            limits: Default::default(),
            notices_from,
            learning,
        },
    ))
}
