//! Cookies as carepost sets them: `__Host-` prefixed (so only this exact origin over HTTPS can
//! set them, with `Path=/` and no `Domain`), `Secure`, `HttpOnly` and `SameSite=Strict`.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};

/// The `Set-Cookie` value for `name` (without its prefix). `max_age` in seconds; `None` makes
/// a browser-session cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut text = format!("__Host-{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    // Names and values are carepost's own (base64url), so this cannot fail; an empty value
    // is the fallback that sets nothing useful rather than a panic.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("__Host-invalid=; Path=/; Secure"))
}

/// The `Set-Cookie` value that removes `name`.
pub fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", Some(0))
}

/// Appends a `Set-Cookie` header.
pub fn append(headers: &mut HeaderMap, value: HeaderValue) {
    headers.append(SET_COOKIE, value);
}

/// The value of cookie `name` (without its prefix) sent with a request. Only the `__Host-`
/// form counts: a cookie without the prefix may have been planted by a sibling domain.
pub fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let wanted = format!("__Host-{name}");
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == wanted)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_host_prefixed_and_locked_down() {
        let v = set_cookie("cp_session", "abc", Some(60));
        assert_eq!(v, "__Host-cp_session=abc; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=60");
        assert!(clear_cookie("x").to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn only_prefixed_cookies_are_read() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("cp_session=planted; __Host-other=1"));
        h.append(COOKIE, HeaderValue::from_static("__Host-cp_session=real"));
        assert_eq!(get(&h, "cp_session"), Some("real"));
        assert_eq!(get(&h, "other"), Some("1"));
        assert_eq!(get(&h, "missing"), None);
    }
}
