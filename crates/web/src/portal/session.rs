//! Portal sessions over HTTP: the identity room's token in a `__Host-` cookie. Whether a
//! session stands, and what it may open, is the room's to say.

use axum::http::HeaderMap;
use axum::response::Response;

pub use carepost_identity::PortalSession as Session;

use crate::error::WebError;
use crate::{WebState, cookies};

pub const COOKIE: &str = "cp_session";

/// The request's session, if it is still valid (an idle or over-age one is ended). Marks
/// activity on it.
pub async fn current(state: &WebState, headers: &HeaderMap) -> Result<Option<Session>, WebError> {
    let Some(token) = cookies::get(headers, COOKIE) else { return Ok(None) };
    state.identity.portal_session(token).await.map_err(WebError::internal)
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

/// Sets the session cookie on `response`.
pub fn set(response: &mut Response, token: &str) {
    cookies::append(response.headers_mut(), cookies::set_cookie(COOKIE, token, None));
}
