//! Wiring of the secure portal: the [`Portal`] built from `[web]`. The hand-off and the
//! expiry job are the portal's own (`Portal::hand_over`, `Portal::expire_due`).

use carepost_secure::portal::{Portal, PortalSettings};

use crate::Installation;

/// The portal over the installation's store, keys and blobs. `public_url` is where links point.
pub fn portal(install: &Installation, public_url: String) -> Portal {
    let web = &install.config.web;
    let settings = PortalSettings {
        public_url,
        organization: web.organization.clone(),
        expiry_secs: i64::try_from(web.portal_expiry.as_secs()).unwrap_or(i64::MAX / 2_000_000),
        hostname: install.config.hostname.clone(),
    };
    Portal::new(install.store.clone(), install.ring.clone(), install.blobs.clone(), settings)
}
