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
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use crate::WebState;
use crate::error::WebError;
pub(crate) use crate::pages::{date, failed_attempt, page, refuse_blocked, see_other};
pub(crate) use crate::state::audit;

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

fn portal_error(e: carepost_secure::portal::PortalError) -> WebError {
    match e {
        carepost_secure::portal::PortalError::NotFound(_) => WebError::NotFound,
        other => WebError::internal(other),
    }
}
