//! What signing in looks like at the web door for every kind of account: finding the session
//! a request carries and sending it to the page its stage belongs on, the authenticator-code
//! step, setting up an authenticator app, and signing out. The rules (stages, lockout, a new
//! session id after the second step) are the identity room's; this module adds what HTTP
//! needs (the client's block, the audit record, redirects). What differs between the kinds
//! stays in each kind's handlers: staff security keys, new-address notices and enrollment;
//! the portal's `next` page.

use std::future::Future;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use carepost_audit::Outcome;
use carepost_identity::{AccountRef, SecondStep, Session, Stage};

use crate::csrf::{CsrfForm, CsrfOnly};
use crate::error::WebError;
use crate::pages::{refuse_blocked, see_other};
use crate::state::audit;
use crate::{ClientIp, WebState, cookies, totp};

/// The answer to a wrong code at the second step.
pub(crate) const WRONG_CODE: &str = "That code is not right. Enter the code your app shows now.";

/// The answer to a wrong code while an authenticator app is being set up.
pub(crate) const WRONG_SETUP_CODE: &str = "That code is not right. Enter the code the app shows now.";

/// A kind of account as the web door signs it in: implemented by each kind's session.
pub(crate) trait Door: Sized + Send + Sync + 'static {
    /// The cookie that carries the session's token.
    const COOKIE: &'static str;
    /// The password page: where a request without a usable session starts again.
    const SIGNIN: &'static str;
    /// How signing out is audited: the action and its details.
    const SIGNED_OUT: (&'static str, &'static [(&'static str, &'static str)]);

    /// The page a session at `stage` belongs on.
    fn place(stage: &Stage) -> &'static str;

    /// The request's session, if it is still valid.
    fn current(
        state: &WebState,
        ip: ClientIp,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Option<Self>, WebError>> + Send;

    /// The session as stored, and whose it is.
    fn parts(&self) -> (&Session, AccountRef);

    /// Counts a wrong authenticator code against the client (the account's own count is the
    /// identity room's).
    fn count_wrong_code(&self, state: &WebState, ip: ClientIp, locked_now: bool) -> impl Future<Output = ()> + Send;

    /// Sets the session cookie on `response`.
    fn set_cookie(response: &mut Response, token: &str) {
        cookies::append(response.headers_mut(), cookies::set_cookie(Self::COOKIE, token, None));
    }
}

/// The stages a page serves.
pub(crate) trait Stages: Send + Sync + 'static {
    const STAGES: &'static [Stage];
}

/// Pages of a complete sign-in.
pub(crate) struct Full;

/// Pages of a complete sign-in, and of one that must enroll a second factor first.
pub(crate) struct FullOrEnroll;

/// The second step's page.
pub(crate) struct SecondFactor;

impl Stages for Full {
    const STAGES: &'static [Stage] = &[Stage::Full];
}

impl Stages for FullOrEnroll {
    const STAGES: &'static [Stage] = &[Stage::Full, Stage::Enroll];
}

impl Stages for SecondFactor {
    const STAGES: &'static [Stage] = &[Stage::SecondFactor];
}

/// A page for sessions at one of `S`'s stages. A session at another stage is sent to the
/// page its stage belongs on, a request without one to the sign-in page.
pub(crate) struct Visit<D, S>(pub D, pub PhantomData<S>);

