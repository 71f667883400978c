//! The secure portal: recipients open their pick-up link, prove control of the address with
//! a one-time code, choose a password (and may add an authenticator app), read their
//! messages and reply securely; senders see opens and withdraw through their status link.
//!
//! Every step is audited with the client address; failures count towards the account's
//! lockout and the address's block (shared with SMTP).

mod auth;
mod read;
mod reply;
mod sanitize;
mod sender;
pub(crate) mod session;

use askama::Template;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use carepost_model::Timestamp;

use crate::error::{Rendered, WebError};
pub(crate) use crate::state::audit;
use crate::{ClientIp, WebState};

pub use session::Session;

/// The portal's routes, under `/p/`.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/p/m/{token}", get(auth::link))
        .route("/p/code", post(auth::send_code))
        .route("/p/verify", post(auth::verify))
        .route("/p/passphrase", post(auth::passphrase))
        .route("/p/signin", get(auth::signin_page).post(auth::signin))
        .route("/p/signin/totp", get(auth::totp_page).post(auth::totp_signin))
        .route("/p/signout", post(crate::signin::sign_out::<Session>))
        .route("/p/account", get(auth::account))
        .route("/p/account/totp", post(auth::totp_setup))
        .route("/p/account/totp/confirm", post(auth::totp_confirm))
        .route("/p/inbox", get(read::inbox))
        .route("/p/read/{id}", get(read::message))
        .route("/p/read/{id}/part/{n}", get(read::attachment))
        .route("/p/read/{id}/reply", get(reply::form).post(reply::send))
        .route("/p/s/{token}", get(sender::status))
        .route("/p/s/{token}/retract", post(sender::retract))
}

/// Renders a page, marked so the error layer keeps it.
pub(crate) fn page(status: StatusCode, template: &impl Template) -> Result<Response, WebError> {
    let body = template.render().map_err(WebError::internal)?;
    let mut response = (status, Html(body)).into_response();
    response.extensions_mut().insert(Rendered);
    Ok(response)
}

/// A 303 to `to` (a path of this site).
pub(crate) fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, v);
    }
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Template)]
#[template(path = "portal/notice.html")]
pub(crate) struct NoticePage<'a> {
    pub signed_in: bool,
    pub csrf: String,
    pub title: &'a str,
    pub text: &'a str,
    pub link: Option<(&'a str, &'a str)>,
}

/// A page that says one thing.
pub(crate) fn notice(
    status: StatusCode,
    csrf: String,
    signed_in: bool,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Result<Response, WebError> {
    page(status, &NoticePage { signed_in, csrf, title, text, link })
}

/// The page of a retracted or expired message.
pub(crate) fn withdrawn(csrf: String, signed_in: bool) -> Result<Response, WebError> {
    notice(
        StatusCode::GONE,
        csrf,
        signed_in,
        "This message was withdrawn",
        "The sender withdrew this message, or the time it could be read has passed. Its content has been deleted. Contact the sender if you still need it.",
        None,
    )
}

/// `2026-01-31 14:05 UTC`
pub(crate) fn date(micros: i64) -> String {
    let d = Timestamp::from_micros(micros).to_datetime();
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute())
}

/// Refuses a blocked client address before any sign-in work.
pub(crate) fn refuse_blocked(state: &WebState, ip: ClientIp) -> Result<(), WebError> {
    if let Some(block) = state.services.guard.blocked(ip.0) {
        let guard = state.services.guard.clone();
        tokio::spawn(async move { guard.refused_blocked(ip.0, &block, "web").await });
        return Err(WebError::Forbidden("Too many failed attempts came from your network. Try again later.".into()));
    }
    Ok(())
}

/// Counts a failed attempt (wrong password, code or TOTP) against the client address.
pub(crate) async fn failed_attempt(state: &WebState, ip: ClientIp, what: &str) {
    let _ = state.services.guard.failed(ip.0, "", what).await;
}

/// Counts a failed sign-in of `login` against the client: per login and client first, so
/// that one person mistyping cannot block everyone behind the same address.
pub(crate) async fn failed_login(state: &WebState, ip: ClientIp, login: &str, what: &str) {
    let _ = state.services.guard.failed(ip.0, login, what).await;
}

fn portal_error(e: carepost_secure::portal::PortalError) -> WebError {
    match e {
        carepost_secure::portal::PortalError::NotFound(_) => WebError::NotFound,
        other => WebError::internal(other),
    }
}
