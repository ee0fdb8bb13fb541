//! The client library against fake nodes: proposals that follow leader hints or end unknown
//! or not applied, connecting to nothing or to an uninitialized node, a subscription, and a
//! listing that pages through every group.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use martelo_client::{Client, NodeId, ProposeError, ResyncReason, SubscribeItem};
use martelo_engine::{AuctionId, GroupId};
use martelo_proto::{ErrorCode, RaftRole};

use crate::fake::{Propose, bid, closed_port, must_spawn_fakes, quick, status};

#[tokio::test]
async fn a_proposal_follows_the_hint_to_the_leader_with_the_same_request_id() {
    // Node 2 believes node 1 leads; the client, told by node 2's status, starts at node 2.
    let fakes = must_spawn_fakes(&[1, 2], &[], |id, addresses| {
        if id == 1 {
            Propose::Apply
        } else {
            Propose::Redirect {
                leader: 1,
                address: addresses[&1].to_string(),
            }
        }
    })
    .await;
    // Node 2 saw node 2 lead in an older term: the cache starts wrong.
    fakes.nodes[&2].state().status = status(2, &fakes.book(), Some(2), RaftRole::Follower);
    let client = Client::connect(&fakes.seed(2), quick()).await.unwrap();
    assert_eq!(client.shard_count().get(), 1);
    assert_eq!(client.group_of(AuctionId(5)), GroupId(1));

    let proposed = client.propose(bid("req-1")).await.unwrap();
    assert!(proposed.reply.is_accepted());
    assert_eq!((proposed.node, proposed.attempts), (NodeId(1), 2));
    assert_eq!((proposed.log_index, proposed.log_term), (10, 7));
    assert_eq!(fakes.nodes[&2].calls(), vec!["propose 1 req-1"]);
    assert_eq!(fakes.nodes[&1].calls(), vec!["propose 1 req-1"]);

    // The cache learned: the next proposal goes straight to node 1.
    assert_eq!(
        client.leader_of(GroupId(1)).map(|t| t.node_id),
        Some(NodeId(1))
    );
    let proposed = client.propose(bid("req-2")).await.unwrap();
    assert_eq!(proposed.attempts, 1);
}

#[tokio::test]
async fn a_proposal_that_times_out_after_sending_is_unknown_never_failed() {
    let fakes = must_spawn_fakes(&[1], &[], |_, _| Propose::Stall(Duration::from_secs(5))).await;
    let client = Client::connect(&fakes.seed(1), quick()).await.unwrap();
    let error = client.propose(bid("req-1")).await.unwrap_err();
    assert!(
        matches!(error, ProposeError::Unknown { .. }),
        "a stalled proposal may still commit: {error}"
    );
    assert_eq!(error.code(), ErrorCode::UnknownOutcome);
}

#[tokio::test]
async fn a_proposal_whose_leader_cannot_be_reached_is_provably_not_applied() {
    // Node 1 is down; node 2's status names it leader of groups with voters 1 and 2, and
    // node 2 answers `not_leader` naming node 1. The `not_leader` answers make the outcome
    // open (I9), so the test points the voters at the down node only.
    let fakes = must_spawn_fakes(&[2], &[1], |_, _| Propose::Apply).await;
    {
        let mut state = fakes.nodes[&2].state();
        for group in &mut state.status.groups {
            group.voters = vec![1];
        }
    }
    let client = Client::connect(&fakes.seed(2), quick()).await.unwrap();
    let error = client.propose(bid("req-1")).await.unwrap_err();
    let ProposeError::NotApplied { code, message } = &error else {
        panic!("nothing reached a node: {error}");
    };
    assert_eq!(*code, ErrorCode::Unavailable);
    assert!(message.contains("safe to retry"), "{message}");
    assert!(
        message.contains(&fakes.addresses[&1].to_string()),
        "{message}"
    );
    assert!(fakes.nodes[&2].calls().is_empty());
}

#[tokio::test]
async fn connecting_to_nothing_names_every_address() {
    let first = closed_port().await.to_string();
    let second = closed_port().await.to_string();
    let error = Client::connect(&[first.clone(), second.clone()], quick())
        .await
        .unwrap_err();
    assert_eq!(error.code().as_str(), "unreachable");
    let text = error.to_string();
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    assert!(text.contains("is the node running"), "{text}");
}

