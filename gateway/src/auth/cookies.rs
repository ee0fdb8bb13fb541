//! Cookies for the web UI, and the CSRF rule for cookie-authenticated requests.
//!
//! On sign-in and refresh the gateway sets three cookies:
//! - [`ACCESS_COOKIE`]: the access token, `HttpOnly; SameSite=Strict; Path=/`;
//! - [`REFRESH_COOKIE`]: the refresh token, `HttpOnly; SameSite=Strict;
//!   Path=/v1/sessions` (only the session routes ever see it);
//! - [`CSRF_COOKIE`]: a random value the page's script can read (not `HttpOnly`).
//!
//! All get `Secure` when `tokens.secure_cookies` is on. A request authenticated by cookie
//! with an unsafe method (anything but GET, HEAD, OPTIONS) must send the CSRF cookie's
//! value in the `X-CSRF-Token` header (double submit): another site can make the browser
//! send the cookies, but cannot read them to copy the value. Bearer requests need no CSRF
//! token: browsers never attach an `Authorization` header on their own.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;

use crate::error::{Problem, codes};

/// The access token cookie.
pub const ACCESS_COOKIE: &str = "martelo_access";
/// The refresh token cookie.
pub const REFRESH_COOKIE: &str = "martelo_refresh";
/// The CSRF cookie (readable by the page).
pub const CSRF_COOKIE: &str = "martelo_csrf";
/// The header that must repeat the CSRF cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where the refresh cookie is sent.
pub const REFRESH_COOKIE_PATH: &str = "/v1/sessions";
/// Longest cookie value read, bytes.
const COOKIE_VALUE_BYTES_MAX: usize = 4096;

/// The value of cookie `name` in the request's `Cookie` headers, if present and sane.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty() && value.len() <= COOKIE_VALUE_BYTES_MAX)
}

/// A fresh random CSRF value (32 bytes, base64url).
pub fn new_csrf_value() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    http_only: bool,
    secure: bool,
) -> HeaderValue {
    let mut text = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; SameSite=Strict");
    if http_only {
        text.push_str("; HttpOnly");
    }
    if secure {
        text.push_str("; Secure");
    }
    // Names, paths and values are ours (token alphabets): always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The three cookies of a session: access, refresh and CSRF.
pub fn session_cookies(
    access: &str,
    access_ttl_secs: u64,
    refresh: &str,
    refresh_ttl_secs: u64,
    secure: bool,
) -> [HeaderValue; 3] {
    [
        set_cookie(ACCESS_COOKIE, access, "/", access_ttl_secs, true, secure),
        set_cookie(
            REFRESH_COOKIE,
            refresh,
            REFRESH_COOKIE_PATH,
            refresh_ttl_secs,
            true,
            secure,
        ),
        set_cookie(
            CSRF_COOKIE,
            &new_csrf_value(),
            "/",
            refresh_ttl_secs,
            false,
            secure,
        ),
    ]
}

/// The cookies that delete a session's cookies (logout).
pub fn cleared_cookies(secure: bool) -> [HeaderValue; 3] {
    [
        set_cookie(ACCESS_COOKIE, "", "/", 0, true, secure),
        set_cookie(REFRESH_COOKIE, "", REFRESH_COOKIE_PATH, 0, true, secure),
        set_cookie(CSRF_COOKIE, "", "/", 0, false, secure),
    ]
}

/// Whether `method` may change state (and so needs CSRF protection under cookie auth).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The double-submit check: for a cookie-authenticated request with an unsafe method, the
/// `X-CSRF-Token` header must equal the CSRF cookie. 403 `csrf_failed` otherwise.
pub fn check_csrf(via_cookie: bool, method: &Method, headers: &HeaderMap) -> Result<(), Problem> {
    if !via_cookie || !is_unsafe(method) {
        return Ok(());
    }
    let cookie = get(headers, CSRF_COOKIE);
    let header = headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok());
    match (cookie, header) {
        (Some(cookie), Some(header)) if constant_time_eq(cookie.as_bytes(), header.as_bytes()) => {
            Ok(())
        }
        _ => Err(Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            codes::CSRF_FAILED,
            "a cookie-authenticated change needs the X-CSRF-Token header equal to the \
             martelo_csrf cookie",
        )),
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn cookies_are_found_among_several_headers_and_pairs() {
        let map = headers(&[
            ("cookie", "a=1; martelo_access=tok"),
            ("cookie", "martelo_csrf=xyz"),
        ]);
        assert_eq!(get(&map, ACCESS_COOKIE), Some("tok"));
        assert_eq!(get(&map, CSRF_COOKIE), Some("xyz"));
        assert_eq!(get(&map, REFRESH_COOKIE), None);
        assert_eq!(
            get(&headers(&[("cookie", "martelo_access=")]), ACCESS_COOKIE),
            None
        );
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_when_asked() {
        let [access, refresh, csrf] = session_cookies("a", 60, "r", 600, true);
        let access = access.to_str().expect("ascii");
        assert!(access.contains("HttpOnly") && access.contains("SameSite=Strict"));
        assert!(access.contains("Secure") && access.contains("Path=/;"));
        assert!(
            refresh
                .to_str()
                .expect("ascii")
                .contains("Path=/v1/sessions")
        );
        assert!(!csrf.to_str().expect("ascii").contains("HttpOnly"));
        let [plain, ..] = session_cookies("a", 60, "r", 600, false);
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }

    #[test]
    fn csrf_is_needed_only_for_unsafe_methods_under_cookie_auth() {
        let none = HeaderMap::new();
        assert!(check_csrf(false, &Method::POST, &none).is_ok(), "bearer");
        assert!(check_csrf(true, &Method::GET, &none).is_ok(), "safe method");
        let error = check_csrf(true, &Method::POST, &none).expect_err("missing");
        assert_eq!((error.status, error.code.as_ref()), (403, "csrf_failed"));
        let good = headers(&[("cookie", "martelo_csrf=abc"), ("x-csrf-token", "abc")]);
        assert!(check_csrf(true, &Method::DELETE, &good).is_ok());
        let bad = headers(&[("cookie", "martelo_csrf=abc"), ("x-csrf-token", "abd")]);
        assert!(check_csrf(true, &Method::PUT, &bad).is_err());
        let header_only = headers(&[("x-csrf-token", "abc")]);
        assert!(check_csrf(true, &Method::POST, &header_only).is_err());
    }
}
