//! Rules version 2 (`RulesVersion`): each defect it removes, shown under both versions where
//! version 1 behaved otherwise, so the gate itself is tested too.

use super::records::{harness_with_capacity, harness_with_capacity_at, tiny};
use super::*;

const A2: AuctionId = AuctionId(2);

fn bid_on(auction_id: AuctionId, amount: u64) -> Action {
    Action::PlaceBid {
        auction_id,
        amount: Amount(amount),
        max: None,
    }
}

fn bid_with_max(amount: u64, max: u64) -> Action {
    Action::PlaceBid {
        auction_id: A1,
        amount: Amount(amount),
        max: Some(Amount(max)),
    }
}

// ---- adopting rules ---------------------------------------------------------------------------

#[test]
fn a_group_starts_at_rules_1_and_adopting_never_lowers_the_version() {
    let mut harness = Harness::at_rules(State::new(), RulesVersion::FIRST);
    assert_eq!(harness.state.rules(), RulesVersion::FIRST);
    let adopt = |version| Command::AdoptRules { version };
    let reply = harness.apply(1, adopt(RulesVersion::V2)).reply;
    assert_eq!(
        reply,
        Reply::Accepted(Accepted::RulesAdopted {
            version: RulesVersion::V2
        })
    );
    // Again, or an older version: accepted, and the version stays.
    for version in [RulesVersion::V2, RulesVersion::FIRST] {
        let outcome = harness.apply(2, adopt(version));
        assert!(outcome.events.is_empty());
        assert_eq!(
            outcome.reply,
            Reply::Accepted(Accepted::RulesAdopted {
                version: RulesVersion::V2
            })
        );
    }
    assert_eq!(harness.state.rules(), RulesVersion::V2);
}

#[test]
#[should_panic(expected = "this build knows only up to")]
fn a_replica_stops_at_rules_newer_than_its_build() {
    let mut harness = Harness::new();
    let version = RulesVersion(RulesVersion::CURRENT.0 + 1);
    harness.apply(1, Command::AdoptRules { version });
}

#[test]
fn the_rules_version_and_retired_ids_survive_the_storage_codec() {
    let mut harness = Harness::with(AuctionSpec {
        end: at(10 * 86_400),
        ..spec()
    });
    harness.act(1, SELLER, cancel(None));
    harness.close(86_402); // any entry after the retention expires the auction
    assert!(harness.state.is_retired(A1));
    let bytes = codec::encode("state", &harness.state).unwrap();
    let decoded: State = codec::decode("state", &bytes).unwrap();
    assert_eq!(decoded, harness.state);
    assert_eq!(decoded.rules(), RulesVersion::V2);
    assert!(decoded.is_retired(A1));
    decoded.validate().unwrap();
}

// ---- records: rejections, per-user bounds, admins --------------------------------------------

#[test]
fn a_rejection_leaves_no_record_and_its_retry_is_judged_again() {
    let mut harness = Harness::with(AuctionSpec {
        start: at(100),
        ..spec()
    });
    let early = harness.request(1, ALICE, "k1", bid_on(A1, 1_000));
    assert_eq!(rejected(&early.reply), RejectCode::AuctionNotOpen);
    let retry = harness.request(150, ALICE, "k1", bid_on(A1, 1_000));
    assert!(!retry.replayed);
    assert!(retry.reply.is_accepted(), "{:?}", retry.reply);
    // Now accepted, the request is recorded: a further retry replays it.
    let again = harness.request(151, ALICE, "k1", bid_on(A1, 1_000));
    assert!(again.replayed);
    assert_eq!(again.reply, retry.reply);
}

#[test]
fn garbage_requests_fill_no_store_and_bidders_never_lock_out_admins() {
    // Under rules 1 (records.rs) three of the seller's own bids filled this auction's four
    // records and locked everyone out.
    let mut harness = harness_with_capacity(tiny());
    for second in 1..=20 {
        let reply = harness.bid(second, SELLER, 1_000, None);
        assert_eq!(rejected(&reply), RejectCode::OwnAuction);
    }
    // Bids on auctions that do not exist do not fill the group's records either.
    for id in 100..120 {
        let reply = harness.act(21, ALICE, bid_on(AuctionId(id), 1_000));
        assert_eq!(rejected(&reply), RejectCode::AuctionNotFound);
    }
    // Only the create's record is held: bidders bid up to the bid capacity (two),
    assert!(harness.bid(22, ALICE, 1_000, None).is_accepted());
    assert!(harness.bid(23, BOB, 1_100, None).is_accepted());
    assert_eq!(
        rejected(&harness.bid(24, CAROL, 1_200, None)),
        RejectCode::BidLimitReached
    );
    let suspend = |user| Action::SuspendBidder {
        user: UserId(user),
        reason: reason("x"),
    };
    // and the group-level records still take admins' suspensions (up to their own bound).
    assert!(harness.act(25, ADMIN, suspend(50)).is_accepted());
    assert!(harness.act(25, ADMIN, suspend(51)).is_accepted());
    // The auction now holds three records (create, two bids); the admin's void makes four,
    // its capacity, and the admin's cancel still goes through.
    let void = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(1),
        reason: reason("shill"),
    };
    assert!(harness.act(27, ADMIN, void).is_accepted());
    let cancel = Action::CancelAuction {
        auction_id: A1,
        reason: Some(reason("fraud")),
    };
    assert!(harness.act(28, ADMIN, cancel).is_accepted());
}

