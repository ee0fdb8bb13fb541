//! Access tokens: HS256 JWTs with `iss`, `aud`, `sub` (the user id), `exp`, `iat`, `roles`
//! and a `kid` header naming the key in the [`KeyRing`].
//!
//! Verification pins the algorithm (exactly `[HS256]`: `alg: none` and every other
//! algorithm fail), requires and checks `exp`, `iss`, `aud` and `sub`, and looks the key up
//! by `kid` (an unknown `kid` fails). An expired token is `token_expired`, every other
//! failure `unauthorized`, so a client knows when to refresh.

use std::collections::BTreeSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use martelo_engine::meta::FamilyId;
use martelo_engine::{Role, UserId};
use serde::{Deserialize, Serialize};

use crate::auth::keys::KeyRing;
use crate::config::TokenConfig;
use crate::error::{Problem, codes};

/// The only algorithm issued and accepted.
pub const ALGORITHM: Algorithm = Algorithm::HS256;
/// Clock skew tolerated on `exp`, seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Longest access token read, bytes (a real one is a few hundred).
pub const TOKEN_BYTES_MAX: usize = 4096;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id, in decimal (JWT subjects are strings).
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    /// `bidder`, `seller`, `admin`.
    pub roles: Vec<String>,
    /// The refresh-token family (session) the token was issued in, 32 hex digits: logout
    /// revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// A freshly signed access token. `Debug` hides the token.
pub struct Issued {
    /// The compact JWT. Never log it.
    pub token: String,
    /// Its expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user: UserId,
    pub roles: BTreeSet<Role>,
    pub expires_at: u64,
    /// The session (refresh-token family) it was issued in.
    pub session: Option<FamilyId>,
}

/// Signs an access token for `user` with `roles`, valid from `now` (Unix seconds) for the
/// configured lifetime.
pub fn issue(
    ring: &KeyRing,
    config: &TokenConfig,
    user: UserId,
    roles: &BTreeSet<Role>,
    session: Option<FamilyId>,
    now: u64,
) -> Result<Issued, Problem> {
    let expires_at = now.saturating_add(config.access_ttl_secs);
    let claims = Claims {
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        sub: user.0.to_string(),
        exp: expires_at,
        iat: now,
        roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
        sid: session.map(|family| family.to_string()),
    };
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(ring.current_kid().to_owned());
    let token = jsonwebtoken::encode(&header, &claims, ring.signing_key()).map_err(|error| {
        tracing::error!(%error, "signing an access token failed");
        Problem::internal()
    })?;
    Ok(Issued { token, expires_at })
}

/// Verifies `token` against the ring and the configured issuer and audience.
pub fn verify(ring: &KeyRing, config: &TokenConfig, token: &str) -> Result<Verified, Problem> {
    let invalid =
        |why: &str| Problem::unauthorized(format!("the access token is not valid: {why}"));
    if token.len() > TOKEN_BYTES_MAX {
        return Err(invalid("too long"));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed header"))?;
    if header.alg != ALGORITHM {
        return Err(invalid("algorithm not accepted"));
    }
    let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
    let key = ring
        .verifying_key(&kid)
        .ok_or_else(|| invalid("unknown key id"))?;
    let mut validation = Validation::new(ALGORITHM);
    validation.algorithms = vec![ALGORITHM];
    validation.leeway = LEEWAY_SECS;
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|error| {
            match error.kind() {
                ErrorKind::ExpiredSignature => Problem::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    codes::TOKEN_EXPIRED,
                    "the access token has expired: refresh it",
                ),
                ErrorKind::InvalidSignature => invalid("bad signature"),
                ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                ErrorKind::InvalidAudience => invalid("wrong audience"),
                ErrorKind::InvalidAlgorithm => invalid("algorithm not accepted"),
                _ => invalid("malformed"),
            }
        })?;
    let claims = data.claims;
    let user = claims
        .sub
        .parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .map(UserId)
        .ok_or_else(|| invalid("malformed subject"))?;
    let mut roles = BTreeSet::new();
    for name in &claims.roles {
        roles.insert(name.parse::<Role>().map_err(|_| invalid("unknown role"))?);
    }
    let session = match claims.sid.as_deref() {
        None => None,
        Some(hex) if hex.len() == 32 => Some(FamilyId(
            u128::from_str_radix(hex, 16).map_err(|_| invalid("malformed session id"))?,
        )),
        Some(_) => return Err(invalid("malformed session id")),
    };
    Ok(Verified {
        user,
        roles,
        expires_at: claims.exp,
        session,
    })
}

