//! Keyset cursors: the sort key of a page's last row, handed to the client as an opaque
//! string and parsed back, strictly, when it returns.
//!
//! The text is `TAG:N:N…` (a tag naming the query, then the key's integers, each a `u64`:
//! ids as the engine's `u64`, which [`crate::ids`] maps to the stored `BIGINT`), but clients
//! must treat it as opaque: the format may change. A cursor from another query, with the
//! wrong number of fields, a field that is not a non-negative integer, a time or index above
//! `i64::MAX` ([`bigint`]), or longer than [`CURSOR_BYTES_MAX`] is a [`CursorError`], never a
//! panic and never a silent first page.

/// Longest cursor accepted.
pub const CURSOR_BYTES_MAX: usize = 128;

/// A cursor that this query did not issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: {reason}")]
pub struct CursorError {
    pub reason: &'static str,
}

/// Which query a cursor belongs to, and how many integers its key has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorKind {
    /// Closed auctions: (closed_at µs, auction_id).
    Closed,
    /// A user's bids: (at µs, auction_id, bid_id).
    UserBids,
    /// A user's wins: (at µs, auction_id).
    UserWins,
    /// The audit search: (at µs, group_id, log_index, position).
    Audit,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            CursorKind::Closed => "c1",
            CursorKind::UserBids => "b1",
            CursorKind::UserWins => "w1",
            CursorKind::Audit => "e1",
        }
    }

    fn fields(self) -> usize {
        match self {
            CursorKind::Closed | CursorKind::UserWins => 2,
            CursorKind::UserBids => 3,
            CursorKind::Audit => 4,
        }
    }
}

/// The cursor text for `key` (its length must be `kind`'s field count).
pub(crate) fn encode(kind: CursorKind, key: &[u64]) -> String {
    debug_assert_eq!(key.len(), kind.fields());
    let mut text = kind.tag().to_owned();
    for value in key {
        text.push(':');
        text.push_str(&value.to_string());
    }
    text
}

/// A time, index or position of a key as the cursor holds it. Those columns are written
/// from values the sink checked to fit a `BIGINT` (never negative), so nothing is lost.
pub(crate) fn field(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A cursor field that is a time, index or position (not an id) as the `BIGINT` it is
/// compared with: above `i64::MAX` it is no cursor this query issued.
pub(crate) fn bigint(value: u64) -> Result<i64, CursorError> {
    i64::try_from(value).map_err(|_| CursorError {
        reason: "a field is out of range",
    })
}

/// The key in `text`, if `text` is a cursor of `kind`.
pub(crate) fn decode<const N: usize>(
    kind: CursorKind,
    text: &str,
) -> Result<[u64; N], CursorError> {
    debug_assert_eq!(N, kind.fields());
    let bad = |reason| Err(CursorError { reason });
    if text.len() > CURSOR_BYTES_MAX {
        return bad("too long");
    }
    let mut parts = text.split(':');
    if parts.next() != Some(kind.tag()) {
        return bad("not a cursor of this query");
    }
    let mut key = [0u64; N];
    for slot in &mut key {
        let Some(part) = parts.next() else {
            return bad("too few fields");
        };
        // Digits only: no sign, no spaces, no `+`.
        if part.is_empty() || part.len() > 20 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return bad("a field is not a non-negative integer");
        }
        *slot = match part.parse::<u64>() {
            Ok(value) => value,
            Err(_) => return bad("a field is out of range"),
        };
    }
    if parts.next().is_some() {
        return bad("too many fields");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_to_the_key_it_was_made_from() {
        let text = encode(CursorKind::Audit, &[1_800_000_000_000_000, 3, 42, 0]);
        assert_eq!(
            decode::<4>(CursorKind::Audit, &text).unwrap(),
            [1_800_000_000_000_000, 3, 42, 0]
        );
    }

    #[test]
    fn malformed_or_foreign_cursors_are_errors() {
        let closed = encode(CursorKind::Closed, &[5, 6]);
        assert!(
            decode::<2>(CursorKind::UserWins, &closed).is_err(),
            "foreign"
        );
        for bad in [
            "",
            "c1",
            "c1:5",
            "c1:5:6:7",
            "c1:-5:6",
            "c1:+5:6",
            "c1: 5:6",
            "c1:5:x",
            "c1:99999999999999999999:1",
            "c1:18446744073709551616:1",
        ] {
            assert!(decode::<2>(CursorKind::Closed, bad).is_err(), "{bad:?}");
        }
        // A u64 field (an id) decodes; a time above i64::MAX is refused by its caller.
        let key = decode::<2>(
            CursorKind::Closed,
            "c1:9223372036854775808:18446744073709551615",
        );
        assert_eq!(key.unwrap(), [1 << 63, u64::MAX]);
        assert!(bigint(1 << 63).is_err());
        assert_eq!(bigint(5), Ok(5));
        let long = format!("c1:1:{}", "1".repeat(CURSOR_BYTES_MAX));
        assert_eq!(
            decode::<2>(CursorKind::Closed, &long).unwrap_err().reason,
            "too long"
        );
    }
}