#[test]
fn a_full_auction_refuses_bidders_but_not_admins() {
    let capacity = Capacity {
        requests_per_auction_max: 3,
        bids_per_auction_max: 4,
        ..tiny()
    };
    let mut harness = harness_with_capacity(capacity);
    // The create's record and two accepted bids fill the three records.
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    assert!(harness.bid(2, BOB, 1_100, None).is_accepted());
    assert_eq!(
        rejected(&harness.bid(3, CAROL, 1_200, None)),
        RejectCode::RequestLimitReached
    );
    let void = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(1),
        reason: reason("shill"),
    };
    assert!(harness.act(4, ADMIN, void).is_accepted());
    assert_eq!(harness.leader(), Some(ALICE.user));
    // Under rules 1 the same admin was refused.
    let mut old = harness_with_capacity_at(capacity, RulesVersion::FIRST);
    assert!(old.bid(1, ALICE, 1_000, None).is_accepted());
    assert!(old.bid(2, BOB, 1_100, None).is_accepted());
    let void = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(1),
        reason: reason("shill"),
    };
    assert_eq!(
        rejected(&old.act(3, ADMIN, void)),
        RejectCode::RequestLimitReached
    );
}

#[test]
fn one_user_holds_a_bounded_number_of_records_in_an_auction() {
    let mut harness = Harness::with(spec());
    let limit = limits::REQUESTS_PER_USER_PER_AUCTION_MAX as u64;
    // Alice's first bid, then raises of her own maximum: each accepted, each a record.
    assert!(
        harness
            .act(1, ALICE, bid_with_max(1_000, 2_000))
            .is_accepted()
    );
    for raise in 1..limit {
        let reply = harness.act(2, ALICE, bid_with_max(1_000, 2_000 + raise));
        assert!(reply.is_accepted(), "raise {raise}: {reply:?}");
    }
    let over = harness.act(3, ALICE, bid_with_max(1_000, 2_000 + limit));
    assert_eq!(rejected(&over), RejectCode::RequestLimitReached);
    // Everyone else still bids, and the early (leader-side) rejection defers to the log.
    assert!(harness.bid(4, BOB, 1_100, None).is_accepted());
    let request = Request {
        actor: ALICE,
        request_id: RequestId::try_from("late").unwrap(),
        action: bid_with_max(1_000, 1_000),
    };
    assert_eq!(harness.state.early_bid_rejection(at(5), &request), None);
}

// ---- one rule for request ids -----------------------------------------------------------------

#[test]
fn a_request_id_is_scoped_to_the_auction_its_request_names() {
    let mut harness = Harness::with(spec());
    let create_a2 = Action::CreateAuction {
        auction_id: A2,
        spec: spec(),
    };
    assert!(harness.act(0, SELLER, create_a2).is_accepted());
    // The first use named an auction that did not exist: under rules 1 that made a group-wide
    // record, and the same id on A1 was then `request_id_reused`. Under rules 2 the
    // rejection leaves no record, and each auction is its own scope.
    let missing = harness.request(1, ALICE, "k", bid_on(AuctionId(404), 1_000));
    assert_eq!(rejected(&missing.reply), RejectCode::AuctionNotFound);
    let on_a1 = harness.request(2, ALICE, "k", bid_on(A1, 1_000));
    assert!(on_a1.reply.is_accepted());
    let on_a2 = harness.request(3, ALICE, "k", bid_on(A2, 1_000));
    assert!(on_a2.reply.is_accepted() && !on_a2.replayed);
    // Within a scope, the rule is unchanged: a retry replays, another payload is a reuse.
    assert!(harness.request(4, ALICE, "k", bid_on(A1, 1_000)).replayed);
    let reuse = harness.request(5, ALICE, "k", bid_on(A1, 2_000));
    assert_eq!(rejected(&reuse.reply), RejectCode::RequestIdReused);
    // Requests that name no auction share the group's scope.
    let suspend = Action::SuspendBidder {
        user: CAROL.user,
        reason: reason("x"),
    };
    assert!(harness.request(6, ADMIN, "s", suspend).reply.is_accepted());
    let reinstate = Action::ReinstateBidder { user: CAROL.user };
    let reused = harness.request(7, ADMIN, "s", reinstate);
    assert_eq!(rejected(&reused.reply), RejectCode::RequestIdReused);
}

