//! The layer every response passes through: security headers, a per-address request rate
//! limit, and error pages that replace axum's own plain-text error bodies.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{WebError, default_message, error_page, needs_error_page};
use crate::problem::Problem;
use crate::{ClientIp, WebState};

/// The Content-Security-Policy of every page: nothing but this origin's stylesheet and
/// images, no scripts at all, forms only back to this origin, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A handler that must relax the policy for one response (a reader who asked for remote
/// images) sets its own `Content-Security-Policy`; the layer keeps it.
pub fn csp_allowing_remote_images() -> HeaderValue {
    HeaderValue::from_static(
        "default-src 'none'; style-src 'self'; img-src 'self' data: https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
}

const FIXED_HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Adds the security headers to a response, keeping a CSP or Cache-Control the handler set.
/// `hsts` is the `Strict-Transport-Security` value (`web.hsts_max_age`,
/// `web.hsts_include_subdomains`).
pub fn add_security_headers(headers: &mut HeaderMap, hsts: &HeaderValue) {
    for (name, value) in FIXED_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    // Pages carry PHI: no cache, shared or private, may keep them.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Whether the client would rather have JSON (API paths, or an Accept naming JSON first).
fn wants_json(path: &str, headers: &HeaderMap) -> bool {
    crate::api::is_api_path(path)
        || path == "/api"
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("application/json") || a.starts_with("application/problem+json"))
}

/// The middleware: rate limit, run the handler, replace bare error bodies, add headers.
pub async fn layer(State(state): State<WebState>, ClientIp(ip): ClientIp, request: Request, next: Next) -> Response {
    let json = wants_json(request.uri().path(), request.headers());
    let mut response = match state.requests.check(&carepost_model::ClientKey::of(ip)) {
        Err(wait) => limited(json, wait),
        Ok(()) => next.run(request).await,
    };
    if needs_error_page(&response) {
        let status = response.status();
        let mut replaced = if json {
            Problem::status(status).detail(default_message(status)).into_response()
        } else {
            error_page(status, default_message(status), None)
        };
        // Keep headers that matter to the client (Allow on 405, Retry-After on 429).
        for name in [header::ALLOW, header::RETRY_AFTER] {
            if let Some(v) = response.headers().get(&name) {
                replaced.headers_mut().insert(name, v.clone());
            }
        }
        response = replaced;
    }
    add_security_headers(response.headers_mut(), &state.hsts);
    response
}

/// How long a refused upload is read and thrown away before the answer (see [`body_limit`]).
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Refuses a request whose declared length is over `web.max_upload_bytes` before any handler
/// reads it: `413` as problem details on the API (SendGrid's shape on `/v3`), the error page
/// elsewhere.
///
/// Over HTTP/2 the rest of the body is first read and dropped (up to another
/// `max_upload_bytes`, within a minute): an answer given while the client is still sending
/// ends in a stream reset that clients such as curl report as a framing error instead of the
/// 413. HTTP/1.1 needs no draining: the connection is closed after the answer.
pub async fn body_limit(State(state): State<WebState>, request: Request, next: Next) -> Response {
    let limit = state.config.max_upload_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Some(declared) = declared.filter(|&n| n > limit) else { return next.run(request).await };
    let path = request.uri().path().to_owned();
    let json = wants_json(&path, request.headers());
    let (parts, body) = request.into_parts();
    if parts.version == axum::http::Version::HTTP_2 && declared <= limit.saturating_mul(2) {
        drain(body, declared).await;
    }
    tracing::debug!(declared, limit, "refused an upload over the size limit");
    let error = crate::api::ApiError::TooLarge(limit);
    if path.starts_with("/v3/") {
        error.sendgrid()
    } else if json {
        error.into_response()
    } else {
        StatusCode::PAYLOAD_TOO_LARGE.into_response()
    }
}

/// Reads and drops at most `max` bytes of `body`, within [`DRAIN_TIMEOUT`].
async fn drain(body: axum::body::Body, max: u64) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > max {
                break;
            }
        }
    })
    .await;
}

fn limited(json: bool, wait: std::time::Duration) -> Response {
    let error = WebError::TooManyRequests(wait);
    if json {
        let mut r = error.problem().into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    } else {
        error.into_response()
    }
}

/// The answer for paths nothing serves.
pub async fn not_found(request: Request) -> Response {
    if wants_json(request.uri().path(), request.headers()) {
        Problem::status(StatusCode::NOT_FOUND).detail(default_message(StatusCode::NOT_FOUND)).into_response()
    } else {
        WebError::NotFound.into_response()
    }
}
