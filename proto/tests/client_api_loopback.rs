//! The generated client API works end to end: a tonic server on 127.0.0.1:0 with a trivial
//! implementation, called through the generated client over real loopback TCP.

use std::net::SocketAddr;
use std::pin::Pin;

use martelo_proto::channel::{ChannelSettings, endpoint};
use martelo_proto::client_api_client::ClientApiClient;
use martelo_proto::client_api_server::ClientApi;
use martelo_proto::services::{client_api_client, client_api_server};
use martelo_proto::{
    ApiError, Applied, AuctionFilter, AuctionPage, AuctionSummary, AuctionView,
    CLIENT_REQUEST_BYTES_MAX, CommittedEntry, ErrorCode, ListAuctionsRequest, ListAuctionsResponse,
    NotLeader, ProposeRequest, ProposeResponse, ReadAuctionRequest, ReadAuctionResponse, Resync,
    SubscribeRequest, SubscribeResponse, check_encoded_len, list_auctions_response,
    propose_request, propose_response, read_auction_response, resync, subscribe_response,
};
use prost::bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

/// The only group this test node leads; every other group answers with a leader hint.
const LED_GROUP: u64 = 1;
const LEADER_ADDRESS: &str = "127.0.0.1:7999";

/// Applies nothing: echoes the command back as the reply at a fixed log position.
#[derive(Debug)]
struct EchoNode;

#[tonic::async_trait]
impl ClientApi for EchoNode {
    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        let request = request.into_inner();
        let result = if request.group_id == LED_GROUP {
            let Some(propose_request::Command::EncodedRequest(command)) = request.command else {
                let error = ApiError::new(ErrorCode::InvalidArgument, "command missing");
                return Ok(Response::new(ProposeResponse {
                    result: Some(propose_response::Result::Error(error)),
                }));
            };
            propose_response::Result::Applied(Applied {
                log_index: 42,
                log_term: 3,
                reply: command,
                accepted: true,
                auction_seq: request.auction_id,
                decided_without_log: false,
                ..Applied::default()
            })
        } else {
            propose_response::Result::Error(ApiError::not_leader(NotLeader {
                group_id: request.group_id,
                leader_id: Some(7),
                leader_address: LEADER_ADDRESS.to_owned(),
                term: 3,
            }))
        };
        Ok(Response::new(ProposeResponse {
            result: Some(result),
        }))
    }

    async fn read_auction(
        &self,
        request: Request<ReadAuctionRequest>,
    ) -> Result<Response<ReadAuctionResponse>, Status> {
        let request = request.into_inner();
        let view = AuctionView {
            group_id: request.group_id,
            auction_id: request.auction_id,
            seq: 9,
            applied_index: 42,
            codec_version: 1,
            state: Bytes::from_static(b"state"),
        };
        Ok(Response::new(ReadAuctionResponse {
            result: Some(read_auction_response::Result::Auction(view)),
        }))
    }

    /// Lists auctions 0..10 of any group, `limit` at a time, after the cursor.
    async fn list_auctions(
        &self,
        request: Request<ListAuctionsRequest>,
    ) -> Result<Response<ListAuctionsResponse>, Status> {
        let request = request.into_inner();
        let first = request.after_auction_id.map_or(0, |after| after + 1);
        let ids: Vec<u64> = (first..10).take(request.limit as usize).collect();
        let next = ids.last().copied().filter(|&last| last < 9);
        let page = AuctionPage {
            group_id: request.group_id,
            auctions: ids
                .iter()
                .map(|&auction_id| AuctionSummary {
                    auction_id,
                    seq: 1,
                    summary: Bytes::from_static(b"summary"),
                })
                .collect(),
            next_after_auction_id: next,
            applied_index: 42,
            now_us: request.closing_within_us,
            codec_version: 1,
        };
        Ok(Response::new(ListAuctionsResponse {
            result: Some(list_auctions_response::Result::Page(page)),
        }))
    }

    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send + 'static>>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let from = request.into_inner().from_log_index;
        // One entry at the requested index, then "trimmed": the shape of a real resync.
        let messages = [
            SubscribeResponse {
                kind: Some(subscribe_response::Kind::Entry(CommittedEntry {
                    log_index: from,
                    ..CommittedEntry::default()
                })),
            },
            SubscribeResponse {
                kind: Some(subscribe_response::Kind::Resync(Resync {
                    reason: resync::Reason::Trimmed.into(),
                    first_available: from + 100,
                })),
            },
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }

    async fn read_user(
        &self,
        _request: tonic::Request<martelo_proto::ReadUserRequest>,
    ) -> Result<Response<martelo_proto::ReadUserResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn list_users(
        &self,
        _request: tonic::Request<martelo_proto::ListUsersRequest>,
    ) -> Result<Response<martelo_proto::ListUsersResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}

