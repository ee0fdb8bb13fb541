//! Refresh tokens: opaque random strings `mr1.<family>.<secret>`, where `family` is the
//! session's [`FamilyId`] as 32 lower-case hex digits and `secret` is 32 random bytes in
//! base64url without padding.
//!
//! The meta group stores only `blake3(token)` ([`TokenHash`]): a copy of its state gives no
//! usable token. Rotation presents the old token's hash and installs the new one's; the
//! meta group revokes the whole family when a token other than the family's current one is
//! presented (a replay means a token leaked).

use base64::Engine as _;
use martelo_engine::meta::{FamilyId, TokenHash};

/// The format's prefix (and version).
const PREFIX: &str = "mr1";
/// Length of the secret part: 32 bytes in base64url without padding.
const SECRET_CHARS: usize = 43;
/// Length of a whole token.
pub const REFRESH_TOKEN_CHARS: usize = PREFIX.len() + 1 + 32 + 1 + SECRET_CHARS;

/// A refresh token. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    family: FamilyId,
    text: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RefreshToken({}, <redacted>)", self.family)
    }
}

impl RefreshToken {
    /// A new token in `family`.
    pub fn generate(family: FamilyId) -> RefreshToken {
        let secret: [u8; 32] = rand::random();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        RefreshToken {
            family,
            text: format!("{PREFIX}.{family}.{secret}"),
        }
    }

    /// A new random family id (128 bits: unguessable, see `martelo_engine::meta`).
    pub fn new_family() -> FamilyId {
        FamilyId(rand::random::<u128>())
    }

    /// Parses a presented token; `None` when it does not have the format.
    pub fn parse(text: &str) -> Option<RefreshToken> {
        if text.len() != REFRESH_TOKEN_CHARS {
            return None;
        }
        let mut parts = text.split('.');
        let (prefix, family, secret) = (parts.next()?, parts.next()?, parts.next()?);
        if prefix != PREFIX || parts.next().is_some() {
            return None;
        }
        let hex_ok = family.len() == 32
            && family
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return None;
        }
        let family = FamilyId(u128::from_str_radix(family, 16).ok()?);
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret)
            .ok()?;
        if decoded.len() != 32 {
            return None;
        }
        Some(RefreshToken {
            family,
            text: text.to_owned(),
        })
    }

    /// The session this token belongs to.
    pub fn family(&self) -> FamilyId {
        self.family
    }

    /// What the meta group stores: `blake3` of the whole token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(*blake3::hash(self.text.as_bytes()).as_bytes())
    }

    /// The token as sent to the client. Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_with_its_family_and_hash() {
        let family = RefreshToken::new_family();
        let token = RefreshToken::generate(family);
        assert_eq!(token.expose().len(), REFRESH_TOKEN_CHARS);
        assert!(token.expose().starts_with(&format!("mr1.{family}.")));
        let parsed = RefreshToken::parse(token.expose()).expect("parses");
        assert_eq!(parsed.family(), family);
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(
            RefreshToken::generate(family).hash(),
            token.hash(),
            "random"
        );
        assert!(!format!("{token:?}").contains(&token.expose()[40..]));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let good = RefreshToken::generate(FamilyId(5)).expose().to_owned();
        assert!(RefreshToken::parse(&good).is_some());
        let cases = [
            String::new(),
            good.replacen("mr1", "mr2", 1),
            good.replacen('.', ":", 1),
            format!("{good}x"),
            good[..good.len() - 1].to_owned(),
            good.replace(&good[4..36], &"G".repeat(32)),
            good.replace(&good[4..36], &"A".repeat(32)),
            format!("{}!", &good[..good.len() - 1]),
        ];
        for case in cases {
            assert!(RefreshToken::parse(&case).is_none(), "{case}");
        }
    }
}
