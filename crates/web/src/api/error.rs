//! What goes wrong in an API request, as RFC 9457 problem details (`/api/v1`) or in
//! SendGrid's `{"errors": [...]}` shape (`/v3`).

use std::time::Duration;

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{Rendered, WebError};
use crate::problem::Problem;

const TYPE_BASE: &str = "urn:carepost:problem:";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, an unknown, revoked or expired key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key may not do this, or not from this address.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed; `field` names the offending member (JSON path).
    #[error("{detail}")]
    Invalid { field: Option<String>, detail: String },
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("no such message")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// Policy refused the message; the operator's text.
    #[error("{0}")]
    Blocked(String),
    #[error("too many requests for this API key")]
    RateLimited(Duration),
    /// A failure on carepost's side; the text goes to the log only.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Invalid { field: Some(field.into()), detail: detail.into() }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Blocked(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Invalid { .. } => "invalid-request",
            ApiError::TooLarge(_) => "too-large",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::NotFound => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Blocked(_) => "blocked-by-policy",
            ApiError::RateLimited(_) => "rate-limited",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The text a client sees. Internal failures are logged and shown only as a reference.
    fn public(&self) -> (String, Option<String>) {
        match self {
            ApiError::Internal(_) => {
                let web = WebError::internal(self.to_string());
                let p = web.problem();
                (p.detail.unwrap_or_default(), p.instance)
            }
            ApiError::Invalid { field: Some(f), detail } => (format!("{f}: {detail}"), None),
            other => (other.to_string(), None),
        }
    }

    pub fn problem(&self) -> Problem {
        let (detail, instance) = self.public();
        let mut p = Problem::status(self.status()).kind(format!("{TYPE_BASE}{}", self.kind())).detail(detail);
        if let Some(i) = instance {
            p = p.instance(i);
        }
        p
    }

    fn decorate(&self, mut response: Response) -> Response {
        match self {
            ApiError::RateLimited(wait) => {
                if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                    response.headers_mut().insert(RETRY_AFTER, v);
                }
            }
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"carepost\""));
            }
            _ => {}
        }
        response
    }

    /// The error as SendGrid reports errors: `{"errors": [{"message", "field", "help"}]}`.
    pub fn sendgrid(&self) -> Response {
        let (message, _) = self.public();
        let field = match self {
            ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        let message = match self {
            ApiError::Invalid { detail, .. } => detail.clone(),
            _ => message,
        };
        let body = serde_json::json!({"errors": [{"message": message, "field": field, "help": null}]});
        let mut response = (self.status(), axum::Json(body)).into_response();
        response.extensions_mut().insert(Rendered);
        self.decorate(response)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let response = self.problem().into_response();
        self.decorate(response)
    }
}

impl From<carepost_store::StoreError> for ApiError {
    fn from(e: carepost_store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// RFC 9457 problem details, as `/api/v1` reports errors (for the OpenAPI document).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// `urn:carepost:problem:<kind>`: invalid-request, unauthorized, forbidden, not-found,
    /// conflict, too-large, unsupported-media-type, blocked-by-policy, rate-limited, internal.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What was wrong, naming the field where there is one.
    pub detail: Option<String>,
    /// For server-side failures: the reference of the log line.
    pub instance: Option<String>,
}
