//! carepost's HTTPS face: the secure portal where recipients without S/MIME or OpenPGP keys
//! read protected mail and reply to it, with room for the REST API and the admin console.
//!
//! Server-rendered HTML (askama templates, one plain stylesheet, no scripts), served over the
//! same TLS configuration as SMTP. Every response passes through [`security::layer`]: strict
//! Content-Security-Policy, HSTS, frame denial, no caching, a per-address rate limit, and
//! error pages that reveal nothing. Every form carries a CSRF token ([`csrf`]); cookies are
//! `__Host-` prefixed, Secure, HttpOnly and SameSite=Strict ([`cookies`]).
//!
//! [`router`] composes the sub-routers; each area (`portal` for recipients, `api` for
//! applications, `staff` for the organization's own people) owns its routes under its own
//! path prefix and merges in there.

pub mod api;
pub mod assets;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod error;
mod pages;
pub mod portal;
pub mod problem;
pub mod rate_limit;
mod router;
pub mod security;
pub mod server;
mod signin;
pub mod staff;
mod state;

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// TOTP as the identity room computes it (tests compute codes with it).
pub use carepost_identity::totp;
pub use config::{WebConfig, WebConfigError};
pub use error::WebError;
pub use problem::Problem;
pub use router::router;
pub use server::{ClientAddr, RunningWeb, SHUTDOWN_GRACE, WebServer};
pub use staff::{StaffConfig, StaffConfigError};
pub use state::{Services, WebContext, WebState};

/// The address a request came from, for rate limits, blocks and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        parts
            .extensions
            .get::<ClientAddr>()
            .map(|a| ClientIp(carepost_model::canonical_ip(a.0.ip())))
            .ok_or_else(|| WebError::internal("request without a client address"))
    }
}

/// Seconds of a configured interval as microseconds, carepost's stored time unit; saturating,
/// so that an absurd setting cannot overflow a deadline.
pub(crate) fn micros(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX / 2_000_000).saturating_mul(1_000_000)
}
