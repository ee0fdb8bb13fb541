//! Reading states written before the meta group existed (storage format 1).
//!
//! bincode with serde is not self-describing: a struct is its fields in order, with no
//! names, no count and no end marker. A `#[serde(default)]` field appended to [`crate::State`]
//! therefore does not make old bytes readable: the decoder goes on reading the new field
//! from whatever follows the old state (the end of the value, the next field of the record
//! that holds the state, or a snapshot's checksum). The test below shows it.
//!
//! So the codec's format version says which layout a value has: format 1 states end before
//! `meta`, format 2 states carry it. [`crate::codec`] tells the decoder which format it is
//! reading, and the `meta` field's deserializer reads nothing for format 1 and yields an
//! empty [`MetaState`], which is exactly what every group held then.

use serde::{Deserialize, Deserializer};

use crate::meta::MetaState;

/// The first storage format whose states carry the meta state.
pub(crate) const META_SINCE_FORMAT: u8 = 2;

/// `State.meta`'s deserializer: reads the field only from formats that have it.
pub(crate) fn deserialize_meta<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<MetaState, D::Error> {
    if crate::codec::decoding_format() < META_SINCE_FORMAT {
        return Ok(MetaState::default());
    }
    MetaState::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize)]
    struct Old {
        a: u64,
        b: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct New {
        a: u64,
        b: String,
        #[serde(default)]
        c: Vec<u32>,
    }

    #[test]
    fn a_plain_serde_default_field_cannot_read_the_old_bincode_layout() {
        let old = Old {
            a: 7,
            b: "old".into(),
        };
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&old, config).unwrap();
        let alone = bincode::serde::decode_from_slice::<New, _>(&bytes, config);
        assert!(
            alone.is_err(),
            "the decoder reads past the old value: {alone:?}"
        );
        // Followed by other bytes (the next field, a checksum), it silently reads them.
        let mut followed = bytes.clone();
        followed.extend_from_slice(&[1, 42]);
        let (new, _) = bincode::serde::decode_from_slice::<New, _>(&followed, config).unwrap();
        assert_eq!(new.c, vec![42], "garbage became data");
    }
}