/// A running server and the way to stop it.
struct RunningServer {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningServer {
    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task
            .await
            .expect("server task joins")
            .expect("server stops cleanly");
    }
}

async fn must_spawn_server() -> RunningServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds port 0");
    let address = listener.local_addr().expect("bound address");
    let (shutdown, shutdown_received) = oneshot::channel::<()>();
    let task = tokio::spawn(
        Server::builder()
            .add_service(client_api_server(EchoNode))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = shutdown_received.await;
            }),
    );
    RunningServer {
        address,
        shutdown: Some(shutdown),
        task,
    }
}

async fn must_connect(address: SocketAddr) -> Channel {
    endpoint(&address.to_string(), &ChannelSettings::CLIENT)
        .expect("valid address")
        .connect()
        .await
        .expect("connects over loopback")
}

fn proposal(group_id: u64, command: &'static [u8]) -> ProposeRequest {
    ProposeRequest {
        group_id,
        request_id: "req-1".to_owned(),
        auction_id: 5,
        codec_version: 1,
        attempt: 1,
        command: Some(propose_request::Command::EncodedRequest(
            Bytes::from_static(command),
        )),
        ..ProposeRequest::default()
    }
}

#[tokio::test]
async fn propose_answers_applied_on_leader_and_structured_not_leader_elsewhere() {
    let server = must_spawn_server().await;
    let mut client = client_api_client(must_connect(server.address).await);

    let response = client
        .propose(proposal(LED_GROUP, b"bid"))
        .await
        .expect("call succeeds");
    let Some(propose_response::Result::Applied(applied)) = response.into_inner().result else {
        panic!("the leader applies the command");
    };
    assert_eq!(
        (applied.log_index, applied.reply.as_ref()),
        (42, b"bid".as_slice())
    );
    assert_eq!(applied.auction_seq, 5);

    let response = client
        .propose(proposal(2, b"bid"))
        .await
        .expect("call succeeds");
    let Some(propose_response::Result::Error(error)) = response.into_inner().result else {
        panic!("a follower answers not_leader");
    };
    assert_eq!(error.code(), ErrorCode::NotLeader);
    let hint = error.leader_hint().expect("not_leader carries a hint");
    assert_eq!((hint.group_id, hint.leader_id), (2, Some(7)));
    assert_eq!(hint.leader_address, LEADER_ADDRESS);

    server.stop().await;
}

