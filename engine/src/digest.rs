//! Canonical digests of engine values.
//!
//! The bytes hashed are the value's bincode 2 encoding (standard configuration), which is
//! fully specified and independent of platform and hash-map order (the engine has no hash
//! maps). bincode is used here only as that canonical byte form; the storage codec, with its
//! format versions and checksums, is [`crate::codec`].
//!
//! `State::digest` hashes everything the state serializes, the meta group's state included,
//! so two replicas of group 0 whose accounts differ have different digests.

use serde::Serialize;

/// BLAKE3 of the canonical encoding of `value`.
pub(crate) fn of<T: Serialize>(value: &T) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    bincode::serde::encode_into_std_write(value, &mut hasher, bincode::config::standard())
        .expect("encoding engine values into a hasher cannot fail");
    *hasher.finalize().as_bytes()
}
