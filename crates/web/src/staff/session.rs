//! Staff sessions: a random id in a `__Host-` cookie of its own (never the portal's), only
//! its SHA-256 in the store; an idle timeout and an absolute lifetime from `[staff]`; and
//! stages, so that a password alone reaches nothing but the second-factor or enrollment
//! pages.

use axum::http::HeaderMap;
use axum::response::Response;
use carepost_audit::Outcome;
use carepost_model::Timestamp;
use carepost_store::accounts::{Account, Role};
use carepost_store::staff::{StaffAuth, StaffSessionRow};

use super::{actor, audit, target};
use crate::error::WebError;
use crate::portal::session::hash;
use crate::{ClientIp, WebState, cookies, csrf, micros};

pub const COOKIE: &str = "cp_staff";

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Signed in completely.
    Full,
    /// The password was right; a second factor is due.
    Mfa,
    /// The password was right; the organization requires a second factor and the account
    /// has none: enrolling one is the only thing it may do.
    Enroll,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Full => "full",
            Stage::Mfa => "mfa",
            Stage::Enroll => "enroll",
        }
    }

    fn parse(s: &str) -> Option<Stage> {
        [Stage::Full, Stage::Mfa, Stage::Enroll].into_iter().find(|st| st.as_str() == s)
    }
}

/// A staff member's browser.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub id_hash: Vec<u8>,
    pub row: StaffSessionRow,
    pub stage: Stage,
    pub account: Account,
    pub auth: StaffAuth,
}

impl StaffSession {
    pub fn role(&self) -> Role {
        self.account.role
    }
}

/// The request's session, if still valid. An idle or over-age session is ended (and the
/// automatic log-off audited); so is one whose account was disabled or lost web access since.
pub async fn current(state: &WebState, ip: ClientIp, headers: &HeaderMap) -> Result<Option<StaffSession>, WebError> {
    let Some(id) = cookies::get(headers, COOKIE).filter(|v| v.len() == 43) else { return Ok(None) };
    let id_hash = hash(id);
    let store = &state.services.store;
    let Some(row) = store.staff_session(&id_hash).await.map_err(WebError::internal)? else { return Ok(None) };
    let now = Timestamp::now().as_micros();
    let idle = now - row.last_seen_at > micros(state.staff.session_idle.as_secs());
    if now >= row.expires_at || idle {
        store.end_staff_sessions(Some(id_hash), None).await.map_err(WebError::internal)?;
        let reason = if idle { "idle" } else { "lifetime" };
        audit(
            state,
            ip,
            &actor(&row.account_id),
            "staff.signout",
            &target(&row.account_id),
            Outcome::Success,
            &[("reason", reason.into())],
        )
        .await;
        return Ok(None);
    }
    let account = store.account_by_id(&state.services.ring, &row.account_id).await.map_err(WebError::internal)?;
    let auth = store.staff_auth(&row.account_id).await.map_err(WebError::internal)?;
    let (Some(account), Some(auth), Some(stage)) = (account, auth, Stage::parse(&row.stage)) else { return Ok(None) };
    if account.disabled || !account.role.may_sign_in_to_web() {
        store.end_staff_sessions(Some(id_hash), None).await.map_err(WebError::internal)?;
        return Ok(None);
    }
    store.touch_staff_session(&id_hash, now, None).await.map_err(WebError::internal)?;
    Ok(Some(StaffSession { id_hash, row, stage, account, auth }))
}

/// A session in one of `stages`, or `Unauthorized`.
pub async fn require(
    state: &WebState,
    ip: ClientIp,
    headers: &HeaderMap,
    stages: &[Stage],
) -> Result<StaffSession, WebError> {
    match current(state, ip, headers).await? {
        Some(s) if stages.contains(&s.stage) => Ok(s),
        _ => Err(WebError::Unauthorized),
    }
}

/// A complete session whose role passes `allowed`, or `Unauthorized` / `Forbidden`. Every
/// staff route that shows or changes anything goes through here.
pub async fn require_role(
    state: &WebState,
    ip: ClientIp,
    headers: &HeaderMap,
    allowed: fn(Role) -> bool,
) -> Result<StaffSession, WebError> {
    let s = require(state, ip, headers, &[Stage::Full]).await?;
    if !allowed(s.role()) {
        audit(
            state,
            ip,
            &actor(&s.account.id),
            "staff.access",
            &target(&s.account.id),
            Outcome::Denied,
            &[("role", s.role().to_string())],
        )
        .await;
        return Err(WebError::Forbidden("Your role does not allow this.".into()));
    }
    Ok(s)
}

/// Starts a session in `stage` for `account` and sets its cookie on `response`.
pub async fn start(state: &WebState, account: &Account, stage: Stage, response: &mut Response) -> Result<(), WebError> {
    let id = csrf::random_token()?;
    let now = Timestamp::now().as_micros();
    let row = StaffSessionRow {
        account_id: account.id.clone(),
        stage: stage.as_str().into(),
        ceremony: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now.saturating_add(micros(state.staff.session_lifetime.as_secs())),
    };
    state.services.store.insert_staff_session(hash(&id), row).await.map_err(WebError::internal)?;
    cookies::append(response.headers_mut(), cookies::set_cookie(COOKIE, &id, None));
    Ok(())
}

/// Moves `s` to `stage` under a new id (a new cookie on `response`) and ends the old id.
/// Used when the second factor completes: an id seen while only the password was proven
/// (fixed by an attacker, or read off a shared screen) must not become a full session. The
/// new session keeps the old one's start and absolute lifetime.
pub async fn renew(state: &WebState, s: &StaffSession, stage: Stage, response: &mut Response) -> Result<(), WebError> {
    let id = csrf::random_token()?;
    let now = Timestamp::now().as_micros();
    let row = StaffSessionRow { stage: stage.as_str().into(), ceremony: None, last_seen_at: now, ..s.row.clone() };
    let store = &state.services.store;
    store.insert_staff_session(hash(&id), row).await.map_err(WebError::internal)?;
    store.end_staff_sessions(Some(s.id_hash.clone()), None).await.map_err(WebError::internal)?;
    cookies::append(response.headers_mut(), cookies::set_cookie(COOKIE, &id, None));
    Ok(())
}
