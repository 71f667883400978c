//! Wiring of intake from `[policy]`, `[smtp]` and `[secure]`: the one way in that SMTP, the
//! REST API and the portal reply share.

use std::sync::Arc;

use anyhow::Context;
use carepost_intake::{CertificateLearning, Intake, IntakeSettings};
use carepost_model::Address;
use carepost_policy::Policy;
use carepost_secure::directory::KeyDirectory;
use carepost_spool::Spool;

use crate::Installation;

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
