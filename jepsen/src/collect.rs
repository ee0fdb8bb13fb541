//! Collecting `final.json` from a healed cluster: each replica's applied log per auction
//! (through `Subscribe`, sent to that node directly) and its state digest (through the admin
//! `Status` with `include_digest`).
//!
//! It first waits until, in every group, each member has applied exactly the leader's commit
//! index, so a replica that lacks an entry then has really lost it.
//!
//! Events become [`LogEntry`]s: `BidAccepted { bidder, amount }` is an accepted bid, mapped
//! to its request id through the history (amounts are unique per auction, and the workload
//! gives every bid its own bidder id); `Closed` is the close. Rejected bids emit no event, so
//! they are not in the collected logs (see `replicas.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use martelo_client::SubscribeItem;
use martelo_client::client::decode_subscribe;
use martelo_engine::{AuctionEventKind, AuctionId, AuctionResult, Event};
use martelo_proto::channel::{ChannelSettings, endpoint};
use martelo_proto::services::{admin_api_client, client_api_client};
use martelo_proto::{
    ErrorCode, GroupStatus, RaftRole, ReadAuctionRequest, ReadConsistency, StatusRequest,
    StatusResponse, SubscribeRequest, read_auction_response,
};
use martelo_types::{ShardCount, group_of};
use tonic::transport::Channel;

use crate::history::{CloseOutcome, Record, TopBid, Value};
use crate::replicas::{FinalState, LogEntry, ReplicaState};

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the node at `address` with the client settings; `request_timeout` bounds
/// every call on the channel (`None` for a stream, which outlives any one call deadline).
async fn connect(address: &str, request_timeout: Option<Duration>) -> anyhow::Result<Channel> {
    let settings = match request_timeout {
        Some(timeout) => ChannelSettings::CLIENT.with_request_timeout(timeout),
        None => ChannelSettings::CLIENT,
    };
    Ok(endpoint(address, &settings)?.connect().await?)
}

/// The `Status` of one node, with digests when asked.
pub async fn node_status(address: &str, include_digest: bool) -> anyhow::Result<StatusResponse> {
    let channel = connect(address, Some(RPC_TIMEOUT)).await?;
    let mut admin = admin_api_client(channel);
    let response = admin
        .status(StatusRequest {
            group_ids: Vec::new(),
            include_digest,
        })
        .await?;
    Ok(response.into_inner())
}

/// Statuses of every node that answers.
pub async fn statuses(
    nodes: &BTreeMap<u64, String>,
    include_digest: bool,
) -> BTreeMap<u64, StatusResponse> {
    let mut answers = BTreeMap::new();
    for (&id, address) in nodes {
        if let Ok(status) = node_status(address, include_digest).await {
            answers.insert(id, status);
        }
    }
    answers
}

/// One group as its leader sees it.
#[derive(Clone, Debug)]
struct GroupView {
    leader: u64,
    committed: u64,
    members: BTreeSet<u64>,
}

fn group_view(statuses: &BTreeMap<u64, StatusResponse>, group: u64) -> Option<GroupView> {
    for (&node, status) in statuses {
        for replica in &status.groups {
            if replica.group_id == group && replica.role() == RaftRole::Leader {
                let members = replica
                    .voters
                    .iter()
                    .chain(&replica.learners)
                    .copied()
                    .collect();
                return Some(GroupView {
                    leader: node,
                    committed: replica.committed_index?,
                    members,
                });
            }
        }
    }
    None
}

fn replica_of(status: &StatusResponse, group: u64) -> Option<&GroupStatus> {
    status
        .groups
        .iter()
        .find(|replica| replica.group_id == group)
}

