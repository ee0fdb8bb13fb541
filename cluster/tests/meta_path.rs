//! The meta group's path from clients to the node, against real `martelo node` processes on
//! loopback: `martelo user create|list` (the operator, through the admin API), the client
//! library's `propose_meta`, `read_user` and `list_users` (the gateway's calls), the meta
//! event stream on group 0, and the cluster facts that `cluster init` records.

use std::time::Duration;

use futures::StreamExt as _;
use martelo_client::admin::Admin;
use martelo_client::{ReadConsistency, SubscribeItem, UserKey};
use martelo_engine::meta::{DisplayName, PasswordHash, UserQuery, Username};
use martelo_engine::{
    Accepted, Action, Event, GroupId, MetaAccepted, MetaAction, MetaActor, MetaCommand,
    MetaEventKind, MetaRejectCode, RejectCode, Reply, RequestId, Role, UserId,
};
use martelo_proto::ErrorCode;

mod support;

use support::{TestCluster, martelo, request};

const SHARDS: u32 = 4;

fn register(actor: MetaActor, request_id: &str, username: &str) -> MetaCommand {
    MetaCommand {
        actor,
        request_id: RequestId::try_from(request_id).expect("request id"),
        action: MetaAction::RegisterUser {
            username: Username::fold(username).expect("username"),
            display_name: DisplayName::try_from(username).expect("display name"),
            password_hash: PasswordHash::try_from("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
                .expect("hash"),
            roles: [Role::Bidder].into_iter().collect(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_the_first_admin_and_lists_it() {
    let test = TestCluster::start(3, SHARDS).await;
    let addresses = test.cluster.api_addresses().join(",");
    let password_file = test.dir.path().join("root.password");
    std::fs::write(&password_file, "s3cret-root-password\n").expect("password file");
    let password_path = password_file.to_string_lossy().into_owned();

    let created = martelo(&[
        "user",
        "create",
        "--cluster",
        &addresses,
        "--username",
        "Root",
        "--display-name",
        "The Root",
        "--admin",
        "--password-file",
        &password_path,
        "--json",
    ])
    .await;
    created.must_exit(0).must_not_say(&["s3cret-root-password"]);
    let json: serde_json::Value = serde_json::from_str(&created.stdout).expect("JSON");
    let user_id = json["user_id"].as_u64().expect("user id");
    assert!(user_id >= 1, "{json}");
    assert_eq!(json["roles"], serde_json::json!(["admin"]));
    assert_eq!(json["username"], "root", "the username as stored, folded");

    // A second admin from the operator is refused: one exists now.
    let again = martelo(&[
        "user",
        "create",
        "--cluster",
        &addresses,
        "--username",
        "root2",
        "--display-name",
        "Another root",
        "--admin",
        "--password-file",
        &password_path,
    ])
    .await;
    again.must_exit(1).must_say(&["admin_exists"]);

    let listed = martelo(&["user", "list", "--cluster", &addresses, "--json"]).await;
    listed.must_exit(0).must_not_say(&["argon2"]);
    let users: serde_json::Value = serde_json::from_str(&listed.stdout).expect("JSON");
    let users = users.as_array().expect("a list");
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["user_id"].as_u64(), Some(user_id));
    assert_eq!(users[0]["username"], "root");
    assert_eq!(users[0]["display_name"], "The Root");
    assert_eq!(users[0]["status"], "active");

    let table = martelo(&["user", "list", "--cluster", &addresses]).await;
    table
        .must_exit(0)
        .must_print(&["USERNAME", "root", "admin"]);

    // The hash the CLI computed is what the meta group holds: an argon2id PHC string.
    let read = test
        .client
        .read_user(UserKey::Id(UserId(user_id)), ReadConsistency::Linearizable)
        .await
        .expect("read");
    let credentials = read.credentials.expect("found");
    assert!(
        credentials
            .password_hash
            .as_phc()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "the stored hash is argon2id with the default parameters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_calls_register_read_list_and_follow_the_meta_group() {
    let test = TestCluster::start(3, SHARDS).await;
    let client = &test.client;

    // (d) `cluster init` recorded the shard count: the same count is accepted again as a
    // replay of init's own request, another count conflicts.
    let admin = Admin::default();
    let seeds = test.cluster.api_addresses();
    let facts = RequestId::try_from(format!("cluster-facts-{SHARDS}")).expect("id");
    let again = admin
        .propose_meta(
            &seeds,
            MetaAction::SetClusterFacts {
                shard_count: SHARDS,
            },
            facts,
        )
        .await
        .expect("answered");
    assert!(again.reply.is_accepted(), "{:?}", again.reply);
    assert!(
        again.replayed,
        "init recorded the facts with this request id"
    );
    let conflict = admin
        .propose_meta(
            &seeds,
            MetaAction::SetClusterFacts {
                shard_count: SHARDS + 1,
            },
            RequestId::try_from("facts-conflict").expect("id"),
        )
        .await
        .expect("answered");
    assert_eq!(
        conflict.reply,
        Reply::Rejected(RejectCode::Meta(MetaRejectCode::ShardCountConflict))
    );

    // (b) Anonymous sign-up of a bidder.
    let proposed = client
        .propose_meta(register(MetaActor::Anonymous, "signup-1", "Bidder1"), None)
        .await
        .expect("answered");
    let Reply::Accepted(Accepted::Meta(MetaAccepted::UserRegistered { user, username })) =
        proposed.reply
    else {
        panic!("not registered: {:?}", proposed.reply);
    };
    assert_eq!(username.as_str(), "bidder1");
    assert!(!proposed.decided_without_log);
    assert!(proposed.log_index > 0);

    // Read back by username, folded, linearizably, with its password hash.
    let read = client
        .read_user(
            UserKey::Username("BIDDER1".into()),
            ReadConsistency::Linearizable,
        )
        .await
        .expect("read");
    let credentials = read.credentials.expect("found");
    assert_eq!(credentials.summary.id, user);
    assert!(credentials.password_hash.as_phc().starts_with("$argon2id$"));
    assert!(read.applied_index >= proposed.log_index);
    let missing = client
        .read_user(UserKey::Username("nobody".into()), ReadConsistency::Lease)
        .await
        .expect("read");
    assert_eq!(missing.credentials, None);

    // A duplicate username is the meta group's rejection, not an error.
    let duplicate = client
        .propose_meta(register(MetaActor::Anonymous, "signup-2", "bidder1"), None)
        .await
        .expect("answered");
    assert_eq!(
        duplicate.reply,
        Reply::Rejected(RejectCode::Meta(MetaRejectCode::UsernameTaken))
    );

    // The operator is refused on the client API (the client refuses before sending; the
    // node refuses too, checked in its unit tests).
    let operator = client
        .propose_meta(register(MetaActor::Operator, "op-1", "sneaky"), None)
        .await
        .expect_err("refused");
    assert_eq!(operator.code(), ErrorCode::PermissionDenied);
    assert!(!operator.may_have_been_applied());

    // A meta command to an auction group, an auction request to group 0: refused by the
    // node with `invalid_argument`, nothing applied.
    let meta_elsewhere = propose_raw(
        &seeds,
        1,
        "m-elsewhere",
        martelo_proto::propose_request::Command::EncodedMetaCommand(
            encode(&register(MetaActor::Anonymous, "m-elsewhere", "elsewhere")).into(),
        ),
    )
    .await;
    assert_eq!(meta_elsewhere, ErrorCode::InvalidArgument);
    let bid = request(
        UserId(50),
        Role::Bidder,
        "auction-to-meta",
        Action::PlaceBid {
            auction_id: martelo_engine::AuctionId(1),
            amount: martelo_engine::Amount(100),
            max: None,
        },
    );
    let auction_to_meta = client
        .propose_to(GroupId::META, bid.clone())
        .await
        .expect_err("refused");
    assert_eq!(auction_to_meta.code(), ErrorCode::InvalidArgument);
    let raw = propose_raw(
        &seeds,
        0,
        "auction-to-meta",
        martelo_proto::propose_request::Command::EncodedRequest(
            martelo_engine::codec::wire::encode(
                "request",
                &bid,
                martelo_engine::codec::wire::WireVersion::CURRENT,
            )
            .expect("encode")
            .into(),
        ),
    )
    .await;
    assert_eq!(raw, ErrorCode::InvalidArgument);

    // Listing: the bidder shows up, without secrets.
    let page = client
        .list_users(
            &UserQuery {
                prefix: "bid".into(),
                after: None,
                limit: 10,
            },
            ReadConsistency::Linearizable,
        )
        .await
        .expect("list");
    assert_eq!(page.users.len(), 1);
    assert_eq!(page.users[0].id, user);
    assert_eq!(page.next_after, None);

    // (c) The meta stream on group 0 from the start: the facts, then the registration.
    let mut stream = Box::pin(client.subscribe(GroupId::META, 0, Vec::new()));
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = stream.next().await {
            let SubscribeItem::Entry { events, .. } = item.expect("stream item") else {
                continue;
            };
            for (auction, seq, event) in events {
                let Event::Meta(meta) = event else {
                    panic!("a non-meta event on the meta group: {event:?}");
                };
                assert_eq!(auction.0, 0);
                assert_eq!(seq, meta.seq, "the envelope carries the meta seq");
                seen.push(meta.kind.clone());
                if let MetaEventKind::UserRegistered {
                    user: registered, ..
                } = meta.kind
                    && registered == user
                {
                    return seq;
                }
            }
        }
        panic!("the stream ended before the registration: {seen:?}");
    })
    .await
    .expect("the registration is streamed");
    assert!(found >= 2, "the facts came first: {seen:?}");
    assert_eq!(
        seen.first(),
        Some(&MetaEventKind::ClusterFactsSet {
            shard_count: SHARDS
        })
    );
    // The auction groups still take auction commands (create_auction checks the reply).
    support::create_auction(client, 1, Duration::from_secs(60)).await;
}

fn encode(command: &MetaCommand) -> Vec<u8> {
    martelo_engine::codec::wire::encode(
        "meta command",
        command,
        martelo_engine::codec::wire::WireVersion::CURRENT,
    )
    .expect("encode")
}

/// Sends one hand-made `Propose` to every node until one answers, and returns the error code
/// (the test expects a refusal).
async fn propose_raw(
    seeds: &[String],
    group: u64,
    request_id: &str,
    command: martelo_proto::propose_request::Command,
) -> ErrorCode {
    let message = martelo_proto::ProposeRequest {
        group_id: group,
        request_id: request_id.to_owned(),
        auction_id: 0,
        traceparent: String::new(),
        codec_version: martelo_engine::codec::wire::WireVersion::CURRENT.codec_version(),
        attempt: 1,
        command: Some(command),
    };
    for seed in seeds {
        let endpoint = martelo_proto::channel::endpoint(
            seed,
            &martelo_proto::channel::ChannelSettings::CLIENT,
        )
        .expect("endpoint");
        let Ok(channel) = endpoint.connect().await else {
            continue;
        };
        let mut client = martelo_proto::services::client_api_client(channel);
        let answer = client
            .propose(message.clone())
            .await
            .expect("answered")
            .into_inner();
        match answer.result {
            Some(martelo_proto::propose_response::Result::Error(error)) => return error.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    panic!("no node answered");
}
