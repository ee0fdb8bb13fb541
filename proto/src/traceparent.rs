//! The W3C trace context `traceparent` value, parsed at the edge.
//!
//! `ProposeRequest.traceparent` is copied into the replicated entry so the trace reaches
//! apply and the sink; an unchecked string there would put attacker-sized garbage into the
//! log. Servers parse it with `Traceparent::try_from` and treat an empty string as "no trace".
//! Only version `00` is accepted: it is the only version defined, and the fixed length
//! bounds what the log stores.

use std::fmt;

use crate::limits::TRACEPARENT_BYTES;

/// A valid version-00 `traceparent`, for example
/// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Traceparent(String);

/// Why a string is not a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceparentError {
    /// Not exactly [`TRACEPARENT_BYTES`] bytes long.
    Length { length: usize },
    /// Not `version-trace_id-parent_id-flags` with lowercase hex in each part.
    Format,
    /// A version other than `00`.
    UnsupportedVersion,
    /// The trace id or the parent id is all zeros, which W3C defines as invalid.
    ZeroId,
}

impl Traceparent {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32-hex-digit trace id, for log fields.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }
}

impl TryFrom<&str> for Traceparent {
    type Error = TraceparentError;

    fn try_from(value: &str) -> Result<Traceparent, TraceparentError> {
        if value.len() != TRACEPARENT_BYTES {
            return Err(TraceparentError::Length {
                length: value.len(),
            });
        }
        let parts: Vec<&str> = value.split('-').collect();
        let [version, trace_id, parent_id, flags] = parts[..] else {
            return Err(TraceparentError::Format);
        };
        let lengths_ok =
            version.len() == 2 && trace_id.len() == 32 && parent_id.len() == 16 && flags.len() == 2;
        let is_lower_hex =
            |part: &str| part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !lengths_ok
            || ![version, trace_id, parent_id, flags]
                .into_iter()
                .all(is_lower_hex)
        {
            return Err(TraceparentError::Format);
        }
        if version != "00" {
            return Err(TraceparentError::UnsupportedVersion);
        }
        let is_zero = |part: &str| part.bytes().all(|b| b == b'0');
        if is_zero(trace_id) || is_zero(parent_id) {
            return Err(TraceparentError::ZeroId);
        }
        Ok(Traceparent(value.to_owned()))
    }
}

impl fmt::Display for Traceparent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceparentError::Length { length } => {
                write!(
                    formatter,
                    "traceparent is {length} bytes, expected {TRACEPARENT_BYTES}"
                )
            }
            TraceparentError::Format => {
                formatter.write_str("traceparent is not 00-<32 hex>-<16 hex>-<2 hex>")
            }
            TraceparentError::UnsupportedVersion => {
                formatter.write_str("traceparent version is not 00")
            }
            TraceparentError::ZeroId => formatter.write_str("traceparent has an all-zero id"),
        }
    }
}

impl std::error::Error for TraceparentError {}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_version_00_traceparent_is_accepted() {
        let parsed = Traceparent::try_from(VALID).unwrap();
        assert_eq!(parsed.as_str(), VALID);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn wrong_length_is_rejected_before_parsing() {
        assert_eq!(
            Traceparent::try_from(""),
            Err(TraceparentError::Length { length: 0 })
        );
        let long = format!("{VALID}-extra");
        assert!(matches!(
            Traceparent::try_from(long.as_str()),
            Err(TraceparentError::Length { .. })
        ));
    }

    #[test]
    fn uppercase_hex_and_misplaced_dashes_are_rejected() {
        let upper = VALID.to_ascii_uppercase();
        assert_eq!(
            Traceparent::try_from(upper.as_str()),
            Err(TraceparentError::Format)
        );
        let shifted = "004-bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            Traceparent::try_from(shifted),
            Err(TraceparentError::Format)
        );
    }

    #[test]
    fn other_versions_and_zero_ids_are_rejected() {
        let version = VALID.replacen("00", "01", 1);
        assert_eq!(
            Traceparent::try_from(version.as_str()),
            Err(TraceparentError::UnsupportedVersion)
        );
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(
            Traceparent::try_from(zero_trace),
            Err(TraceparentError::ZeroId)
        );
        let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert_eq!(
            Traceparent::try_from(zero_parent),
            Err(TraceparentError::ZeroId)
        );
    }
}