/// Why the groups are not settled yet, or `None` when every member of every group has
/// applied its leader's commit index.
fn unsettled(statuses: &BTreeMap<u64, StatusResponse>, groups: &[u64]) -> Option<String> {
    for &group in groups {
        let Some(view) = group_view(statuses, group) else {
            return Some(format!("group {group} has no leader"));
        };
        for member in &view.members {
            let applied = statuses
                .get(member)
                .and_then(|status| replica_of(status, group))
                .and_then(|replica| replica.applied_index);
            if applied != Some(view.committed) {
                return Some(format!(
                    "group {group}: node {member} applied {applied:?}, leader {} committed {}",
                    view.leader, view.committed
                ));
            }
        }
    }
    None
}

/// request ids of bids by (auction, amount), from the history's invokes.
fn bid_requests(history: &[Record]) -> BTreeMap<(u64, u64), String> {
    history
        .iter()
        .filter_map(|record| match record.value {
            Some(Value::Bid(bid)) => Some(((record.auction, bid.amount), record.request.clone())),
            _ => None,
        })
        .collect()
}

/// `auctions` sorted into their Raft groups.
pub fn auctions_by_group(auctions: &BTreeSet<u64>, shards: ShardCount) -> BTreeMap<u64, Vec<u64>> {
    let mut by_group: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &auction in auctions {
        by_group
            .entry(group_of(AuctionId(auction), shards).0)
            .or_default()
            .push(auction);
    }
    by_group
}

