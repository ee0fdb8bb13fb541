//! Value types: identifiers, money, time and bounded text.
//!
//! Every type here is parsed at the edge: a value that exists is valid. Text types check their
//! limits in `TryFrom<String>`, and serde goes through the same check, so decoding bytes that
//! break a limit fails instead of smuggling an invalid value into the engine.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::limits;

/// A user of the platform (bidder, seller or admin). Assigned by the identity service; the
/// engine only compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u64);

/// Auction and group ids are the whole platform's vocabulary; they live in `martelo-types`.
pub use martelo_types::{AuctionId, GroupId};

/// A bid's position in its auction's bid history, starting at 0. Stable: voided bids keep
/// their id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BidId(pub u32);

/// Cluster time: microseconds since the Unix epoch, assigned by the group leader's hybrid
/// clock and carried inside every replicated entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

/// A span of cluster time in microseconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Micros(pub u64);

impl Micros {
    pub const SECOND: Micros = Micros(1_000_000);

    pub const fn from_secs(secs: u64) -> Micros {
        Micros(secs * 1_000_000)
    }
}

impl Timestamp {
    /// `self + span`, saturating: timestamps are far below `u64::MAX` (year 586,000), and a
    /// saturated end time simply never arrives.
    pub fn plus(self, span: Micros) -> Timestamp {
        Timestamp(self.0.saturating_add(span.0))
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Micros {
        Micros(self.0.saturating_sub(earlier.0))
    }
}

/// An amount of money in the auction currency's minor units (cents for USD).
///
/// Valid amounts lie in `1..=AMOUNT_MAX`; the engine checks that on every input, and all
/// arithmetic on amounts is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(pub u64);

impl Amount {
    /// True when the amount is a valid price: positive and at most `AMOUNT_MAX`.
    pub fn in_range(self) -> bool {
        (1..=limits::AMOUNT_MAX).contains(&self.0)
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
}

/// ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII upper-case letters, so this cannot fail.
        std::str::from_utf8(&self.0).expect("currency is ASCII by construction")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value failed to parse at the edge. `code()` is stable and machine-readable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{field} must be between {min} and {max} bytes, got {got}")]
    Length {
        field: &'static str,
        min: usize,
        max: usize,
        got: usize,
    },
    #[error("{field} contains a character that is not allowed")]
    Character { field: &'static str },
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Length { .. } => "invalid_length",
            ParseError::Character { .. } => "invalid_character",
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::try_from(value.as_str())
    }
}

impl TryFrom<&str> for Currency {
    type Error = ParseError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        let bytes = value.as_bytes();
        if bytes.len() != 3 {
            return Err(ParseError::Length {
                field: "currency",
                min: 3,
                max: 3,
                got: bytes.len(),
            });
        }
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(ParseError::Character { field: "currency" });
        }
        Ok(Currency([bytes[0], bytes[1], bytes[2]]))
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.as_str().to_owned()
    }
}

/// Declares a bounded text newtype whose constructor enforces a byte-length range and a
/// character rule.
macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, $field:literal, $min:expr, $max:expr, $allowed:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const BYTES_MAX: usize = $max;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                let got = value.len();
                if !($min..=$max).contains(&got) {
                    return Err(ParseError::Length { field: $field, min: $min, max: $max, got });
                }
                let allowed: fn(char) -> bool = $allowed;
                if !value.chars().all(allowed) {
                    return Err(ParseError::Character { field: $field });
                }
                Ok($name(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ParseError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                $name::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A client's idempotency key (the HTTP `Idempotency-Key` header or the WebSocket message
    /// field): 1 to 64 visible ASCII characters. A UUID fits.
    RequestId,
    "request_id",
    1,
    limits::REQUEST_ID_BYTES_MAX,
    |c| c.is_ascii_graphic()
);

bounded_text!(
    /// An auction's title: 1 to 200 bytes of UTF-8 without control characters.
    Title,
    "title",
    1,
    limits::TITLE_BYTES_MAX,
    |c| !c.is_control()
);

bounded_text!(
    /// An auction's description: up to 8 KiB of UTF-8; newlines and tabs are allowed.
    Description,
    "description",
    0,
    limits::DESCRIPTION_BYTES_MAX,
    |c| !c.is_control() || c == '\n' || c == '\t'
);

bounded_text!(
    /// An admin's or seller's stated reason (cancellation, void, suspension): 1 to 500 bytes.
    Reason,
    "reason",
    1,
    limits::REASON_BYTES_MAX,
    |c| !c.is_control() || c == '\n'
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_accepts_three_upper_case_letters_only() {
        assert_eq!(
            Currency::try_from("USD").map(|c| c.to_string()),
            Ok("USD".to_owned())
        );
        assert_eq!(
            Currency::try_from("usd").map_err(|e| e.code()),
            Err("invalid_character")
        );
        assert_eq!(
            Currency::try_from("US").map_err(|e| e.code()),
            Err("invalid_length")
        );
        assert_eq!(
            Currency::try_from("EURO").map_err(|e| e.code()),
            Err("invalid_length")
        );
    }

    #[test]
    fn request_id_limits_length_and_characters() {
        assert!(RequestId::try_from("3f2b-11ee:retry.1").is_ok());
        assert!(RequestId::try_from("").is_err());
        assert!(RequestId::try_from("a".repeat(64)).is_ok());
        assert!(RequestId::try_from("a".repeat(65)).is_err());
        assert_eq!(
            RequestId::try_from("has space").map_err(|e| e.code()),
            Err("invalid_character")
        );
    }

    #[test]
    fn text_limits_are_enforced_when_decoding() {
        let too_long = format!("\"{}\"", "x".repeat(limits::TITLE_BYTES_MAX + 1));
        assert!(serde_json::from_str::<Title>(&too_long).is_err());
        assert!(serde_json::from_str::<Title>("\"bell\\u0007\"").is_err());
        assert!(serde_json::from_str::<Description>("\"line one\\nline two\"").is_ok());
        assert!(serde_json::from_str::<Reason>("\"\"").is_err());
    }

    #[test]
    fn amount_range_excludes_zero_and_values_past_the_maximum() {
        assert!(!Amount(0).in_range());
        assert!(Amount(1).in_range());
        assert!(Amount(limits::AMOUNT_MAX).in_range());
        assert!(!Amount(limits::AMOUNT_MAX + 1).in_range());
    }
}
