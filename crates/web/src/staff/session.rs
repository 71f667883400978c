//! Staff sessions over HTTP: the identity room's token in a `__Host-` cookie of its own
//! (never the portal's). The room decides whether a session stands; this module reads the
//! cookie, audits the automatic log-off, and turns a missing or short session into 401/403.

use axum::http::HeaderMap;
use carepost_audit::Outcome;
use carepost_identity::{Kind, Permission, Resumed, Stage};

pub use carepost_identity::StaffSession;

use super::audit;
use crate::error::WebError;
use crate::signin::Door;
use crate::{ClientIp, WebState, cookies};

pub const COOKIE: &str = "cp_staff";

/// The request's session, if still valid. An idle or over-age session is ended (and the
/// automatic log-off audited); so is one whose account was disabled or lost web access since.
pub async fn current(state: &WebState, ip: ClientIp, headers: &HeaderMap) -> Result<Option<StaffSession>, WebError> {
    let Some(token) = cookies::get(headers, COOKIE) else { return Ok(None) };
    match state.services.identity.staff_session(token).await.map_err(WebError::internal)? {
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

/// Staff pages: a password alone reaches the second step, an account that must enroll a
/// second factor only the page to do it.
impl Door for StaffSession {
    const COOKIE: &'static str = COOKIE;
    const SIGNIN: &'static str = "/staff/signin";
    const SIGNED_OUT: (&'static str, &'static [(&'static str, &'static str)]) =
        ("staff.signout", &[("reason", "signed out")]);

    fn place(stage: &Stage) -> &'static str {
        match stage {
            Stage::Full => "/staff/",
            Stage::Enroll => "/staff/mfa",
            Stage::SecondFactor => "/staff/signin/mfa",
            Stage::OneMessage(_) => Self::SIGNIN,
        }
    }

    async fn current(state: &WebState, ip: ClientIp, headers: &HeaderMap) -> Result<Option<Self>, WebError> {
        current(state, ip, headers).await
    }

    fn parts(&self) -> (&carepost_identity::Session, carepost_identity::AccountRef) {
        (&self.session, self.who())
    }

    /// Counted per login and client, like a wrong password; the lock it causes is audited.
    async fn count_wrong_code(&self, state: &WebState, ip: ClientIp, locked_now: bool) {
        super::signin::failed(state, ip, &self.account, "totp", locked_now).await;
    }
}
