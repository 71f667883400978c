//! CSRF protection for every form: the signed double-submit pattern.
//!
//! Each browser gets a random nonce in a `__Host-` cookie (SameSite=Strict, HttpOnly). A form
//! carries `csrf`, an HMAC of that nonce under a key derived from the vault, so it is the
//! same on every node and after restarts. A post is accepted only when its token matches the
//! cookie it came with: another site can neither read the cookie nor compute the token, and
//! the `__Host-` prefix stops a sibling domain from planting a nonce of its choosing.
//! Requests a browser marks as cross-site (`Sec-Fetch-Site`) are refused outright.

use aws_lc_rs::{constant_time, hmac};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;

use crate::error::WebError;
use crate::{WebState, cookies};

const COOKIE: &str = "cp_csrf";

/// The key CSRF tokens are computed under.
pub struct CsrfKey(hmac::Key);

impl CsrfKey {
    pub fn new(secret: &[u8]) -> Self {
        CsrfKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn token(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, format!("carepost-csrf\0{nonce}").as_bytes()))
    }

    /// Whether `token` belongs to `nonce`, in constant time.
    pub fn verify(&self, nonce: &str, token: &str) -> bool {
        let expected = self.token(nonce);
        constant_time::verify_slices_are_equal(expected.as_bytes(), token.as_bytes()).is_ok()
    }
}

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey")
    }
}

/// The nonce of the browser making the request (from its cookie, or new).
#[derive(Debug, Clone)]
struct CsrfNonce(String);

/// A fresh random value, base64url: nonces, tokens, session ids.
pub fn random_token() -> Result<String, WebError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| WebError::internal("the system random number generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Middleware: gives every request a nonce, and a browser without one its cookie.
/// API requests (bearer keys, no cookies) are passed through untouched.
pub async fn provide(request: Request, next: Next) -> Response {
    if crate::api::is_api_path(request.uri().path()) {
        return next.run(request).await;
    }
    let existing = cookies::get(request.headers(), COOKIE).filter(|v| v.len() == 43).map(str::to_owned);
    let (nonce, fresh) = match existing {
        Some(n) => (n, false),
        None => match random_token() {
            Ok(n) => (n, true),
            Err(e) => return axum::response::IntoResponse::into_response(e),
        },
    };
    let mut request = request;
    request.extensions_mut().insert(CsrfNonce(nonce.clone()));
    let mut response = next.run(request).await;
    if fresh {
        cookies::append(response.headers_mut(), cookies::set_cookie(COOKIE, &nonce, None));
    }
    response
}

/// The token a page puts in its forms (`<input type="hidden" name="csrf">`).
#[derive(Debug, Clone)]
pub struct Csrf(pub String);

impl FromRequestParts<WebState> for Csrf {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, WebError> {
        let nonce = parts.extensions.get::<CsrfNonce>().ok_or_else(|| WebError::internal("CSRF layer missing"))?;
        Ok(Csrf(state.csrf.token(&nonce.0)))
    }
}

/// Checks a posted token against the request's nonce and fetch metadata.
pub fn check(parts: &Parts, state: &WebState, token: &str) -> Result<(), WebError> {
    let cross_site =
        parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "cross-site");
    let nonce = parts.extensions.get::<CsrfNonce>().ok_or(WebError::Csrf)?;
    if cross_site || !state.csrf.verify(&nonce.0, token) {
        return Err(WebError::Csrf);
    }
    Ok(())
}

/// A form that names its CSRF token.
pub trait CsrfField {
    fn csrf(&self) -> &str;
}

/// Names the `csrf` field of each form type listed as its CSRF token.
macro_rules! csrf_field {
    ($($form:ty),+ $(,)?) => {
        $(impl $crate::csrf::CsrfField for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })+
    };
}
pub(crate) use csrf_field;

/// A form with nothing but its CSRF token (sign out, start a ceremony, withdraw).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

csrf_field!(CsrfOnly, CodeForm);

/// A form with one code (an authenticator app's), as the staff pages and the portal post it.
#[derive(serde::Deserialize)]
pub struct CodeForm {
    csrf: String,
    pub code: String,
}

/// A URL-encoded form whose CSRF token was checked. Malformed forms are a plain 400 that
/// names no field.
pub struct CsrfForm<T>(pub T);

impl<T> FromRequest<WebState> for CsrfForm<T>
where
    T: DeserializeOwned + CsrfField + Send,
{
    type Rejection = WebError;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, WebError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts.clone(), body);
        let axum::Form(form) = axum::Form::<T>::from_request(request, state)
            .await
            .map_err(|_| WebError::BadRequest("The form was incomplete. Go back and try again.".into()))?;
        check(&parts, state, form.csrf())?;
        Ok(CsrfForm(form))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_to_their_nonce_and_key() {
        let key = CsrfKey::new(b"k1");
        let t = key.token("nonce-a");
        assert!(key.verify("nonce-a", &t));
        assert!(!key.verify("nonce-b", &t));
        assert!(!key.verify("nonce-a", ""));
        assert!(!CsrfKey::new(b"k2").verify("nonce-a", &t));
        assert_eq!(random_token().unwrap().len(), 43);
    }
}
