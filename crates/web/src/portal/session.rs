//! Portal sessions over HTTP: the identity room's token in a `__Host-` cookie. Whether a
//! session stands, and what it may open, is the room's to say.

use axum::http::HeaderMap;

pub use carepost_identity::PortalSession as Session;

use carepost_identity::Stage;

use crate::error::WebError;
use crate::signin::Door;
use crate::{ClientIp, WebState, cookies};

pub const COOKIE: &str = "cp_session";

/// The request's session, if it is still valid (an idle or over-age one is ended). Marks
/// activity on it.
pub async fn current(state: &WebState, headers: &HeaderMap) -> Result<Option<Session>, WebError> {
    let Some(token) = cookies::get(headers, COOKIE) else { return Ok(None) };
    state.services.identity.portal_session(token).await.map_err(WebError::internal)
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

/// Portal pages: a signed-in recipient's place is the inbox.
impl Door for Session {
    const COOKIE: &'static str = COOKIE;
    const SIGNIN: &'static str = "/p/signin";
    const SIGNED_OUT: (&'static str, &'static [(&'static str, &'static str)]) = ("portal.signout", &[]);

    fn place(stage: &Stage) -> &'static str {
        if *stage == Stage::SecondFactor { "/p/signin/totp" } else { "/p/inbox" }
    }

    async fn current(state: &WebState, _: ClientIp, headers: &HeaderMap) -> Result<Option<Self>, WebError> {
        current(state, headers).await
    }

    fn parts(&self) -> (&carepost_identity::Session, carepost_identity::AccountRef) {
        (&self.session, self.who())
    }

    /// Counted per client, under the password's name: a portal address is no login to count by.
    async fn count_wrong_code(&self, state: &WebState, ip: ClientIp, _locked_now: bool) {
        super::failed_attempt(state, ip, "portal-password").await;
    }
}
