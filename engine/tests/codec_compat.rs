//! States written before the meta group existed (storage format 1) still decode.
//!
//! `fixtures/state_v1.bin` and `fixtures/snapshot_v1.bin` were written by the format-1 engine
//! (commit e669da6) from the commands in `fixtures/v1_scenario.rs`; this build rebuilds the
//! same state from the same commands and compares. Regenerate them only for a new format.
//! The wire format keeps its bytes too: the last tests pin client payloads in wire version 2.

#[path = "fixtures/v1_scenario.rs"]
mod v1_scenario;

use martelo_engine::codec::{self, STORAGE_FORMAT_VERSION};
use martelo_engine::meta::{DisplayName, PasswordHash, Username};
use martelo_engine::*;

const STATE_V1: &[u8] = include_bytes!("fixtures/state_v1.bin");
const SNAPSHOT_V1: &[u8] = include_bytes!("fixtures/snapshot_v1.bin");

fn register(log_index: u64, name: &str) -> (ApplyCtx, Command) {
    let ctx = ApplyCtx {
        log_index,
        timestamp: Timestamp(1_700_000_000_000_000 + log_index * 1_000_000_000),
    };
    let command = Command::Meta(MetaCommand {
        actor: MetaActor::Operator,
        request_id: RequestId::try_from(format!("register-{name}")).unwrap(),
        action: MetaAction::RegisterUser {
            username: Username::fold(name).unwrap(),
            display_name: DisplayName::try_from(name).unwrap(),
            password_hash: PasswordHash::try_from("$argon2id$v=19$m=19456,t=2,p=1$s$h").unwrap(),
            roles: [Role::Admin].into(),
        },
    });
    (ctx, command)
}

#[test]
fn a_format_1_state_decodes_into_the_same_state_with_an_empty_meta_state() {
    assert_eq!(STATE_V1[0], 1, "the fixture is format 1");
    let decoded: State = codec::decode("state", STATE_V1).expect("format 1 decodes");
    decoded.validate().unwrap();
    assert_eq!(decoded, v1_scenario::v1_state());
    assert_eq!(decoded.meta(), &MetaState::default());
    assert_eq!(
        decoded.rules(),
        RulesVersion::FIRST,
        "format-1 groups ran rules 1"
    );
    assert!(
        decoded.auctions().count() >= 2,
        "the fixture holds auctions"
    );
}

#[test]
fn a_format_1_snapshot_stream_decodes_with_the_state_between_other_fields() {
    assert_eq!(SNAPSHOT_V1[0], 1);
    let (before, state, after): (Option<u64>, State, String) =
        codec::decode_from_reader("snapshot", SNAPSHOT_V1, SNAPSHOT_V1.len() as u64)
            .expect("format 1 decodes");
    assert_eq!(before, Some(12));
    assert_eq!(
        after, "after the state",
        "the state's end is where format 1 put it"
    );
    assert_eq!(state, v1_scenario::v1_state());
}

#[test]
fn a_decoded_format_1_state_goes_on_exactly_like_the_state_it_was() {
    let mut decoded: State = codec::decode("state", STATE_V1).unwrap();
    let mut rebuilt = v1_scenario::v1_state();
    let next = rebuilt.last_applied().0 + 1;
    for state in [&mut decoded, &mut rebuilt] {
        let (ctx, command) = register(next, "root");
        assert!(state.apply(ctx, &command).reply.is_accepted());
    }
    assert_eq!(decoded.digest(), rebuilt.digest());
    assert_eq!(decoded.meta().user_count(), 1);
}

#[test]
fn states_are_written_in_the_current_format_and_round_trip_with_their_meta_state() {
    assert_eq!(STORAGE_FORMAT_VERSION, 4);
    let mut state = v1_scenario::v1_state();
    let next = state.last_applied().0 + 1;
    let (ctx, command) = register(next, "root");
    state.apply(ctx, &command);
    let bytes = codec::encode("state", &state).unwrap();
    assert_eq!(bytes[0], STORAGE_FORMAT_VERSION);
    let decoded: State = codec::decode("state", &bytes).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(decoded.meta().user_count(), 1);
    let mut stream = Vec::new();
    codec::encode_to_writer("snapshot", &(Some(3u64), &state, "tail"), &mut stream).unwrap();
    let (_, streamed, tail): (Option<u64>, State, String) =
        codec::decode_from_reader("snapshot", stream.as_slice(), stream.len() as u64).unwrap();
    assert_eq!((streamed, tail.as_str()), (state, "tail"));
}

fn bid_request() -> Request {
    Request {
        actor: Actor {
            user: UserId(7),
            role: Role::Bidder,
        },
        request_id: RequestId::try_from("bid-1").unwrap(),
        action: Action::PlaceBid {
            auction_id: AuctionId(3),
            amount: Amount(1_500),
            max: Some(Amount(2_000)),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Client payloads keep their bytes: these are what every build since storage format 2 sent
/// in `codec_version` 2. A change here is a new wire version (docs/ARCHITECTURE.md, "Formats
/// and compatibility"), not an edit of these strings.
#[test]
fn client_payloads_keep_their_wire_version_2_bytes() {
    use codec::wire::{self, WireVersion};
    let v2 = WireVersion::from_codec_version(2).unwrap();
    let request = wire::encode("request", &bid_request(), v2).unwrap();
    assert_eq!(
        hex(&request),
        "020700056269642d310303fbdc0501fbd007133264cf"
    );
    let reply = Reply::Rejected(RejectCode::BidTooLow);
    let reply = wire::encode("reply", &reply, v2).unwrap();
    assert_eq!(hex(&reply), "0201163460270e");
}

/// A payload in the oldest wire version this build reads (what format-1 builds sent) decodes
/// into the same value: only the version byte differs.
#[test]
fn a_request_in_the_oldest_wire_version_decodes() {
    use codec::wire::{self, WIRE_VERSION_OLDEST, WireVersion};
    let old = wire::encode("request", &bid_request(), WireVersion::OLDEST).unwrap();
    assert_eq!(old[0], WIRE_VERSION_OLDEST);
    let decoded: Request = wire::decode::<_, 4096>("request", &old).unwrap();
    assert_eq!(decoded, bid_request());
}
