//! Keyset cursors: the sort key of a page's last row, handed to the client as an opaque
//! string and parsed back, strictly, when it returns.
//!
//! The text is `TAG:N:N…` (a tag naming the query, then the key's integers), but clients
//! must treat it as opaque: the format may change. A cursor from another query, with the
//! wrong number of fields, a field that is not a non-negative integer, or longer than
//! [`CURSOR_BYTES_MAX`] is a [`CursorError`], never a panic and never a silent first page.

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
pub(crate) fn encode(kind: CursorKind, key: &[i64]) -> String {
    debug_assert_eq!(key.len(), kind.fields());
    let mut text = kind.tag().to_owned();
    for value in key {
        text.push(':');
        text.push_str(&value.to_string());
    }
    text
}

/// The key in `text`, if `text` is a cursor of `kind`.
pub(crate) fn decode<const N: usize>(
    kind: CursorKind,
    text: &str,
) -> Result<[i64; N], CursorError> {
    debug_assert_eq!(N, kind.fields());
    let bad = |reason| Err(CursorError { reason });
    if text.len() > CURSOR_BYTES_MAX {
        return bad("too long");
    }
    let mut parts = text.split(':');
    if parts.next() != Some(kind.tag()) {
        return bad("not a cursor of this query");
    }
    let mut key = [0i64; N];
    for slot in &mut key {
        let Some(part) = parts.next() else {
            return bad("too few fields");
        };
        // Digits only: no sign, no spaces, no `+`.
        if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return bad("a field is not a non-negative integer");
        }
        *slot = match part.parse::<i64>() {
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
            "c1:9223372036854775808:1",
        ] {
            assert!(decode::<2>(CursorKind::Closed, bad).is_err(), "{bad:?}");
        }
        let long = format!("c1:1:{}", "1".repeat(CURSOR_BYTES_MAX));
        assert_eq!(
            decode::<2>(CursorKind::Closed, &long).unwrap_err().reason,
            "too long"
        );
    }
}