impl<D: Door, S: Stages> FromRequestParts<WebState> for Visit<D, S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let ip = ClientIp::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        match D::current(state, ip, &parts.headers).await {
            Ok(Some(s)) if S::STAGES.contains(&s.parts().0.stage) => Ok(Visit(s, PhantomData)),
            Ok(Some(s)) => Err(see_other(D::place(&s.parts().0.stage))),
            Ok(None) => Err(see_other(D::SIGNIN)),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The authenticator-code step of the request's session: the client's block first, then the
/// identity room's step; a wrong code is counted against the client, and both a wrong and a
/// right one are audited as `action` with `details`. `None` when no session waits at the
/// second step; else the session and the step's outcome, for the kind's handler to answer.
pub(crate) async fn totp_step<D: Door>(
    state: &WebState,
    ip: ClientIp,
    headers: &HeaderMap,
    code: &str,
    (action, details): (&str, &[(&str, String)]),
) -> Result<Option<(D, SecondStep)>, WebError> {
    refuse_blocked(state, ip)?;
    let Some(s) = D::current(state, ip, headers).await?.filter(|s| s.parts().0.stage == Stage::SecondFactor) else {
        return Ok(None);
    };
    let (session, who) = s.parts();
    let step = state.services.identity.totp_step(&who, session, code, ip.0).await.map_err(WebError::internal)?;
    let (actor, target) = (who.actor(), who.target());
    match step {
        SecondStep::Wrong { locked_now } => {
            s.count_wrong_code(state, ip, locked_now).await;
            let details = [details, &[("locked", locked_now.to_string())]].concat();
            audit(state, ip, &actor, action, &target, Outcome::Failure, &details).await;
        }
        SecondStep::Passed { .. } => audit(state, ip, &actor, action, &target, Outcome::Success, details).await,
        SecondStep::Locked | SecondStep::NoFactor => {}
    }
    Ok(Some((s, step)))
}

/// An authenticator app being set up: the secret to type in and the `otpauth:` link.
pub(crate) struct TotpPending {
    pub secret: String,
    pub uri: String,
}

/// Where the account's authenticator app stands, for its page.
pub(crate) struct TotpState {
    pub on: bool,
    /// Set up but not yet confirmed with a code.
    pub pending: Option<TotpPending>,
}

/// The account's authenticator app, named `label` in the app.
pub(crate) async fn totp_state(state: &WebState, who: &AccountRef, label: &str) -> Result<TotpState, WebError> {
    let identity = &state.services.identity;
    let factors = identity.factors(who.kind, &who.id).await.map_err(WebError::internal)?.ok_or(WebError::NotFound)?;
    let pending = match (&factors.totp, &factors.totp_pending) {
        (None, Some(sealed)) => {
            let raw = identity.open_totp(who, sealed).await.map_err(WebError::internal)?;
            let issuer =
                if state.config.organization.is_empty() { "carepost" } else { state.config.organization.as_str() };
            Some(TotpPending { secret: totp::encoded(&raw), uri: totp::uri(&raw, issuer, label) })
        }
        _ => None,
    };
    Ok(TotpState { on: factors.totp.is_some(), pending })
}

/// Turns the pending authenticator app of `who` on when `code` is its code now; audited
/// either way as `action` with `details`.
pub(crate) async fn confirm_totp(
    state: &WebState,
    ip: ClientIp,
    who: &AccountRef,
    code: &str,
    (action, details): (&str, &[(&str, String)]),
) -> Result<bool, WebError> {
    let on = state.services.identity.confirm_totp(who, code).await.map_err(WebError::internal)?;
    let outcome = if on { Outcome::Success } else { Outcome::Failure };
    audit(state, ip, &who.actor(), action, &who.target(), outcome, details).await;
    Ok(on)
}

/// `POST /staff/signout`, `POST /p/signout`: ends the request's session, if any, and sends
/// the browser to the sign-in page without its cookie.
pub(crate) async fn sign_out<D: Door>(
    State(state): State<WebState>,
    ip: ClientIp,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, WebError> {
    if let Some(s) = D::current(&state, ip, &headers).await? {
        let (session, who) = s.parts();
        state.services.identity.end_session(session).await.map_err(WebError::internal)?;
        let (action, details) = D::SIGNED_OUT;
        let details: Vec<_> = details.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        audit(&state, ip, &who.actor(), action, &who.target(), Outcome::Success, &details).await;
    }
    let mut response = see_other(D::SIGNIN);
    cookies::append(response.headers_mut(), cookies::clear_cookie(D::COOKIE));
    Ok(response)
}
