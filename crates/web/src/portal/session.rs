//! Portal sessions: a random id in a `__Host-` cookie, only its SHA-256 in the store; an idle
//! timeout and an absolute lifetime; a second stage while a TOTP code is due.

use aws_lc_rs::digest;
use axum::http::HeaderMap;
use axum::response::Response;
use carepost_model::{TenantId, Timestamp};
use carepost_store::portal::{AccountRow, SessionRow};
use carepost_vault::DataKey;

use crate::error::WebError;
use crate::{WebState, cookies, csrf, micros};

pub const COOKIE: &str = "cp_session";
pub const FULL: &str = "full";
pub const TOTP: &str = "totp";
/// `message:<portal id>`: signed in with the sender's passphrase, for that one message only.
pub const ONE_MESSAGE: &str = "message:";

/// A signed-in recipient.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub row: SessionRow,
    pub account: AccountRow,
    pub tenant: TenantId,
}

impl Session {
    pub fn is_full(&self) -> bool {
        self.row.stage == FULL
    }

    /// Whether this session may read and answer portal message `id`: a full sign-in, or a
    /// passphrase sign-in for that message.
    pub fn allows(&self, id: &str) -> bool {
        self.is_full() || self.row.stage.strip_prefix(ONE_MESSAGE) == Some(id)
    }
}

pub fn hash(id: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, id.as_bytes()).as_ref().to_vec()
}

/// The request's session, if it is still valid (an idle or over-age one is ended). Marks
/// activity on it.
pub async fn current(state: &WebState, headers: &HeaderMap) -> Result<Option<Session>, WebError> {
    let Some(id) = cookies::get(headers, COOKIE).filter(|v| v.len() == 43) else { return Ok(None) };
    let id_hash = hash(id);
    let store = &state.services.store;
    let Some(row) = store.portal_session(&id_hash).await.map_err(WebError::internal)? else { return Ok(None) };
    let now = Timestamp::now().as_micros();
    if now >= row.expires_at || now - row.last_seen_at > micros(state.config.session_idle.as_secs()) {
        store.end_portal_sessions(Some(id_hash), None).await.map_err(WebError::internal)?;
        return Ok(None);
    }
    let Some(account) = store.portal_account_by_id(&row.account_id).await.map_err(WebError::internal)? else {
        return Ok(None);
    };
    let tenant = TenantId::new(&account.tenant).map_err(WebError::internal)?;
    store.touch_portal_session(&id_hash, now, None).await.map_err(WebError::internal)?;
    Ok(Some(Session { id_hash, row, account, tenant }))
}

/// The fully signed-in session, or `Unauthorized`.
pub async fn require(state: &WebState, headers: &HeaderMap) -> Result<Session, WebError> {
    match current(state, headers).await? {
        Some(s) if s.is_full() => Ok(s),
        _ => Err(WebError::Unauthorized),
    }
}

/// A session that may read and answer portal message `id` (see [`Session::allows`]), or
/// `Unauthorized`.
pub async fn require_for(state: &WebState, headers: &HeaderMap, id: &str) -> Result<Session, WebError> {
    match current(state, headers).await? {
        Some(s) if s.allows(id) => Ok(s),
        _ => Err(WebError::Unauthorized),
    }
}

/// Starts a session for `account` and sets its cookie on `response`. Stage `totp` when the
/// account has a second factor.
pub async fn start(state: &WebState, account: &AccountRow, response: &mut Response) -> Result<(), WebError> {
    let stage = if account.totp.is_some() { TOTP } else { FULL };
    start_stage(state, account, stage.into(), response).await
}

/// Starts a session limited to portal message `id`, for a recipient who proved the address
/// with the sender's passphrase.
pub async fn start_for_message(
    state: &WebState,
    account: &AccountRow,
    id: &str,
    response: &mut Response,
) -> Result<(), WebError> {
    start_stage(state, account, format!("{ONE_MESSAGE}{id}"), response).await
}

async fn start_stage(
    state: &WebState,
    account: &AccountRow,
    stage: String,
    response: &mut Response,
) -> Result<(), WebError> {
    let id = csrf::random_token()?;
    let now = Timestamp::now().as_micros();
    let row = SessionRow {
        account_id: account.id.clone(),
        stage,
        created_at: now,
        last_seen_at: now,
        expires_at: now.saturating_add(micros(state.config.session_lifetime.as_secs())),
    };
    state.services.store.insert_portal_session(hash(&id), row).await.map_err(WebError::internal)?;
    cookies::append(response.headers_mut(), cookies::set_cookie(COOKIE, &id, None));
    Ok(())
}

/// The account's own data key (`portal-account/<id>`): its sealed address and TOTP secret.
pub async fn account_key(state: &WebState, tenant: &TenantId, account_id: &str) -> Result<DataKey, WebError> {
    state
        .services
        .store
        .data_key(&state.services.ring, tenant, &format!("portal-account/{account_id}"))
        .await
        .map_err(WebError::internal)
}