#[tokio::test]
async fn connecting_to_an_uninitialized_node_says_to_run_cluster_init() {
    let fakes = must_spawn_fakes(&[1], &[], |_, _| Propose::Apply).await;
    {
        let mut state = fakes.nodes[&1].state();
        state.status.initialized = false;
        state.status.shard_count = 0;
    }
    let error = Client::connect(&fakes.seed(1), quick()).await.unwrap_err();
    assert!(
        error.to_string().contains("martelo cluster init"),
        "{error}"
    );
}

#[tokio::test]
async fn a_subscription_decodes_entries_and_ends_with_the_resync() {
    let fakes = must_spawn_fakes(&[1], &[], |_, _| Propose::Apply).await;
    let client = Client::connect(&fakes.seed(1), quick()).await.unwrap();
    let items: Vec<_> = client.subscribe(GroupId(1), 40, Vec::new()).collect().await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(fakes.nodes[&1].calls(), vec!["subscribe 40 timeout=false"]);
    let SubscribeItem::Entry {
        log_index, events, ..
    } = items[0].as_ref().unwrap()
    else {
        panic!("an entry first: {items:?}");
    };
    assert_eq!((*log_index, events.len()), (40, 1));
    assert_eq!(
        items[1].as_ref().unwrap(),
        &SubscribeItem::Resync {
            reason: ResyncReason::Trimmed,
            first_available: 140
        }
    );
}

/// A listing pages through every group once, in order, following the `not_leader` hint of
/// the node the client first asked.
#[tokio::test]
async fn a_listing_pages_through_every_group_once_following_leader_hints() {
    let fakes = must_spawn_fakes(&[1, 2], &[], |_, _| Propose::Apply).await;
    let book = fakes.book();
    for (&id, fake) in &fakes.nodes {
        let mut state = fake.state();
        // Two auction groups. Node 2 believes it leads them: the client starts there.
        state.status = status(id, &book, Some(2), RaftRole::Follower);
        state.status.shard_count = 2;
        let mut group_two = state.status.groups[1].clone();
        group_two.group_id = 2;
        state.status.groups.push(group_two);
        state.auctions = BTreeMap::from([(1, vec![3, 5, 8, 13]), (2, vec![0, 2])]);
    }
    let client = Client::connect(&fakes.seed(2), quick()).await.unwrap();
    let consistency = martelo_client::ReadConsistency::Linearizable;
    let all = martelo_client::ListFilter::All;
    let mut seen = Vec::new();
    let mut cursor = Some(martelo_client::ListCursor::START);
    let mut cursors = Vec::new();
    while let Some(from) = cursor {
        let page = client
            .list_auctions(all, from, 3, consistency)
            .await
            .unwrap();
        assert!(page.auctions.len() <= 3);
        seen.extend(page.auctions.iter().map(|a| (a.group.0, a.summary.id.0)));
        cursor = page.next;
        cursors.extend(cursor.map(|cursor| cursor.to_string()));
    }
    assert_eq!(seen, vec![(1, 3), (1, 5), (1, 8), (1, 13), (2, 0), (2, 2)]);
    assert_eq!(cursors, vec!["1:8"]);
    // One redirect per group, then node 1 for everything: the leader cache learned.
    assert_eq!(
        fakes.nodes[&2].calls(),
        vec!["list 1 after=None limit=3", "list 2 after=None limit=2"]
    );
    assert_eq!(
        fakes.nodes[&1].calls(),
        vec![
            "list 1 after=None limit=3",
            "list 1 after=Some(8) limit=3",
            "list 2 after=None limit=2",
        ]
    );
    // A cursor outside the cluster and a page too large are refused before sending.
    let outside = "3:start".parse().unwrap();
    assert!(
        client
            .list_auctions(all, outside, 3, consistency)
            .await
            .is_err()
    );
    let start = martelo_client::ListCursor::START;
    assert!(
        client
            .list_auctions(all, start, 501, consistency)
            .await
            .is_err()
    );
    assert_eq!(fakes.nodes[&1].calls().len(), 3);
}