#[tokio::test]
async fn read_auction_and_subscribe_stream_until_resync() {
    let server = must_spawn_server().await;
    let mut client = client_api_client(must_connect(server.address).await);

    let read = ReadAuctionRequest {
        group_id: LED_GROUP,
        auction_id: 5,
        ..Default::default()
    };
    let response = client
        .read_auction(read)
        .await
        .expect("call succeeds")
        .into_inner();
    let Some(read_auction_response::Result::Auction(view)) = response.result else {
        panic!("expected an auction view");
    };
    assert_eq!((view.auction_id, view.seq, view.applied_index), (5, 9, 42));

    let subscribe = SubscribeRequest {
        group_id: LED_GROUP,
        from_log_index: 43,
        ..Default::default()
    };
    let mut stream = client
        .subscribe(subscribe)
        .await
        .expect("call succeeds")
        .into_inner();
    let mut received = Vec::new();
    while let Some(message) = stream.next().await {
        received.push(message.expect("stream item").kind.expect("kind is set"));
    }
    assert_eq!(
        received.len(),
        2,
        "entry, then resync, then the stream ends"
    );
    assert!(
        matches!(&received[0], subscribe_response::Kind::Entry(entry) if entry.log_index == 43)
    );
    assert!(matches!(
        &received[1],
        subscribe_response::Kind::Resync(resync) if resync.first_available == 143
    ));

    server.stop().await;
}

async fn list_page(
    client: &mut ClientApiClient<Channel>,
    after: Option<u64>,
    limit: u32,
) -> AuctionPage {
    let request = ListAuctionsRequest {
        group_id: 3,
        filter: AuctionFilter::ClosingSoon.into(),
        closing_within_us: 600,
        after_auction_id: after,
        limit,
        ..ListAuctionsRequest::default()
    };
    let response = client.list_auctions(request).await.expect("call succeeds");
    let Some(list_auctions_response::Result::Page(page)) = response.into_inner().result else {
        panic!("a page");
    };
    page
}

fn ids(page: &AuctionPage) -> Vec<u64> {
    page.auctions
        .iter()
        .map(|auction| auction.auction_id)
        .collect()
}

/// The cursor is `optional`: auction 0 is a valid cursor, distinct from "from the start",
/// and the last page carries no cursor at all.
#[tokio::test]
async fn list_auctions_pages_with_an_optional_cursor_that_can_be_zero() {
    let server = must_spawn_server().await;
    let mut client = client_api_client(must_connect(server.address).await);
    let first = list_page(&mut client, None, 4).await;
    assert_eq!(
        (ids(&first), first.next_after_auction_id),
        (vec![0, 1, 2, 3], Some(3))
    );
    assert_eq!((first.group_id, first.now_us), (3, 600));
    let after_zero = list_page(&mut client, Some(0), 2).await;
    assert_eq!(ids(&after_zero), vec![1, 2]);
    let last = list_page(&mut client, Some(7), 5).await;
    assert_eq!((ids(&last), last.next_after_auction_id), (vec![8, 9], None));
    server.stop().await;
}

#[tokio::test]
async fn oversized_proposal_is_refused_by_the_server_limit_and_server_keeps_serving() {
    let server = must_spawn_server().await;
    let channel = must_connect(server.address).await;
    // A client without martelo's limits, so the server's decoding limit is what refuses it.
    let mut unlimited = ClientApiClient::new(channel.clone());
    let oversized: &'static [u8] = vec![7u8; CLIENT_REQUEST_BYTES_MAX + 1].leak();
    let status = unlimited
        .propose(proposal(LED_GROUP, oversized))
        .await
        .expect_err("too big");
    assert_eq!(status.code(), ErrorCode::PayloadTooLarge.grpc_code());

    // martelo's own client also refuses it, but tonic 0.14 reports its client-side limit as
    // an HTTP/2 reset (`Internal`), indistinguishable from a server bug. Hence
    // `check_encoded_len`: the typed check a client runs before sending.
    let request = proposal(LED_GROUP, oversized);
    let error = check_encoded_len(&request, CLIENT_REQUEST_BYTES_MAX).expect_err("too big");
    assert_eq!(error.code(), ErrorCode::PayloadTooLarge);
    let mut limited = client_api_client(channel);
    let status = limited.propose(request).await.expect_err("too big");
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");

    let response = limited
        .propose(proposal(LED_GROUP, b"small"))
        .await
        .expect("still serving");
    assert!(matches!(
        response.into_inner().result,
        Some(propose_response::Result::Applied(_))
    ));

    server.stop().await;
}
