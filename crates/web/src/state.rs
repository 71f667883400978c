//! What every handler can reach: the configuration and carepost's services.

use std::sync::Arc;
use std::time::Duration;

use carepost_audit::Audit;
use carepost_identity::Identity;
use carepost_model::{ClientKey, TenantId};
use carepost_store::Store;
use carepost_vault::{BlobStore, KeyRing, VaultError};

use crate::WebConfig;
use crate::csrf::CsrfKey;
use crate::rate_limit::RateLimiter;
use crate::staff::StaffConfig;
use carepost_audit::{Event, Outcome};

use crate::ClientIp;

/// carepost's services as the binary opened them.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub ring: Arc<KeyRing>,
    pub blobs: Arc<dyn BlobStore>,
    pub audit: Audit,
    /// The way into the queue (inspection, policy, sealing): portal replies and one-time codes.
    pub intake: Arc<carepost_intake::Intake>,
    /// Messages kept for pick-up.
    pub portal: carepost_secure::portal::Portal,
    /// Failed sign-ins and blocked client addresses, shared with SMTP.
    pub guard: Arc<carepost_guard::Guard>,
    /// Accounts, sessions, second factors and lockout of staff and portal recipients alike,
    /// held to the installation's rules (`[staff]`, `[web]`): the identity room SMTP AUTH
    /// uses too.
    pub identity: Identity,
}

/// The shared state of every handler. Cheap to clone.
pub type WebState = Arc<WebContext>;

pub struct WebContext {
    pub config: WebConfig,
    /// Staff sign-in: sessions, lockout, password rules, new-address notices.
    pub staff: StaffConfig,
    /// Where links point: `web.public_url`, or `https://` and the bound address.
    pub public_url: String,
    pub services: Services,
    pub(crate) csrf: CsrfKey,
    /// Requests per client (address, or IPv6 /64) and minute.
    pub(crate) requests: RateLimiter<ClientKey>,
    /// The `Strict-Transport-Security` value of every response.
    pub(crate) hsts: axum::http::HeaderValue,
    /// WebAuthn for staff security keys; `None` when the public URL's host cannot be a
    /// WebAuthn relying party (an IP address).
    pub(crate) webauthn: Option<carepost_identity::webauthn::RelyingParty>,
}

impl std::fmt::Debug for WebContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebContext").field("public_url", &self.public_url).finish()
    }
}

impl WebContext {
    /// Builds the state. The CSRF key is derived from the default tenant's blind-index secret,
    /// so tokens stay valid across restarts and on every node.
    pub fn new(
        config: WebConfig,
        staff: StaffConfig,
        public_url: String,
        services: Services,
    ) -> Result<WebState, VaultError> {
        let csrf_secret = services.ring.blind_index(&TenantId::default(), "web-csrf-key", b"carepost")?;
        let requests = RateLimiter::new(config.requests_per_minute, Duration::from_secs(60));
        let hsts = axum::http::HeaderValue::from_str(&config.hsts())
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("max-age=31536000; includeSubDomains"));
        let webauthn = carepost_identity::webauthn::relying_party(&public_url, &config.organization);
        Ok(Arc::new(WebContext {
            csrf: CsrfKey::new(&csrf_secret),
            requests,
            hsts,
            webauthn,
            config,
            staff,
            public_url,
            services,
        }))
    }

    /// The organization named in carepost's own mail: `web.organization`, or the host name.
    pub fn organization_name(&self) -> String {
        if self.config.organization.is_empty() {
            self.services.portal.settings().hostname.clone()
        } else {
            self.config.organization.clone()
        }
    }
}

/// Appends an audit record; a failure to audit is logged (the step itself already happened).
pub(crate) async fn audit(
    state: &WebState,
    ip: ClientIp,
    actor: &str,
    action: &str,
    target: &str,
    outcome: Outcome,
    details: &[(&str, String)],
) {
    let mut event = Event::new(actor, action).target(target).ip(Some(ip.0)).outcome(outcome);
    for (k, v) in details {
        event = event.detail(*k, v);
    }
    if let Err(e) = state.services.audit.append(event).await {
        tracing::error!(error = %e, action, "cannot audit a web step");
    }
}
