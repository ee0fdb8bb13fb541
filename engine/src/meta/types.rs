//! Value types of the meta group: account names, secrets the gateway computed, and ids.
//!
//! As in [`crate::types`], a value that exists is valid: constructors check the limits in
//! [`crate::limits`], and serde goes through the same checks, so decoding cannot smuggle an
//! invalid name into the state.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits;
use crate::types::ParseError;

/// A username in its folded (canonical) form: unique across the cluster.
///
/// The rule: lower-case the input (Unicode `to_lowercase`, which covers ASCII), then require
/// 3 to 32 characters of `[a-z0-9_.-]`, the first a letter or a digit. Folding before the
/// check means look-alikes that lower-case to ASCII (the Kelvin sign `K` becomes `k`) fold
/// into the same name and cannot register twice; anything else outside ASCII is refused.
/// The first-character rule keeps names like `.` and `..` out of URLs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Folds user input into a username; the edge (gateway, CLI) calls this.
    pub fn fold(input: &str) -> Result<Username, ParseError> {
        if input.len() > limits::USERNAME_INPUT_BYTES_MAX {
            return Err(ParseError::Length {
                field: "username",
                min: limits::USERNAME_CHARS_MIN,
                max: limits::USERNAME_CHARS_MAX,
                got: input.chars().count(),
            });
        }
        let folded = input.to_lowercase();
        let got = folded.chars().count();
        if !(limits::USERNAME_CHARS_MIN..=limits::USERNAME_CHARS_MAX).contains(&got) {
            return Err(ParseError::Length {
                field: "username",
                min: limits::USERNAME_CHARS_MIN,
                max: limits::USERNAME_CHARS_MAX,
                got,
            });
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
        let starts_well = folded
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if !starts_well || !folded.chars().all(allowed) {
            return Err(ParseError::Character { field: "username" });
        }
        Ok(Username(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Strict: only an already folded name decodes, so stored names are canonical.
impl TryFrom<String> for Username {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let folded = Username::fold(&value)?;
        if folded.0 != value {
            return Err(ParseError::Character { field: "username" });
        }
        Ok(folded)
    }
}

impl TryFrom<&str> for Username {
    type Error = ParseError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Username::try_from(value.to_owned())
    }
}

impl From<Username> for String {
    fn from(value: Username) -> String {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name shown to other people: 1 to 64 characters, no control characters. Not unique.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let got = value.chars().count();
        if !(1..=limits::DISPLAY_NAME_CHARS_MAX).contains(&got) {
            return Err(ParseError::Length {
                field: "display_name",
                min: 1,
                max: limits::DISPLAY_NAME_CHARS_MAX,
                got,
            });
        }
        if value.chars().any(char::is_control) {
            return Err(ParseError::Character {
                field: "display_name",
            });
        }
        Ok(DisplayName(value))
    }
}

impl TryFrom<&str> for DisplayName {
    type Error = ParseError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        DisplayName::try_from(value.to_owned())
    }
}

impl From<DisplayName> for String {
    fn from(value: DisplayName) -> String {
        value.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`),
/// computed and verified by the gateway; the meta group only stores it. Opaque here: 1 to
/// 256 visible ASCII characters starting with `$`. `Debug` hides it, so it never reaches a
/// log through a derived `Debug` of a command or an account.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string, for the gateway's verifier.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let got = value.len();
        if !(1..=limits::PASSWORD_HASH_BYTES_MAX).contains(&got) {
            return Err(ParseError::Length {
                field: "password_hash",
                min: 1,
                max: limits::PASSWORD_HASH_BYTES_MAX,
                got,
            });
        }
        if !value.starts_with('$') || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::Character {
                field: "password_hash",
            });
        }
        Ok(PasswordHash(value))
    }
}

impl TryFrom<&str> for PasswordHash {
    type Error = ParseError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        PasswordHash::try_from(value.to_owned())
    }
}

impl From<PasswordHash> for String {
    fn from(value: PasswordHash) -> String {
        value.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A hash (SHA-256 or BLAKE3, the gateway's choice) of a refresh token. The token itself
/// never enters the log; a leaked hash does not give the token back. `Debug` hides it anyway.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// A refresh-token family: one login and every token rotated from it. Chosen by the gateway
/// as a random 128-bit value (see the module doc of [`crate::meta`] for why).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FamilyId(pub u128);

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A cluster node's Raft id (openraft's `NodeId = u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_to_lower_case_and_ascii_look_alikes_fold_into_the_same_name() {
        assert_eq!(Username::fold("Alice_01").unwrap().as_str(), "alice_01");
        // U+212A KELVIN SIGN lower-cases to ASCII `k`.
        assert_eq!(Username::fold("\u{212A}im").unwrap().as_str(), "kim");
        assert_eq!(
            Username::fold("JOSÉ").map_err(|e| e.code()),
            Err("invalid_character")
        );
    }

    #[test]
    fn usernames_have_3_to_32_characters_of_the_allowed_set_starting_alphanumeric() {
        assert!(Username::fold("abc").is_ok());
        assert!(Username::fold(&"a".repeat(32)).is_ok());
        assert!(Username::fold("a.b-c_9").is_ok());
        let code = |input: &str| Username::fold(input).map_err(|e| e.code());
        assert_eq!(code("ab"), Err("invalid_length"));
        assert_eq!(code(&"a".repeat(33)), Err("invalid_length"));
        assert_eq!(code(&"a".repeat(1_000)), Err("invalid_length"));
        assert_eq!(code("has space"), Err("invalid_character"));
        assert_eq!(code(".hidden"), Err("invalid_character"));
        assert_eq!(code("_under"), Err("invalid_character"));
        assert_eq!(code("a@b.c"), Err("invalid_character"));
    }

    #[test]
    fn only_folded_usernames_decode() {
        assert!(serde_json::from_str::<Username>("\"alice\"").is_ok());
        assert!(serde_json::from_str::<Username>("\"Alice\"").is_err());
        assert!(Username::try_from("Alice").is_err());
    }

    #[test]
    fn display_names_have_1_to_64_characters_and_no_control_characters() {
        assert!(DisplayName::try_from("Zoë Ångström").is_ok());
        assert!(
            DisplayName::try_from("é".repeat(64)).is_ok(),
            "characters, not bytes"
        );
        assert!(DisplayName::try_from("é".repeat(65)).is_err());
        assert!(DisplayName::try_from("").is_err());
        assert!(DisplayName::try_from("bell\u{7}").is_err());
        assert!(DisplayName::try_from("two\nlines").is_err());
    }

    #[test]
    fn password_hashes_are_phc_shaped_bounded_and_never_debug_printed() {
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        let hash = PasswordHash::try_from(phc).unwrap();
        assert_eq!(hash.as_phc(), phc);
        assert!(!format!("{hash:?}").contains("argon2"));
        assert!(PasswordHash::try_from("plain").is_err());
        assert!(PasswordHash::try_from("$has space").is_err());
        assert!(PasswordHash::try_from(format!("${}", "x".repeat(255))).is_ok());
        assert!(PasswordHash::try_from(format!("${}", "x".repeat(256))).is_err());
        assert!(!format!("{:?}", TokenHash([7; 32])).contains('7'));
    }
}