/// Seconds since the Unix epoch, from this gateway's clock (token lifetimes only; auction
/// time comes from the cluster).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn ring(kid: &str, byte: u8) -> KeyRing {
        KeyRing::from_secrets(kid, [(kid.to_owned(), vec![byte; 32])]).expect("ring")
    }

    fn roles() -> BTreeSet<Role> {
        [Role::Bidder, Role::Seller].into_iter().collect()
    }

    fn code(result: Result<Verified, Problem>) -> String {
        result.expect_err("rejected").code.into_owned()
    }

    #[test]
    fn a_token_round_trips_with_user_roles_and_expiry() {
        let config = TokenConfig::default();
        let ring = ring("k1", 1);
        let now = unix_now();
        let family = Some(FamilyId(0xabc));
        let issued = issue(&ring, &config, UserId(42), &roles(), family, now).expect("issued");
        let verified = verify(&ring, &config, &issued.token).expect("valid");
        assert_eq!(verified.session, family);
        assert_eq!(verified.user, UserId(42));
        assert_eq!(verified.roles, roles());
        assert_eq!(verified.expires_at, now + config.access_ttl_secs);
    }

    #[test]
    fn expired_tokens_are_token_expired_and_other_failures_unauthorized() {
        let config = TokenConfig::default();
        let ring = ring("k1", 1);
        let old = unix_now() - config.access_ttl_secs - 60;
        let expired = issue(&ring, &config, UserId(1), &roles(), None, old).expect("issued");
        assert_eq!(
            code(verify(&ring, &config, &expired.token)),
            "token_expired"
        );

        let fresh = issue(&ring, &config, UserId(1), &roles(), None, unix_now()).expect("issued");
        let other_key = ring_with_same_kid_other_secret();
        assert_eq!(
            code(verify(&other_key, &config, &fresh.token)),
            "unauthorized"
        );
        assert_eq!(
            code(verify(&self::ring("k2", 1), &config, &fresh.token)),
            "unauthorized",
            "unknown kid"
        );
        let wrong_aud = TokenConfig {
            audience: "someone-else".into(),
            ..TokenConfig::default()
        };
        assert_eq!(
            code(verify(&ring, &wrong_aud, &fresh.token)),
            "unauthorized"
        );
        let wrong_iss = TokenConfig {
            issuer: "mallory".into(),
            ..TokenConfig::default()
        };
        assert_eq!(
            code(verify(&ring, &wrong_iss, &fresh.token)),
            "unauthorized"
        );
        assert_eq!(code(verify(&ring, &config, "not.a.jwt")), "unauthorized");
        assert_eq!(code(verify(&ring, &config, "")), "unauthorized");
    }

    fn ring_with_same_kid_other_secret() -> KeyRing {
        ring("k1", 2)
    }

    #[test]
    fn alg_none_and_a_tampered_payload_are_refused() {
        let config = TokenConfig::default();
        let ring = ring("k1", 1);
        let issued = issue(&ring, &config, UserId(7), &roles(), None, unix_now()).expect("issued");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = issued.token.split('.');
        let (_, payload, signature) = (
            parts.next().expect("header"),
            parts.next().expect("payload"),
            parts.next().expect("signature"),
        );
        let none_header = b64.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let alg_none = format!("{none_header}.{payload}.");
        assert_eq!(code(verify(&ring, &config, &alg_none)), "unauthorized");
        let hs512_header = b64.encode(br#"{"alg":"HS512","typ":"JWT","kid":"k1"}"#);
        assert_eq!(
            code(verify(
                &ring,
                &config,
                &format!("{hs512_header}.{payload}.{signature}")
            )),
            "unauthorized"
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(payload).expect("b64")).expect("json");
        let mut admin = claims.clone();
        admin["roles"] = serde_json::json!(["admin"]);
        let tampered = b64.encode(serde_json::to_vec(&admin).expect("json"));
        let header = issued.token.split('.').next().expect("header");
        assert_eq!(
            code(verify(
                &ring,
                &config,
                &format!("{header}.{tampered}.{signature}")
            )),
            "unauthorized"
        );
    }

    #[test]
    fn every_kid_of_the_ring_verifies_and_the_current_one_signs() {
        let config = TokenConfig::default();
        let old = ring("old", 1);
        let token = issue(&old, &config, UserId(3), &roles(), None, unix_now())
            .expect("issued")
            .token;
        let rotated = KeyRing::from_secrets(
            "new",
            [
                ("old".to_owned(), vec![1; 32]),
                ("new".to_owned(), vec![9; 32]),
            ],
        )
        .expect("ring");
        assert_eq!(
            verify(&rotated, &config, &token).expect("old kid").user,
            UserId(3)
        );
        let new_token = issue(&rotated, &config, UserId(3), &roles(), None, unix_now())
            .expect("issued")
            .token;
        let header = jsonwebtoken::decode_header(&new_token).expect("header");
        assert_eq!(header.kid.as_deref(), Some("new"));
    }
}
