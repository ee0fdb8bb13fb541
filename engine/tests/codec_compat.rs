//! States written before the meta group existed (storage format 1) still decode.
//!
//! `fixtures/state_v1.bin` and `fixtures/snapshot_v1.bin` were written by the format-1 engine
//! (commit e669da6) from the commands in `fixtures/v1_scenario.rs`; this build rebuilds the
//! same state from the same commands and compares. Regenerate them only for a new format.

#[path = "fixtures/v1_scenario.rs"]
mod v1_scenario;

use martelo_engine::codec::{self, FORMAT_VERSION};
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
    assert!(
        decoded.auctions().count() >= 2,
        "the fixture holds auctions"
    );
}

#[test]
fn a_format_1_snapshot_stream_decodes_with_the_state_between_other_fields() {
    assert_eq!(SNAPSHOT_V1[0], 1);
    let (before, state, after): (Option<u64>, State, String) =
        codec::decode_from_reader("snapshot", SNAPSHOT_V1).expect("format 1 decodes");
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
    assert_eq!(FORMAT_VERSION, 2);
    let mut state = v1_scenario::v1_state();
    let next = state.last_applied().0 + 1;
    let (ctx, command) = register(next, "root");
    state.apply(ctx, &command);
    let bytes = codec::encode("state", &state).unwrap();
    assert_eq!(bytes[0], FORMAT_VERSION);
    let decoded: State = codec::decode("state", &bytes).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(decoded.meta().user_count(), 1);
    let mut stream = Vec::new();
    codec::encode_to_writer("snapshot", &(Some(3u64), &state, "tail"), &mut stream).unwrap();
    let (_, streamed, tail): (Option<u64>, State, String) =
        codec::decode_from_reader("snapshot", stream.as_slice()).unwrap();
    assert_eq!((streamed, tail.as_str()), (state, "tail"));
}