#[test]
fn under_rules_1_a_first_use_on_a_missing_auction_made_a_group_wide_record() {
    let mut harness = Harness::with_rules_1(spec());
    let missing = harness.request(1, ALICE, "k", bid_on(AuctionId(404), 1_000));
    assert_eq!(rejected(&missing.reply), RejectCode::AuctionNotFound);
    let on_a1 = harness.request(2, ALICE, "k", bid_on(A1, 1_000));
    assert_eq!(rejected(&on_a1.reply), RejectCode::RequestIdReused);
}

// ---- the window: no edit, cancel or void after the end -------------------------------------

fn edit(end: u64) -> Action {
    Action::EditAuction {
        auction_id: A1,
        spec: AuctionSpec {
            end: at(end),
            ..spec()
        },
    }
}

fn cancel(reason_text: Option<&str>) -> Action {
    Action::CancelAuction {
        auction_id: A1,
        reason: reason_text.map(reason),
    }
}

#[test]
fn an_ended_auction_cannot_be_edited_back_to_life() {
    let mut harness = Harness::with(spec());
    // Past the end (1,000 s), before the leader's `Close`.
    assert_eq!(
        rejected(&harness.act(1_001, SELLER, edit(5_000))),
        RejectCode::AuctionNotOpen
    );
    assert_eq!(harness.auction().end(), at(1_000));
    assert!(harness.close(1_001).is_accepted());
    // Under rules 1 the same edit moved the end.
    let mut old = Harness::with_rules_1(spec());
    assert!(old.act(1_001, SELLER, edit(5_000)).is_accepted());
    assert_eq!(old.auction().end(), at(5_000));
}

#[test]
fn editing_needs_the_seller_role_like_creating() {
    let mut harness = Harness::with(spec());
    let demoted = Actor {
        user: SELLER.user,
        role: Role::Bidder,
    };
    assert_eq!(
        rejected(&harness.act(1, demoted, edit(2_000))),
        RejectCode::PermissionDenied
    );
    assert!(harness.act(2, SELLER, edit(2_000)).is_accepted());
}

#[test]
fn no_cancel_or_void_once_the_end_has_passed() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    let void = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(0),
        reason: reason("late"),
    };
    assert_eq!(
        rejected(&harness.act(1_000, ADMIN, void)),
        RejectCode::AuctionNotOpen
    );
    assert_eq!(
        rejected(&harness.act(1_000, ADMIN, cancel(Some("late")))),
        RejectCode::AuctionNotOpen
    );
    // Who may not cancel at all still hears so first.
    assert_eq!(
        rejected(&harness.act(1_000, BOB, cancel(None))),
        RejectCode::NotSeller
    );
    assert!(harness.close(1_000).is_accepted());
    assert_eq!(harness.result(), sold(ALICE, 1_000));
}

// ---- auction ids never come back ---------------------------------------------------------------

#[test]
fn a_stale_create_retry_cannot_bring_a_retired_id_back() {
    let far = AuctionSpec {
        end: at(3 * 86_400),
        ..spec()
    };
    let create = Action::CreateAuction {
        auction_id: A1,
        spec: far.clone(),
    };
    let day = 86_400;
    for version in [RulesVersion::FIRST, RulesVersion::V2] {
        let mut harness = Harness::at_rules(State::new(), version);
        assert!(
            harness
                .request(0, SELLER, "c", create.clone())
                .reply
                .is_accepted()
        );
        assert!(harness.act(10, SELLER, cancel(None)).is_accepted());
        // A day after it closed, the auction and its records leave the state; a stale retry
        // of the create arrives.
        let stale = harness.request(day + 11, SELLER, "c", create.clone());
        assert!(
            harness
                .state
                .auction(A1)
                .is_none_or(|a| a.closed().is_none())
        );
        if version == RulesVersion::FIRST {
            // The defect: the same id lives again, from seq 1.
            assert!(stale.reply.is_accepted());
            assert_eq!(harness.auction().seq(), 1);
            continue;
        }
        assert_eq!(rejected(&stale.reply), RejectCode::AuctionExists);
        assert!(harness.state.auction(A1).is_none());
        // Another user's create of the same id is refused as well.
        let other = Actor {
            user: UserId(2),
            role: Role::Seller,
        };
        assert_eq!(
            rejected(&harness.act(day + 12, other, create.clone())),
            RejectCode::AuctionExists
        );
        // Once the listing's end has passed, its window check refuses any retry by itself,
        // and the id is no longer held.
        let late = harness.request(3 * day + 1, SELLER, "c", create.clone());
        assert_eq!(rejected(&late.reply), RejectCode::InvalidWindow);
        assert!(!harness.state.is_retired(A1));
    }
}

