//! The wire decoder of client payloads (`codec::wire::decode`), each type with the limit its
//! reader uses: what a node reads from a client (`Request`, `MetaCommand`, `MetaAction`) and
//! what a client (the gateway) reads from a node (`Reply`, `Event`, `AuctionView`,
//! `AuctionSummary`, `Credentials`, `UserPage`).
//!
//! Contract: the framing verdict's typed error (martelo_fuzz::frame); a heap peak bounded by
//! the input's size; a decoded value encodes in the version it came in and decodes back to
//! itself, and what a node reads fits the limit it read it with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use martelo_engine::codec::wire::{self, ClientPayload, WireVersion};
use martelo_engine::meta::{Credentials, UserPage};
use martelo_engine::{
    AuctionSummary, AuctionView, Event, MetaAction, MetaCommand, Reply, Request,
};
use martelo_fuzz::alloc;
use martelo_fuzz::frame::{self, WIRE};
use martelo_proto as limits;

fn client<T, const BYTES_MAX: usize>(what: &'static str, bytes: &[u8])
where
    T: ClientPayload + PartialEq + std::fmt::Debug,
{
    let result = alloc::bounded(what, bytes.len(), || wire::decode::<T, BYTES_MAX>(what, bytes));
    frame::assert_framing(what, bytes, BYTES_MAX, WIRE, &result);
    let Ok(value) = result else {
        return;
    };
    let version = WireVersion::from_codec_version(u32::from(bytes[0]))
        .expect("a decoded frame names a version this build reads");
    let again = wire::encode(what, &value, version).expect("a decoded value encodes");
    assert!(
        again.len() <= BYTES_MAX,
        "{what}: re-encoded in {} bytes, over the {BYTES_MAX} it was decoded within",
        again.len()
    );
    let back = wire::decode::<T, BYTES_MAX>(what, &again).expect("a re-encoded value decodes");
    assert_eq!(back, value, "{what}: decode(encode(x)) != x");
}

const KINDS: u8 = 9;

fuzz_target!(|data: &[u8]| {
    let Some(input) = frame::shape(data) else {
        return;
    };
    let bytes = &input.bytes;
    match input.kind % KINDS {
        0 => client::<Request, { limits::PROPOSAL_COMMAND_BYTES_MAX }>("command", bytes),
        1 => client::<MetaCommand, { limits::META_COMMAND_BYTES_MAX }>("meta command", bytes),
        2 => client::<MetaAction, { limits::META_COMMAND_BYTES_MAX }>("meta action", bytes),
        3 => client::<Reply, { limits::PROPOSAL_REPLY_BYTES_MAX }>("reply", bytes),
        4 => client::<Event, { limits::EVENT_BYTES_MAX }>("event", bytes),
        5 => client::<AuctionView, { limits::AUCTION_VIEW_BYTES_MAX }>("auction view", bytes),
        6 => client::<AuctionSummary, { limits::AUCTION_SUMMARY_BYTES_MAX }>(
            "auction summary",
            bytes,
        ),
        7 => client::<Credentials, { limits::USER_RECORD_BYTES_MAX }>("user record", bytes),
        _ => client::<UserPage, { limits::USER_PAGE_BYTES_MAX }>("user page", bytes),
    }
});
