//! Suspension through the meta group: an admin suspends a bidder while the bidder's socket
//! is open; the gateway, following group 0, closes the socket with 4001 within 1 s of the
//! commit, refuses the user's bids at once, and refuses new sockets with the old token.
//! Signing out of one session closes that session's sockets with 4002, and signing out
//! everywhere closes all of the user's sockets.

#[path = "support/ws_harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Got, Harness, Setup};
use martelo_client::admin::Admin;
use martelo_engine::meta::{DisplayName, FamilyId, PasswordHash, TokenHash, Username};
use martelo_engine::{
    Accepted, MetaAccepted, MetaAction, MetaActor, MetaCommand, Reason, Reply, RequestId, Role,
    Timestamp, UserId,
};
use serde_json::json;
use tokio_tungstenite::tungstenite;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

fn register(username: &str, role: Role) -> MetaAction {
    MetaAction::RegisterUser {
        username: Username::fold(username).expect("username"),
        display_name: DisplayName::try_from(username).expect("display name"),
        password_hash: PasswordHash::try_from(HASH).expect("hash"),
        roles: [role].into_iter().collect(),
    }
}

fn registered(reply: &Reply) -> UserId {
    match reply {
        Reply::Accepted(Accepted::Meta(MetaAccepted::UserRegistered { user, .. })) => *user,
        other => panic!("not registered: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_closes_the_users_socket_within_a_second_and_refuses_their_bids() {
    let setup = Setup {
        nodes: 1,
        shards: 1,
        ..Setup::default()
    };
    let test = Harness::start(setup).await;
    test.create_auction(1, Duration::from_secs(600)).await;

    // The operator creates the first admin; the admin registers a bidder.
    let seeds = test.cluster.api_addresses();
    let admin = Admin::default()
        .propose_meta(
            &seeds,
            register("root", Role::Admin),
            RequestId::try_from("root").expect("id"),
        )
        .await
        .expect("admin created");
    let admin = registered(&admin.reply);
    let bidder = test
        .client
        .propose_meta(
            MetaCommand {
                actor: MetaActor::User(admin),
                request_id: RequestId::try_from("reg-bidder").expect("id"),
                action: register("bidder", Role::Bidder),
            },
            None,
        )
        .await
        .expect("bidder registered");
    let bidder = registered(&bidder.reply);

    let mut ws = test.open_as(bidder).await;
    ws.send(json!({"type": "subscribe", "auction": 1})).await;
    assert_eq!(
        ws.next_json(Duration::from_secs(10)).await["type"],
        "snapshot"
    );
    // A bystander's socket stays open.
    let mut other = test.open_as(UserId(999)).await;

    // Measured from before the proposal: an upper bound on the time since the commit.
    let asked = Instant::now();
    let suspended = test
        .client
        .propose_meta(
            MetaCommand {
                actor: MetaActor::User(admin),
                request_id: RequestId::try_from("suspend-1").expect("id"),
                action: MetaAction::SuspendUser {
                    user: bidder,
                    reason: Reason::try_from("shill bidding").expect("reason"),
                },
            },
            None,
        )
        .await
        .expect("suspended");
    assert!(suspended.reply.is_accepted(), "{:?}", suspended.reply);

    let closed = loop {
        match ws.next_within(Duration::from_secs(3)).await {
            Some(Got::Json(_)) => continue,
            Some(Got::Closed(frame)) => break frame,
            None => panic!("the socket was not closed within 3 s of the suspension"),
        }
    };
    let took = asked.elapsed();
    println!("closed {took:?} after the suspension was proposed: {closed:?}");
    let (code, reason) = closed.expect("a close frame");
    assert_eq!(code, 4001);
    assert_eq!(reason, "account suspended");
    assert!(took <= Duration::from_secs(1), "{took:?}");
    assert!(test.state.meta.is_blocked(bidder));
    assert!(!test.state.meta.is_blocked(UserId(999)));

    // The old token opens no new socket.
    let bearer = format!("Bearer {}", test.token(bidder, Role::Bidder));
    match test.open_with(&[("authorization", &bearer)], None).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        Err(other) => panic!("expected 403, got {other}"),
        Ok(_) => panic!("a suspended user's token opened a socket"),
    }
    other.send(json!({"type": "ping"})).await;
    assert_eq!(
        other.next_json(Duration::from_secs(5)).await["type"],
        "pong"
    );
    // Signing out everywhere closes the user's sockets with 4002.
    let carol = test
        .client
        .propose_meta(
            MetaCommand {
                actor: MetaActor::User(admin),
                request_id: RequestId::try_from("reg-carol").expect("id"),
                action: register("carol", Role::Bidder),
            },
            None,
        )
        .await
        .expect("carol registered");
    let carol = registered(&carol.reply);
    let as_carol = |request_id: &str, action: MetaAction| MetaCommand {
        actor: MetaActor::User(carol),
        request_id: RequestId::try_from(request_id).expect("id"),
        action,
    };
    for (request_id, family) in [("session-1", 42), ("session-2", 43)] {
        let session = test
            .client
            .propose_meta(
                as_carol(
                    request_id,
                    MetaAction::CreateSession {
                        user: carol,
                        family: FamilyId(family),
                        token_hash: TokenHash([family as u8; 32]),
                        expires_at: Timestamp(harness::now().0 + 3_600_000_000),
                    },
                ),
                None,
            )
            .await
            .expect("session");
        assert!(session.reply.is_accepted(), "{:?}", session.reply);
    }
    // Signing out of one session closes that session's socket only.
    let mut signed_out = test.open_in_session(carol, FamilyId(42)).await;
    let mut ws = test.open_in_session(carol, FamilyId(43)).await;
    for socket in [&mut signed_out, &mut ws] {
        socket.send(json!({"type": "ping"})).await;
        assert_eq!(
            socket.next_json(Duration::from_secs(5)).await["type"],
            "pong"
        );
    }
    let logout = test
        .client
        .propose_meta(
            as_carol(
                "logout-42",
                MetaAction::RevokeFamily {
                    family: FamilyId(42),
                },
            ),
            None,
        )
        .await
        .expect("logout");
    assert!(logout.reply.is_accepted(), "{:?}", logout.reply);
    let closed = loop {
        match signed_out.next_within(Duration::from_secs(3)).await {
            Some(Got::Json(_)) => continue,
            Some(Got::Closed(frame)) => break frame,
            None => panic!("the signed-out session's socket was not closed within 3 s"),
        }
    };
    assert_eq!(closed, Some((4002, "signed out".to_owned())));
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(
        ws.next_json(Duration::from_secs(5)).await["type"],
        "pong",
        "the other session's socket stays open"
    );
    let asked = Instant::now();
    let revoked = test
        .client
        .propose_meta(
            as_carol("logout-all", MetaAction::RevokeAllSessions { user: carol }),
            None,
        )
        .await
        .expect("revoked");
    assert!(revoked.reply.is_accepted(), "{:?}", revoked.reply);
    let closed = loop {
        match ws.next_within(Duration::from_secs(3)).await {
            Some(Got::Json(_)) => continue,
            Some(Got::Closed(frame)) => break frame,
            None => panic!("the socket was not closed within 3 s of the sign-out"),
        }
    };
    let took = asked.elapsed();
    println!("closed {took:?} after the sign-out was proposed: {closed:?}");
    assert_eq!(closed, Some((4002, "signed out".to_owned())));
    assert!(took <= Duration::from_secs(1), "{took:?}");
}
