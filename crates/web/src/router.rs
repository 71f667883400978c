//! The whole HTTPS surface, composed from each area's routes.
//!
//! Each area owns a path prefix and a `routes()` function in its own module; adding an area
//! is one `merge` line here. Layers apply to all of them alike: the security layer (headers,
//! rate limit, error pages) outermost, then the request body limit (a declared length over it
//! is refused before any handler runs) and CSRF nonces.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;

use crate::{WebState, api, assets, csrf, portal, security, staff};

pub fn router(state: WebState) -> Router {
    let body_limit = usize::try_from(state.config.max_upload_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/static/style.css", get(assets::stylesheet))
        .route("/static/webauthn.js", get(assets::webauthn_script))
        .merge(api::routes())
        .merge(portal::routes())
        .merge(staff::routes())
        .fallback(security::not_found)
        .layer(middleware::from_fn(csrf::provide))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), security::body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), security::layer))
        .with_state(state)
}
