//! Reading and writing the layouts of older versions, for the fields appended in storage
//! format 3 and wire version 3.
//!
//! bincode is not self-describing (see `meta::compat`, the precedent): a field appended to a
//! struct or to an enum's struct variant makes older bytes unreadable unless the decoder
//! knows, from the frame's version, that the field is absent. The codec records that while
//! it encodes or decodes one framed value ([`super::LayoutGuard`]), and the appended fields
//! read and write themselves through this module:
//!
//! - `AuctionEventKind::BidAccepted { proxy, raise }` (storage format 3, wire version 3):
//!   absent from storage format 1-2 and wire versions 1-2, read there as `false`, and left
//!   out when a value is written in wire version 1 or 2 (an answer to an older asker);
//! - the appended fields of raft-store's stored event record (`rejections`, `traceparent`,
//!   storage format 3): absent from format 1-2 records, read there as their default (empty).
//!
//! Outside a framed encode or decode (serde_json for the gateway and the sink, tests), every
//! field is present: the current layout.

use serde::{Deserialize, Deserializer};

/// The first storage format whose values carry the fields appended in format 3.
pub const APPENDED_SINCE_STORAGE_FORMAT: u8 = 3;
/// The first wire version whose `BidAccepted` events carry `proxy` and `raise`.
pub const BID_FLAGS_SINCE_WIRE_VERSION: u8 = 3;

/// Whether the value being encoded or decoded on this thread has the fields appended in
/// storage format 3 / wire version 3.
pub(crate) fn appended_fields_present() -> bool {
    super::layout_has_appended_fields()
}

/// `BidAccepted`'s `proxy` and `raise`: read from layouts that have them, `false` otherwise.
pub(crate) fn deserialize_bid_flag<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<bool, D::Error> {
    if !appended_fields_present() {
        return Ok(false);
    }
    bool::deserialize(deserializer)
}

/// `skip_serializing_if` of `BidAccepted`'s flags: left out of layouts without them.
pub(crate) fn omit_bid_flag(_flag: &bool) -> bool {
    !appended_fields_present()
}

/// A field appended to a stored value in storage format 3 (raft-store's event record): read
/// from format 3 on, the type's default before. Use as
/// `#[serde(default, deserialize_with = "martelo_engine::codec::compat::appended_in_format_3")]`.
pub fn appended_in_format_3<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    if !appended_fields_present() {
        return Ok(T::default());
    }
    T::deserialize(deserializer)
}

/// The first storage format whose states carry the rules version and the retired auction ids
/// (`State`'s last fields, after `meta`).
pub(crate) const RULES_SINCE_STORAGE_FORMAT: u8 = 4;

/// A field appended to `State` in storage format 4: read from format 4 on, the type's default
/// before (rules version 1, nothing retired: what every group held then). Like `State.meta`
/// (`meta::compat`), it follows the frame's format, which only the storage decoders set.
pub(crate) fn appended_in_format_4<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    if super::decoding_format() < RULES_SINCE_STORAGE_FORMAT {
        return Ok(T::default());
    }
    T::deserialize(deserializer)
}