/// Collects the final state. `notes` gets what could not be collected.
pub async fn collect(
    nodes: &BTreeMap<u64, String>,
    shard_count: u32,
    auctions: &BTreeSet<u64>,
    history: &[Record],
    timeout: Duration,
    notes: &mut Vec<String>,
) -> anyhow::Result<FinalState> {
    let shards = ShardCount::try_from(shard_count)
        .map_err(|_| anyhow::anyhow!("shard count {shard_count} out of range"))?;
    let groups: Vec<u64> = (1..=u64::from(shard_count)).collect();
    let deadline = Instant::now() + timeout;
    let statuses = loop {
        let statuses = statuses(nodes, true).await;
        match unsettled(&statuses, &groups) {
            None => break statuses,
            Some(reason) if Instant::now() >= deadline => {
                notes.push(format!(
                    "replicas did not settle within {timeout:?}: {reason}"
                ));
                break statuses;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let requests = bid_requests(history);
    let by_group = auctions_by_group(auctions, shards);
    let mut final_state = FinalState::default();
    for &group in &groups {
        let Some(view) = group_view(&statuses, group) else {
            notes.push(format!("group {group}: no leader at collection time"));
            continue;
        };
        for &member in &view.members {
            let Some(address) = nodes.get(&member) else {
                continue;
            };
            let replica = statuses.get(&member).and_then(|s| replica_of(s, group));
            let applied = replica.and_then(|r| r.applied_index).unwrap_or(0);
            let digest = replica
                .and_then(|r| r.state_digest.clone())
                .unwrap_or_default();
            let mut logs: BTreeMap<u64, Vec<LogEntry>> = by_group
                .get(&group)
                .into_iter()
                .flatten()
                .map(|&auction| (auction, Vec::new()))
                .collect();
            match read_log(address, group, applied, &requests, &mut logs).await {
                Ok(()) => {}
                Err(error) => {
                    // A replica that caught up from a snapshot has no events before it:
                    // rebuild its logs from its own state (bids in log order, then the close).
                    for log in logs.values_mut() {
                        log.clear();
                    }
                    let rebuilt = rebuild_from_views(address, group, &requests, &mut logs).await;
                    notes.push(format!(
                        "group {group} on node {member}: events not fully read ({error});                          logs rebuilt from the replica's state: {}",
                        match rebuilt {
                            Ok(()) => "ok".to_owned(),
                            Err(error) => format!("failed: {error}"),
                        }
                    ));
                }
            }
            final_state.replicas.insert(
                format!("g{group}/n{member}"),
                ReplicaState {
                    group: Some(group),
                    digest,
                    auctions: logs,
                },
            );
        }
    }
    Ok(final_state)
}

/// Reads `group`'s committed events on the node at `address` from the start of the log up to
/// `applied`, appending bids and closes to `logs` (auctions not listed there are skipped).
async fn read_log(
    address: &str,
    group: u64,
    applied: u64,
    requests: &BTreeMap<(u64, u64), String>,
    logs: &mut BTreeMap<u64, Vec<LogEntry>>,
) -> anyhow::Result<()> {
    if applied == 0 {
        return Ok(());
    }
    let channel = connect(address, None).await?;
    let mut client = client_api_client(channel);
    let stream = tokio::time::timeout(
        RPC_TIMEOUT,
        client.subscribe(SubscribeRequest {
            group_id: group,
            // 1, not 0: from 0 the node silently starts at its first available entry, while
            // from 1 it says when entries before that were trimmed.
            from_log_index: 1,
            auction_ids: Vec::new(),
        }),
    )
    .await??;
    let mut stream = stream.into_inner();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(remaining, stream.next()).await else {
            anyhow::bail!("stream stalled before log index {applied}");
        };
        let Some(message) = next else {
            anyhow::bail!("stream ended before log index {applied}");
        };
        match decode_subscribe(address, message?)? {
            SubscribeItem::Entry {
                log_index, events, ..
            } => {
                for (auction, _, event) in events {
                    if let Some(entry) = log_entry(auction.0, &event, requests)
                        && let Some(log) = logs.get_mut(&auction.0)
                    {
                        log.push(entry);
                    }
                }
                if log_index >= applied {
                    return Ok(());
                }
            }
            SubscribeItem::Progress { applied_index } => {
                if applied_index >= applied {
                    return Ok(());
                }
            }
            SubscribeItem::Resync {
                reason,
                first_available,
            } => anyhow::bail!(
                "resync ({reason:?}): the log before index {first_available} was not read"
            ),
        }
    }
}

/// The engine's view of each of `auctions` (all of `group`) on the node at `address`, read
/// with `consistency`; an auction the engine does not know is left out.
pub async fn read_views(
    address: &str,
    group: u64,
    auctions: impl IntoIterator<Item = u64>,
    consistency: ReadConsistency,
) -> anyhow::Result<BTreeMap<u64, martelo_engine::AuctionView>> {
    let channel = connect(address, Some(RPC_TIMEOUT)).await?;
    let mut client = client_api_client(channel);
    let mut views = BTreeMap::new();
    for auction in auctions {
        let response = client
            .read_auction(ReadAuctionRequest {
                group_id: group,
                auction_id: auction,
                consistency: consistency.into(),
                traceparent: String::new(),
            })
            .await?
            .into_inner();
        let view = match response.result {
            Some(read_auction_response::Result::Auction(view)) => view,
            Some(read_auction_response::Result::Error(error))
                if error.code() == ErrorCode::AuctionNotFound =>
            {
                continue;
            }
            Some(read_auction_response::Result::Error(error)) => {
                anyhow::bail!("auction {auction}: {}", error.message)
            }
            None => anyhow::bail!("auction {auction}: empty answer"),
        };
        let view: martelo_engine::AuctionView = martelo_engine::codec::wire::decode::<
            _,
            { martelo_proto::AUCTION_VIEW_BYTES_MAX },
        >("auction view", &view.state)?;
        views.insert(auction, view);
    }
    Ok(views)
}

/// The logs of every auction in `logs`, from the replica's local view of each: accepted,
/// unvoided bids in log order, then the close; a bid stamped after the close goes after it.
async fn rebuild_from_views(
    address: &str,
    group: u64,
    requests: &BTreeMap<(u64, u64), String>,
    logs: &mut BTreeMap<u64, Vec<LogEntry>>,
) -> anyhow::Result<()> {
    let auctions: Vec<u64> = logs.keys().copied().collect();
    let views = read_views(address, group, auctions, ReadConsistency::Local).await?;
    for (auction, view) in views {
        let Some(log) = logs.get_mut(&auction) else {
            continue;
        };
        let closed_at = view.closed.as_ref().map(|closed| closed.at);
        let mut close_pushed = false;
        for bid in view.bids.iter().filter(|bid| !bid.voided) {
            if let (Some(at), false) = (closed_at, close_pushed)
                && bid.at > at
                && let Some(closed) = &view.closed
            {
                log.push(close_entry(&closed.result));
                close_pushed = true;
            }
            log.push(bid_entry(auction, bid.bidder.0, bid.amount.0, requests));
        }
        if let (Some(closed), false) = (&view.closed, close_pushed) {
            log.push(close_entry(&closed.result));
        }
    }
    Ok(())
}

fn bid_entry(
    auction: u64,
    bidder: u64,
    amount: u64,
    requests: &BTreeMap<(u64, u64), String>,
) -> LogEntry {
    let request = requests
        .get(&(auction, amount))
        .cloned()
        .unwrap_or_else(|| format!("unmatched-{bidder}-{amount}"));
    LogEntry::Bid {
        request,
        bidder,
        amount,
        accepted: true,
    }
}

fn close_entry(result: &AuctionResult) -> LogEntry {
    let outcome = match result {
        AuctionResult::Sold { winner, price, .. } => CloseOutcome::Sold(TopBid {
            amount: price.0,
            bidder: winner.0,
        }),
        AuctionResult::Unsold { .. } | AuctionResult::Cancelled { .. } => CloseOutcome::Unsold,
    };
    LogEntry::Close { outcome }
}

fn log_entry(
    auction: u64,
    event: &Event,
    requests: &BTreeMap<(u64, u64), String>,
) -> Option<LogEntry> {
    let Event::Auction(event) = event else {
        return None;
    };
    match &event.kind {
        AuctionEventKind::BidAccepted { bidder, amount, .. } => {
            Some(bid_entry(auction, bidder.0, amount.0, requests))
        }
        AuctionEventKind::Closed { result } => Some(close_entry(result)),
        _ => None,
    }
}

/// Waits until every group `1..=shard_count` has a leader that every member (as that leader
/// lists them) answers for and names. Replicas on nodes that are no longer members are not
/// asked: a removed replica may linger without a leader. Returns why not, at the deadline.
pub async fn wait_groups_led(
    nodes: &BTreeMap<u64, String>,
    shard_count: u32,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let statuses = statuses(nodes, false).await;
        let mut reason = None;
        for group in 1..=u64::from(shard_count) {
            let Some(view) = group_view(&statuses, group) else {
                reason = Some(format!("group {group} has no leader"));
                break;
            };
            for member in &view.members {
                let named = statuses
                    .get(member)
                    .and_then(|status| replica_of(status, group))
                    .and_then(|replica| replica.leader_id);
                if named != Some(view.leader) {
                    reason = Some(format!(
                        "group {group}: member {member} names leader {named:?}, not {}",
                        view.leader
                    ));
                    break;
                }
            }
        }
        match reason {
            None => return Ok(()),
            Some(reason) if Instant::now() >= deadline => return Err(reason),
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The leader of every group `1..=shard_count` among the answering nodes.
pub fn leaders(statuses: &BTreeMap<u64, StatusResponse>, shard_count: u32) -> BTreeMap<u64, u64> {
    (1..=u64::from(shard_count))
        .filter_map(|group| group_view(statuses, group).map(|view| (group, view.leader)))
        .collect()
}

/// `group` -> (its leader, the leader's commit index), for each of `groups` that has a
/// leader among the answering nodes.
pub fn leaders_and_commits(
    statuses: &BTreeMap<u64, StatusResponse>,
    groups: impl IntoIterator<Item = u64>,
) -> BTreeMap<u64, (u64, u64)> {
    groups
        .into_iter()
        .filter_map(|group| {
            group_view(statuses, group).map(|view| (group, (view.leader, view.committed)))
        })
        .collect()
}

/// The members (voters and learners) of `group` as its leader sees them.
pub fn members(statuses: &BTreeMap<u64, StatusResponse>, group: u64) -> Vec<u64> {
    group_view(statuses, group)
        .map(|view| view.members.into_iter().collect())
        .unwrap_or_default()
}
