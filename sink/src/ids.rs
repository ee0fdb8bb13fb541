//! The one home of how an engine id is stored in Postgres.
//!
//! Auction and user ids are opaque 64-bit values (`u64` in the engine: clients such as the
//! CLI and the bench may pick any of them), and Postgres has no unsigned 64-bit type. An id
//! is stored as the `BIGINT` with the same 64 bits ([`to_bigint`]) and read back the same
//! way ([`from_bigint`]): ids up to `i64::MAX` look the same in SQL, ids above it show as
//! negative `BIGINT`s (`u64::MAX` is `-1`). The mapping is a bijection, so no id is refused
//! and none collides with another; equality, and so every filter and join, is preserved.
//! Order is not (an id above `i64::MAX` sorts before 0 in SQL): ids are only ever compared for
//! equality, or used as a keyset's tie-break, where any fixed order will do.
//!
//! Everything the sink writes, every query's filter and returned id, every cursor and the
//! I6 checker go through this module; the API and the CLI show the `u64`
//! (docs/QUERIES.md, "Ids").
//!
//! Other columns are not ids and stay checked: amounts (the engine bounds them at 1e18),
//! timestamps, seqs and log indexes are refused above `i64::MAX` rather than wrapped.

use sqlx::Postgres;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{Decode, Type, ValueRef as _};

/// The `BIGINT` an id is stored as: the same 64 bits, read as two's complement.
pub const fn to_bigint(id: u64) -> i64 {
    i64::from_be_bytes(id.to_be_bytes())
}

/// The id a stored `BIGINT` holds: the inverse of [`to_bigint`].
pub const fn from_bigint(stored: i64) -> u64 {
    u64::from_be_bytes(stored.to_be_bytes())
}

/// A `BIGINT` id column decoded as the id (for `#[sqlx(try_from = "StoredId")]` on a `u64`
/// field of a row type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredId(pub u64);

/// A nullable `BIGINT` id column decoded as the id (for
/// `#[sqlx(try_from = "StoredOptionalId")]` on an `Option<u64>` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredOptionalId(pub Option<u64>);

impl From<StoredId> for u64 {
    fn from(id: StoredId) -> u64 {
        id.0
    }
}

impl From<StoredOptionalId> for Option<u64> {
    fn from(id: StoredOptionalId) -> Option<u64> {
        id.0
    }
}

impl Type<Postgres> for StoredId {
    fn type_info() -> PgTypeInfo {
        <i64 as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <i64 as Type<Postgres>>::compatible(ty)
    }
}

impl Type<Postgres> for StoredOptionalId {
    fn type_info() -> PgTypeInfo {
        <i64 as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <i64 as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for StoredId {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(StoredId(from_bigint(<i64 as Decode<Postgres>>::decode(
            value,
        )?)))
    }
}

impl<'r> Decode<'r, Postgres> for StoredOptionalId {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.is_null() {
            return Ok(StoredOptionalId(None));
        }
        Ok(StoredOptionalId(Some(from_bigint(<i64 as Decode<
            Postgres,
        >>::decode(
            value
        )?))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_64_bits_both_ways() {
        for id in [
            0,
            1,
            42,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(from_bigint(to_bigint(id)), id, "{id}");
        }
        assert_eq!(to_bigint(7), 7, "small ids look the same in SQL");
        assert_eq!(to_bigint(i64::MAX as u64), i64::MAX);
        assert_eq!(to_bigint(i64::MAX as u64 + 1), i64::MIN);
        assert_eq!(to_bigint(u64::MAX), -1);
        for stored in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(to_bigint(from_bigint(stored)), stored, "{stored}");
        }
    }
}
