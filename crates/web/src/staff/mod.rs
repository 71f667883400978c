//! The staff pages, under `/staff/`: the organization's own people (administrators,
//! compliance officers, senders) sign in with their account's password and a second factor
//! (an authenticator app, TOTP, or a WebAuthn security key), enroll second factors, and see
//! what their role allows. API-only accounts never sign in here.
//!
//! The rules (roles, stages, lockout, second factors) are the identity room's
//! (`carepost_identity`); these pages ask it and render its answers. Roles are checked for
//! every route ([`session::require_role`]). Every authentication event is audited with the
//! client address.

pub mod config;
mod home;
mod mfa;
mod notice;
pub(crate) mod session;
mod signin;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub use config::{StaffConfig, StaffConfigError};
use session::StaffSession;

use crate::WebState;
use crate::csrf::csrf_field;
pub(crate) use crate::state::audit;

/// The staff pages' routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/staff", get(home::redirect))
        .route("/staff/", get(home::home))
        .route("/staff/signin", get(signin::page).post(signin::password))
        .route("/staff/signin/mfa", get(signin::mfa_page))
        .route("/staff/signin/totp", post(signin::totp))
        .route("/staff/signin/key/start", post(signin::key_start))
        .route("/staff/signin/key/finish", post(signin::key_finish))
        .route("/staff/signout", post(crate::signin::sign_out::<StaffSession>))
        .route("/staff/mfa", get(mfa::page))
        .route("/staff/mfa/totp", post(mfa::totp_setup))
        .route("/staff/mfa/totp/confirm", post(mfa::totp_confirm))
        .route("/staff/mfa/key/start", post(mfa::key_start))
        .route("/staff/mfa/key/finish", post(mfa::key_finish))
        .route("/staff/password", post(home::change_password))
        .route("/staff/settings/require-mfa", post(home::require_mfa))
        .route("/staff/audit", get(home::audit_view))
}

/// The Content-Security-Policy of the pages that load `/static/webauthn.js`: the page's
/// policy plus this origin's scripts and requests, still nothing inline.
const CSP_WITH_SCRIPT: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn allow_own_script(mut response: Response) -> Response {
    response.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP_WITH_SCRIPT));
    response
}

/// A JSON answer for the WebAuthn script: where to go next, or what went wrong.
pub(crate) fn json(status: axum::http::StatusCode, value: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(value)).into_response();
    response.extensions_mut().insert(crate::error::Rendered);
    response
}

/// The answer to a security-key request where WebAuthn cannot work (the public URL's host is
/// an IP address), or the account has no key.
pub(crate) fn keys_unavailable() -> Response {
    json(axum::http::StatusCode::BAD_REQUEST, serde_json::json!({ "error": "Security keys are not available here." }))
}

/// What the WebAuthn script posts back: the browser's credential as JSON.
#[derive(Deserialize)]
pub struct CredentialForm {
    csrf: String,
    credential: String,
}

csrf_field!(CredentialForm, KeyNameForm);

#[derive(Deserialize)]
pub struct KeyNameForm {
    csrf: String,
    #[serde(default)]
    name: String,
}