#[test]
fn retired_ids_count_against_the_group_auction_capacity() {
    let mut harness = Harness::at_rules(
        State::with_capacity(Capacity {
            auctions_max: 1,
            ..Capacity::default()
        }),
        RulesVersion::CURRENT,
    );
    let create = |id| Action::CreateAuction {
        auction_id: AuctionId(id),
        spec: AuctionSpec {
            end: at(3 * 86_400),
            ..spec()
        },
    };
    assert!(harness.act(0, SELLER, create(1)).is_accepted());
    assert!(harness.act(1, SELLER, cancel(None)).is_accepted());
    assert_eq!(
        rejected(&harness.act(86_402, SELLER, create(2))),
        RejectCode::AuctionLimitReached
    );
    assert!(
        harness
            .act(3 * 86_400, SELLER, create(3))
            .rejection()
            .is_some()
    );
    let create_later = Action::CreateAuction {
        auction_id: AuctionId(4),
        spec: AuctionSpec {
            start: at(3 * 86_400),
            end: at(4 * 86_400),
            ..spec()
        },
    };
    assert!(
        harness
            .act(3 * 86_400 + 1, SELLER, create_later)
            .is_accepted()
    );
}

// ---- suspended bidders ---------------------------------------------------------------------------

fn suspend(actor: Actor) -> Action {
    Action::SuspendBidder {
        user: actor.user,
        reason: reason("fraud"),
    }
}

#[test]
fn a_suspended_leader_does_not_win_and_their_bids_set_no_price() {
    for version in [RulesVersion::FIRST, RulesVersion::V2] {
        let mut harness = Harness::at_rules(State::new(), version);
        harness.create(spec());
        assert!(harness.bid(1, BOB, 1_500, None).is_accepted());
        assert!(harness.bid(2, ALICE, 2_000, Some(5_000)).is_accepted());
        assert_eq!(harness.leader(), Some(ALICE.user));
        assert!(harness.act(3, ADMIN, suspend(ALICE)).is_accepted());
        let outcome = harness.apply(1_000, Command::Close { auction_id: A1 });
        assert!(outcome.reply.is_accepted());
        if version == RulesVersion::FIRST {
            assert_eq!(harness.result(), sold(ALICE, 2_000));
            continue;
        }
        assert_eq!(harness.result(), sold(BOB, 1_500));
        let kinds: Vec<&AuctionEventKind> = outcome
            .events
            .iter()
            .filter_map(|event| match event {
                Event::Auction(event) => Some(&event.kind),
                _ => None,
            })
            .collect();
        assert!(
            matches!(
                kinds.as_slice(),
                [
                    AuctionEventKind::BidVoided { bid_id: BidId(1), reason },
                    AuctionEventKind::PriceChanged { .. },
                    AuctionEventKind::Closed { .. },
                ] if reason.as_str() == "bidder suspended"
            ),
            "{kinds:?}"
        );
    }
}

#[test]
fn removing_a_bidder_voids_all_their_bids_including_raises() {
    let mut harness = Harness::with(spec());
    assert!(
        harness
            .act(1, ALICE, bid_with_max(1_000, 1_500))
            .is_accepted()
    );
    assert!(
        harness
            .act(2, ALICE, bid_with_max(1_000, 3_000))
            .is_accepted()
    ); // a raise
    assert!(harness.bid(3, BOB, 2_000, None).is_accepted());
    assert_eq!(harness.leader(), Some(ALICE.user));
    // Voiding one bid leaves the raise in force: Alice still leads.
    let void_first = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(0),
        reason: reason("x"),
    };
    assert!(harness.act(4, ADMIN, void_first).is_accepted());
    assert_eq!(harness.leader(), Some(ALICE.user));
    let remove = |user: Actor| Action::RemoveBidder {
        auction_id: A1,
        user: user.user,
        reason: reason("shill bidding"),
    };
    assert_eq!(
        rejected(&harness.act(5, BOB, remove(ALICE))),
        RejectCode::PermissionDenied
    );
    assert!(harness.act(6, ADMIN, remove(ALICE)).is_accepted());
    assert_eq!(harness.leader(), Some(BOB.user));
    assert_eq!(harness.price(), Some(2_000));
    assert!(
        harness
            .auction()
            .bids()
            .iter()
            .all(|bid| bid.bidder != ALICE.user || bid.voided)
    );
    // Nobody left to remove, then: no such bids.
    assert_eq!(
        rejected(&harness.act(7, ADMIN, remove(ALICE))),
        RejectCode::BidNotFound
    );
    assert_eq!(
        rejected(&harness.act(1_000, ADMIN, remove(BOB))),
        RejectCode::AuctionNotOpen
    );
}
