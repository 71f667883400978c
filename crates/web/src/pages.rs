//! What every server-rendered page of the web door shares, the portal's and the staff's:
//! rendering a template, redirects, dates as people read them, and the client-address guard
//! at each sign-in step.

use askama::Template;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use carepost_model::Timestamp;

use crate::error::{Rendered, WebError};
use crate::{ClientIp, WebState};

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
