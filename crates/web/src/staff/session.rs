//! Staff sessions over HTTP: the identity room's token in a `__Host-` cookie of its own
//! (never the portal's). The room decides whether a session stands; this module reads the
//! cookie, audits the automatic log-off, and turns a missing or short session into 401/403.

use axum::http::HeaderMap;
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_identity::{Kind, Permission, Resumed, Stage};

pub use carepost_identity::StaffSession;

use super::audit;
use crate::error::WebError;
use crate::{ClientIp, WebState, cookies};

pub const COOKIE: &str = "cp_staff";

/// The request's session, if still valid. An idle or over-age session is ended (and the
/// automatic log-off audited); so is one whose account was disabled or lost web access since.
pub async fn current(state: &WebState, ip: ClientIp, headers: &HeaderMap) -> Result<Option<StaffSession>, WebError> {
    let Some(token) = cookies::get(headers, COOKIE) else { return Ok(None) };
    match state.identity.staff_session(token).await.map_err(WebError::internal)? {
        Resumed::Live(s) => Ok(Some(s)),
        Resumed::Ended { account_id, idle } => {
            let reason = if idle { "idle" } else { "lifetime" };
            let (who, whom) = (Kind::Staff.actor(&account_id), Kind::Staff.target(&account_id));
            audit(state, ip, &who, "staff.signout", &whom, Outcome::Success, &[("reason", reason.into())]).await;
            Ok(None)
        }
        Resumed::Missing => Ok(None),
    }
}

/// A session in one of `stages`, or `Unauthorized`.
pub async fn require(
    state: &WebState,
    ip: ClientIp,
    headers: &HeaderMap,
    stages: &[Stage],
) -> Result<StaffSession, WebError> {
    match current(state, ip, headers).await? {
        Some(s) if stages.contains(&s.session.stage) => Ok(s),
        _ => Err(WebError::Unauthorized),
    }
}

/// A complete session whose role has `permission`, or `Unauthorized` / `Forbidden`. Every
/// staff route that shows or changes anything goes through here.
pub async fn require_role(
    state: &WebState,
    ip: ClientIp,
    headers: &HeaderMap,
    permission: Permission,
) -> Result<StaffSession, WebError> {
    let s = require(state, ip, headers, &[Stage::Full]).await?;
    if !carepost_identity::allows(s.role(), permission) {
        let who = s.who();
        audit(
            state,
            ip,
            &who.actor(),
            "staff.access",
            &who.target(),
            Outcome::Denied,
            &[("role", s.role().to_string())],
        )
        .await;
        return Err(WebError::Forbidden("Your role does not allow this.".into()));
    }
    Ok(s)
}

/// Sets the session cookie on `response`.
pub fn set(response: &mut Response, token: &str) {
    cookies::append(response.headers_mut(), cookies::set_cookie(COOKIE, token, None));
}
