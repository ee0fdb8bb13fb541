//! The gateway's token parsers with a fixed key ring: access-token verification
//! (`auth::tokens::verify`, every request's `Authorization` or cookie), the refresh-token
//! parser (`auth::refresh::RefreshToken::parse`), and the header readers in front of them
//! (`auth::presented_token`, `auth::cookies::get`, `auth::cookies::check_csrf`).
//!
//! The fuzzer cannot forge an HMAC, so besides raw strings it also sends a token whose
//! header and claims are fuzzed JSON, signed here with the ring's key: what an attacker
//! holding a key could send, and the only way to reach the claim checks.
//!
//! Contract: a verified token names a user above 0, known roles, a session of 32 hex digits,
//! and verifies again when issued anew for the same user; a refusal is 401 `unauthorized` or
//! `token_expired` whose detail stays small and never quotes the token. A parsed refresh
//! token is the text presented, in its one format, and its `Debug` hides the secret.
#![no_main]

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use martelo_fuzz::assert_bounded_message;
use martelo_gateway::auth::keys::KeyRing;
use martelo_gateway::auth::refresh::{REFRESH_TOKEN_CHARS, RefreshToken};
use martelo_gateway::auth::{cookies, presented_token, tokens};
use martelo_gateway::config::TokenConfig;

/// The ring's keys: `k1` (current) and `k0` (an older one that still verifies).
const SECRETS: [(&str, [u8; 32]); 2] = [("k1", [1; 32]), ("k0", [2; 32])];

static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    KeyRing::from_secrets(
        "k1",
        SECRETS.iter().map(|(kid, secret)| ((*kid).to_owned(), secret.to_vec())),
    )
    .expect("a ring")
});

static CONFIG: LazyLock<TokenConfig> = LazyLock::new(TokenConfig::default);

fn verify(token: &str) {
    match tokens::verify(&RING, &CONFIG, token) {
        Ok(verified) => {
            assert!(token.len() <= tokens::TOKEN_BYTES_MAX);
            assert!(verified.user.0 > 0);
            // Issued anew for the same user, roles and session, it verifies to the same.
            let issued = tokens::issue(
                &RING,
                &CONFIG,
                verified.user,
                &verified.roles,
                verified.session,
                tokens::unix_now(),
            )
            .expect("a token is issued");
            let again = tokens::verify(&RING, &CONFIG, &issued.token).expect("it verifies");
            assert_eq!(
                (again.user, &again.roles, again.session),
                (verified.user, &verified.roles, verified.session)
            );
        }
        Err(problem) => {
            assert_eq!(problem.status, 401, "{problem:?}");
            assert!(
                matches!(&*problem.code, "unauthorized" | "token_expired"),
                "{problem:?}"
            );
            assert_bounded_message("access token", &problem.detail, token.len());
            // The fixed details are shorter than 64 bytes: one holding a token that long
            // would be quoting it.
            if token.len() >= 64 {
                assert!(!problem.detail.contains(token), "the problem quotes the token");
            }
        }
    }
}

/// `header.claims.signature` with `header` and `claims` as given, signed with `kid`'s key.
fn signed(kid_index: usize, header_json: &[u8], claims_json: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(header_json), b64.encode(claims_json));
    let key = EncodingKey::from_secret(&SECRETS[kid_index % SECRETS.len()].1).expect("a key");
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("signs");
    format!("{message}.{signature}")
}

fn refresh(text: &str) {
    let Some(token) = RefreshToken::parse(text) else {
        return;
    };
    assert_eq!(token.expose(), text);
    assert_eq!(text.len(), REFRESH_TOKEN_CHARS);
    assert!(text.starts_with(&format!("mr1.{}.", token.family())));
    assert_eq!(RefreshToken::parse(token.expose()), Some(token.clone()));
    let shown = format!("{token:?}");
    assert!(!shown.contains(&text[text.len() - 16..]), "Debug shows the secret: {shown}");
}

fn headers(data: &[u8]) {
    // [authorization][0xff][cookie][0xff][csrf header]; a part that is not a valid header
    // value is left out, as hyper would refuse it.
    let mut parts = data.split(|&byte| byte == 0xff);
    let mut headers = HeaderMap::new();
    for name in [header::AUTHORIZATION, header::COOKIE] {
        if let Some(Ok(value)) = parts.next().filter(|part| !part.is_empty()).map(HeaderValue::from_bytes) {
            headers.insert(name, value);
        }
    }
    if let Some(Ok(value)) = parts.next().map(HeaderValue::from_bytes) {
        headers.insert(cookies::CSRF_HEADER, value);
    }
    match presented_token(&headers) {
        Ok((token, via_cookie)) => {
            assert!(!token.is_empty());
            assert_eq!(via_cookie, !headers.contains_key(header::AUTHORIZATION));
            verify(token);
            let checked = cookies::check_csrf(via_cookie, &Method::POST, &headers);
            if let Err(problem) = checked {
                assert_eq!((problem.status, &*problem.code), (403, "csrf_failed"));
                assert!(via_cookie);
            }
            assert!(cookies::check_csrf(via_cookie, &Method::GET, &headers).is_ok());
        }
        Err(problem) => {
            assert_eq!((problem.status, &*problem.code), (401, "unauthorized"));
        }
    }
    for name in [cookies::ACCESS_COOKIE, cookies::REFRESH_COOKIE, cookies::CSRF_COOKIE] {
        if let Some(value) = cookies::get(&headers, name) {
            assert!(!value.is_empty() && value.len() <= 4096);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                verify(token);
            }
        }
        1 => {
            // [header JSON][0xff][claims JSON], signed with key `selector / 4`.
            let mut parts = rest.splitn(2, |&byte| byte == 0xff);
            let header_json = parts.next().unwrap_or_default();
            let claims_json = parts.next().unwrap_or_default();
            verify(&signed(usize::from(selector / 4), header_json, claims_json));
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                refresh(text);
            }
        }
        _ => headers(rest),
    }
});
