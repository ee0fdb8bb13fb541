//! The I6 checker (`verify::violations`) against the real Postgres, without a cluster: the
//! engine applies a run of commands, the writer copies its events, the checker finds
//! nothing; then each kind of planted damage is reported as its own typed violation.

mod support;

use martelo_engine::{
    Action, Actor, Amount, ApplyCtx, AuctionId, AuctionSpec, AuctionView, Command, Currency,
    Description, IncrementPolicy, Request, RequestId, Role, State, Timestamp, Title, UserId,
};
use martelo_sink::verify::{Violation, ViolationClass, violations};
use martelo_sink::{SinkRecord, migrate, read_cursor, write_batch};
use sqlx::PgPool;
use support::TestDb;

const T0: u64 = 1_800_000_000_000_000;
const GROUP: u64 = 1;

fn request(user: u64, role: Role, id: &str, action: Action) -> Command {
    Command::Request(Request {
        actor: Actor {
            user: UserId(user),
            role,
        },
        request_id: RequestId::try_from(id).expect("request id"),
        action,
    })
}

fn create(auction: u64, end: u64) -> Command {
    let spec = AuctionSpec {
        title: Title::try_from("A lamp").expect("title"),
        description: Description::try_from("Brass.").expect("description"),
        currency: Currency::try_from("EUR").expect("currency"),
        starting_price: Amount(100),
        reserve_price: None,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(10)),
        start: Timestamp(T0),
        end: Timestamp(end),
        soft_close: None,
    };
    let action = Action::CreateAuction {
        auction_id: AuctionId(auction),
        spec,
    };
    request(1, Role::Seller, &format!("create-{auction}"), action)
}

fn place_bid(auction: u64, bidder: u64, amount: u64, id: &str) -> Command {
    let action = Action::PlaceBid {
        auction_id: AuctionId(auction),
        amount: Amount(amount),
        max: None,
    };
    request(bidder, Role::Bidder, id, action)
}

/// Applies `commands` at log indexes 1.. (1 ms apart), returning the records the sink
/// would read and the engine's views of `auctions`.
fn run(commands: &[Command], auctions: &[u64]) -> (Vec<SinkRecord>, Vec<AuctionView>) {
    let mut state = State::new();
    let mut records = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        let log_index = index as u64 + 1;
        let ctx = ApplyCtx {
            log_index,
            timestamp: Timestamp(T0 + log_index * 1_000),
        };
        let outcome = state.apply(ctx, command);
        if !outcome.events.is_empty() {
            records.push(SinkRecord {
                log_index,
                events: outcome.events,
            });
        }
    }
    let views = auctions
        .iter()
        .map(|id| state.auction(AuctionId(*id)).expect("auction").view())
        .collect();
    (records, views)
}

async fn must_check(pool: &PgPool, views: &[AuctionView]) -> Vec<Violation> {
    violations(pool, views)
        .await
        .expect("the checker reads Postgres")
}

async fn execute(pool: &PgPool, statement: &str) {
    sqlx::query(statement)
        .execute(pool)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

#[tokio::test]
async fn the_checker_finds_nothing_after_a_faithful_copy_and_names_each_planted_damage() {
    let db = TestDb::create().await;
    let pool = db.pool();
    migrate(&pool).await.expect("migrate");
    // Auction 1 stays open with three bids; auction 2 gets a bid and closes (sold).
    let commands = [
        create(1, T0 + 600_000_000),
        create(2, T0 + 5_000),
        place_bid(1, 10, 100, "a"),
        place_bid(2, 11, 100, "b"),
        place_bid(1, 12, 150, "c"),
        place_bid(1, 10, 1, "too-low"),
        place_bid(1, 10, 200, "d"),
        Command::Close {
            auction_id: AuctionId(2),
        },
    ];
    let (records, views) = run(&commands, &[1, 2]);
    assert!(views[1].closed.is_some(), "auction 2 closed");
    assert_eq!(views[0].bids.len(), 3);
    let last = records.last().expect("records").log_index;
    assert_eq!(read_cursor(&pool, GROUP).await.expect("cursor"), 0);
    write_batch(&pool, GROUP, 0, last, &records)
        .await
        .expect("write");
    assert_eq!(must_check(&pool, &views).await, Vec::<Violation>::new());

    // The engine has what Postgres lacks: a view with one more bid than was copied.
    let (_, ahead) = run(
        &[commands.as_slice(), &[place_bid(1, 12, 300, "e")]].concat(),
        &[1, 2],
    );
    let found = must_check(&pool, &ahead).await;
    assert!(
        found.contains(&Violation::BidMissing {
            auction: 1,
            bid_id: 3
        }),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::AuctionDiffers { auction: 1, .. })),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .all(|v| v.auction() == 1 && v.class() != ViolationClass::NotInEngine),
        "{found:#?}"
    );

    // Planted damage, one of each class.
    execute(
        &pool,
        "UPDATE bids SET amount = amount + 1 WHERE auction_id = 1 AND bid_id = 0",
    )
    .await;
    execute(
        &pool,
        "INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, payload) \
         SELECT group_id, log_index, position + 100, at, kind, seq, auction_id, payload \
         FROM events WHERE auction_id = 1 AND seq = 1",
    )
    .await;
    execute(&pool, "DELETE FROM outcomes WHERE auction_id = 2").await;
    execute(
        &pool,
        "INSERT INTO outcomes (auction_id, group_id, log_index, seq, at, result) \
         VALUES (7, 1, 99, 1, now(), 'unsold')",
    )
    .await;
    let found = must_check(&pool, &views).await;
    let expected = [
        (ViolationClass::Differs, 1),
        (ViolationClass::Duplicate, 1),
        (ViolationClass::Missing, 2),
        (ViolationClass::NotInEngine, 7),
    ];
    let classes: Vec<(ViolationClass, i64)> =
        found.iter().map(|v| (v.class(), v.auction())).collect();
    for wanted in expected {
        assert!(classes.contains(&wanted), "{wanted:?} not in {found:#?}");
    }
    assert_eq!(found.len(), expected.len(), "only the planted: {found:#?}");
    assert!(found.contains(&Violation::EventDuplicated {
        auction: 1,
        seq: 1,
        copies: 2
    }));
    assert!(found.contains(&Violation::OutcomeMissing { auction: 2 }));
    assert!(found.contains(&Violation::OutcomeNotInEngine { auction: 7 }));
    // Every violation reads as a sentence naming its auction.
    for violation in &found {
        let text = violation.to_string();
        assert!(
            text.starts_with(&format!("auction {}:", violation.auction())),
            "{text}"
        );
    }
}
