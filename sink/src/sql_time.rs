//! Cluster time in SQL, in one place: the engine's timestamps are microseconds since the Unix
//! epoch, stored as `timestamptz` and read back, exactly (an interval counts microseconds and
//! `extract` is numeric: no float on the way). The writer uses the macros in literal SQL; the
//! queries, which build SQL at run time, the functions.

use sqlx::{Postgres, QueryBuilder};

/// The expression that turns a bound `bigint` of microseconds (`$param`) into `timestamptz`.
macro_rules! ts {
    ($param:literal) => {
        concat!(
            "('epoch'::timestamptz + ",
            $param,
            " * interval '1 microsecond')"
        )
    };
}

/// And back: a `timestamptz` column as `bigint` microseconds.
macro_rules! micros {
    ($column:literal) => {
        concat!("(extract(epoch from ", $column, ") * 1000000)::bigint")
    };
}

pub(crate) use {micros, ts};

/// [`micros!`] for a column named at run time.
pub(crate) fn micros_of(column: &str) -> String {
    format!("(extract(epoch from {column}) * 1000000)::bigint")
}

/// Pushes [`ts!`] with `micros` bound as its parameter.
pub(crate) fn push_ts(builder: &mut QueryBuilder<'_, Postgres>, micros: i64) {
    builder.push("('epoch'::timestamptz + ");
    builder.push_bind(micros);
    builder.push("::bigint * interval '1 microsecond')");
}
