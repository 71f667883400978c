//! Errors of HTML pages, and the pages that show them.
//!
//! A page error says what the visitor can do about it and nothing else: no internal
//! detail, no hint whether an address or account exists. Server-side failures are logged
//! with a reference the page shows, so a support call can find the log line.

use std::time::Duration;

use askama::Template;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use carepost_model::Id;

use crate::problem::Problem;

/// Marks a response whose body carepost wrote itself, so the error-page layer leaves it alone
/// (axum's own rejections, which name internal details, are replaced).
#[derive(Debug, Clone, Copy)]
pub struct Rendered;

/// What went wrong while serving a page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The request cannot be served as sent; the text is shown to the visitor.
    #[error("{0}")]
    BadRequest(String),
    /// The form was not sent from a carepost page (missing or wrong CSRF token).
    #[error("the form expired or did not come from this site")]
    Csrf,
    /// Signed-in users only.
    #[error("sign-in required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("too many requests")]
    TooManyRequests(Duration),
    /// A failure on carepost's side; the text goes to the log only.
    #[error("internal: {0}")]
    Internal(String),
}

impl WebError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        WebError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Csrf | WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the visitor is told: the status's message, or the safe text the error carries.
    fn public_message(&self) -> String {
        match self {
            WebError::BadRequest(text) | WebError::Forbidden(text) => text.clone(),
            other => default_message(other.status()).to_owned(),
        }
    }

    /// The same error as problem details, for JSON endpoints.
    pub fn problem(&self) -> Problem {
        let reference = self.log();
        let mut p = Problem::status(self.status()).detail(self.public_message());
        if let Some(r) = reference {
            p = p.instance(format!("urn:carepost:error:{r}"));
        }
        p
    }

    /// Logs a server-side failure and returns its reference.
    fn log(&self) -> Option<String> {
        match self {
            WebError::Internal(detail) => {
                let reference = Id::new().to_string();
                tracing::error!(reference = %reference, error = %detail, "request failed");
                Some(reference)
            }
            _ => None,
        }
    }
}

/// The page message for a status, for errors that carry none of their own.
pub fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request could not be understood. Go back and try again.",
        401 => "Please sign in to continue.",
        403 => "This form has expired or did not come from this site. Go back, reload the page and try again.",
        404 => "There is nothing here. Check the link you followed.",
        405 => "This page cannot be used that way.",
        408 => "The request took too long. Try again.",
        413 => "What you sent is too large.",
        415 => "What you sent is not in a form this page accepts.",
        429 => "Too many attempts. Wait a little and try again.",
        _ if status.is_server_error() => "Something went wrong on our side. Try again later.",
        _ => "The request could not be completed.",
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
    reference: Option<&'a str>,
}

/// The HTML page for an error status.
pub fn error_page(status: StatusCode, message: &str, reference: Option<&str>) -> Response {
    let page =
        ErrorPage { status: status.as_u16(), title: status.canonical_reason().unwrap_or("Error"), message, reference };
    let body = page.render().unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".into());
    let mut response = (status, Html(body)).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(Rendered);
    response
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let reference = self.log();
        let mut response = error_page(self.status(), &self.public_message(), reference.as_deref());
        if let WebError::TooManyRequests(wait) = &self
            && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
        response
    }
}

/// Whether a response is one of axum's own plain-text answers (rejections, 405, 413) that
/// the error-page layer must replace.
pub fn needs_error_page(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response.extensions().get::<Rendered>().is_none()
        && response.headers().get(CONTENT_TYPE).is_none_or(|v| v.to_str().is_ok_and(|t| t.starts_with("text/plain")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_show_a_reference_not_the_cause() {
        let e = WebError::internal("database is locked at /var/lib/carepost/carepost.db");
        let p = e.problem();
        assert_eq!(p.status, 500);
        assert!(!serde_json::to_string(&p).unwrap().contains("/var/lib"));
        assert!(p.instance.unwrap().starts_with("urn:carepost:error:"));
    }
}
