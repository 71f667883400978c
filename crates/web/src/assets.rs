//! The one stylesheet, and the one script (security keys on the staff pages), compiled into
//! the binary.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

pub const STYLESHEET: &str = include_str!("../static/style.css");

pub async fn stylesheet() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
}

pub const WEBAUTHN_SCRIPT: &str = include_str!("../static/webauthn.js");

pub async fn webauthn_script() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8"), (CACHE_CONTROL, "public, max-age=3600")], WEBAUTHN_SCRIPT)
}
