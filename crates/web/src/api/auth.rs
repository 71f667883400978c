//! Bearer authentication with API keys: the identity room checks the key (known, active,
//! from an allowed network) and its scopes and senders; this module reads the header,
//! applies the per-key request rate, and audits refusals.

use std::net::IpAddr;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use carepost_audit::{Event, Outcome};
use carepost_identity::ApiKey;
use carepost_identity::permission::{key_allows, listed_sender};
use carepost_model::Address;

use super::{ApiError, ApiShared};
use crate::WebState;

/// The authenticated key behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
    pub ip: IpAddr,
}

impl Caller {
    /// The actor named in the audit log.
    pub fn actor(&self) -> String {
        format!("apikey:{}", self.key.id)
    }

    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if key_allows(&self.key, scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this API key does not have the '{scope}' scope")))
        }
    }

    /// Passes a parsed request through, auditing a body refused for a bare carriage return
    /// (an attempt to smuggle a second message past the next mail server).
    pub(crate) async fn audit_refused<T>(&self, state: &WebState, parsed: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(ApiError::Invalid { field, detail }) = &parsed
            && detail == super::compose::BARE_CR
        {
            let event = Event::new(self.actor(), "api.message")
                .target(format!("apikey:{}", self.key.id))
                .ip(Some(self.ip))
                .outcome(Outcome::Denied)
                .detail("reason", "bare CR")
                .detail("field", field.clone().unwrap_or_default());
            append(state, event).await;
        }
        parsed
    }

    /// Refuses a From address the key may not use (`carepost apikey create --from`); the
    /// refusal is audited. `field` names the member of the request.
    pub(crate) async fn require_sender(&self, state: &WebState, from: &Address, field: &str) -> Result<(), ApiError> {
        // A key without a list may still send only as its own organization: the From is what
        // carepost signs with DKIM and what recipients trust.
        let allowed = if self.key.allowed_from.is_empty() {
            state.services.intake.is_tenant_domain(&self.key.tenant, from.domain()).await.map_err(ApiError::internal)?
        } else {
            listed_sender(&self.key.allowed_from, from)
        };
        if allowed {
            return Ok(());
        }
        let event = Event::new(self.actor(), "api.sender")
            .target(format!("apikey:{}", self.key.id))
            .ip(Some(self.ip))
            .outcome(Outcome::Denied)
            .detail_hashed("from", from.as_str().as_bytes());
        append(state, event).await;
        let may = if self.key.allowed_from.is_empty() {
            format!("it may send only from the domains of its tenant ({})", self.key.tenant)
        } else {
            format!("it may send from {}", self.key.allowed_from.join(", "))
        };
        Err(ApiError::Forbidden(format!("{field}: this API key may not send from {from}; {may}")))
    }
}

/// The caller of a sending endpoint: authenticated, with the `send` scope.
pub(crate) async fn sending_caller(
    state: &WebState,
    shared: &ApiShared,
    headers: &HeaderMap,
    ip: IpAddr,
) -> Result<Caller, ApiError> {
    let caller = authenticate(state, shared, headers, ip).await?;
    caller.require("send")?;
    Ok(caller)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Finds and checks the key a request names: known, unrevoked, unexpired, used from an
/// allowed network, within its rate. Refusals of a presented key are audited.
pub(crate) async fn authenticate(
    state: &WebState,
    shared: &ApiShared,
    headers: &HeaderMap,
    ip: IpAddr,
) -> Result<Caller, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::Unauthorized("an API key is required: Authorization: Bearer <key>"));
    };
    let audit = |outcome: Outcome, reason: &str, key: Option<&ApiKey>| {
        let mut event =
            Event::new(key.map_or_else(|| "apikey:unknown".to_owned(), |k| format!("apikey:{}", k.id)), "api.auth")
                .ip(Some(ip))
                .outcome(outcome)
                .detail("reason", reason);
        if let Some(k) = key {
            event = event.target(format!("apikey:{}", k.id));
        }
        event
    };
    let checked = state.services.identity.api_key(token, ip).await.map_err(ApiError::internal)?;
    let key = match checked {
        Ok(key) => key,
        Err(refused) => {
            append(state, audit(Outcome::Denied, refused.reason(), refused.key())).await;
            return Err(match refused {
                carepost_identity::api_keys::KeyRefused::Unknown => ApiError::Unauthorized("the API key is not valid"),
                carepost_identity::api_keys::KeyRefused::Network(_) => {
                    ApiError::Forbidden("this API key may not be used from this address".into())
                }
                _ => ApiError::Unauthorized("the API key is revoked or expired"),
            });
        }
    };
    shared.check_rate(&key.id, key.rate_per_minute).map_err(ApiError::RateLimited)?;
    Ok(Caller { key, ip })
}

/// Appends an audit event; a failure is logged (the request is refused anyway).
pub(crate) async fn append(state: &WebState, event: Event) {
    if let Err(e) = state.services.audit.append(event).await {
        tracing::error!(error = %e, "cannot audit an API request");
    }
}
