//! The fake node's client service: proposals answered as scripted, listings served from
//! its auction ids, and a subscription of one entry followed by a resync.

use std::pin::Pin;

use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{Event, Request, Timestamp, UserId};
use martelo_proto::client_api_server::ClientApi;
use martelo_proto::{
    ApiError, Applied, AuctionPage, CommittedEntry, ErrorCode, EventEnvelope, ListAuctionsRequest,
    ListAuctionsResponse, ListUsersRequest, ListUsersResponse, NotLeader, ProposeRequest,
    ProposeResponse, ReadAuctionRequest, ReadAuctionResponse, ReadUserRequest, ReadUserResponse,
    Resync, SubscribeRequest, SubscribeResponse, list_auctions_response, propose_request,
    propose_response, resync, subscribe_response,
};
use prost::bytes::Bytes;
use tokio_stream::Stream;
use tonic::{Response, Status};

use super::{FakeNode, Propose, reply_bytes, summary};

#[tonic::async_trait]
impl ClientApi for FakeNode {
    async fn propose(
        &self,
        request: tonic::Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        let request = request.into_inner();
        self.record(format!(
            "propose {} {}",
            request.group_id, request.request_id
        ));
        let behaviour = self.state().propose.clone();
        let result = match behaviour {
            Propose::Apply => {
                let Some(propose_request::Command::EncodedRequest(bytes)) = request.command else {
                    return Err(Status::invalid_argument("no command"));
                };
                wire::decode::<Request, { martelo_proto::PROPOSAL_COMMAND_BYTES_MAX }>(
                    "request", &bytes,
                )
                .expect("the client encodes requests");
                propose_response::Result::Applied(Applied {
                    log_index: 10,
                    log_term: 7,
                    timestamp_us: 1_000,
                    reply: reply_bytes(),
                    replayed: false,
                    accepted: true,
                    reject_code: String::new(),
                    auction_seq: 2,
                    decided_without_log: false,
                })
            }
            Propose::Redirect { leader, address } => {
                propose_response::Result::Error(ApiError::not_leader(NotLeader {
                    group_id: request.group_id,
                    leader_id: Some(leader),
                    leader_address: address,
                    term: 7,
                }))
            }
            Propose::Stall(delay) => {
                tokio::time::sleep(delay).await;
                propose_response::Result::Error(ApiError::new(ErrorCode::UnknownOutcome, "late"))
            }
        };
        Ok(Response::new(ProposeResponse {
            result: Some(result),
        }))
    }

    async fn read_auction(
        &self,
        _request: tonic::Request<ReadAuctionRequest>,
    ) -> Result<Response<ReadAuctionResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn read_user(
        &self,
        _request: tonic::Request<ReadUserRequest>,
    ) -> Result<Response<ReadUserResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn list_users(
        &self,
        _request: tonic::Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    /// Serves `auctions` as a leader (ids in order, `limit` at a time); `not_leader` naming
    /// node 1 elsewhere.
    async fn list_auctions(
        &self,
        request: tonic::Request<ListAuctionsRequest>,
    ) -> Result<Response<ListAuctionsResponse>, Status> {
        let request = request.into_inner();
        self.record(format!(
            "list {} after={:?} limit={}",
            request.group_id, request.after_auction_id, request.limit
        ));
        if !self.state().leads {
            let error = self.not_leader(request.group_id);
            return Ok(Response::new(ListAuctionsResponse {
                result: Some(list_auctions_response::Result::Error(error)),
            }));
        }
        let ids = self
            .state()
            .auctions
            .get(&request.group_id)
            .cloned()
            .unwrap_or_default();
        let after = |id: &u64| request.after_auction_id.is_none_or(|after| *id > after);
        let remaining: Vec<u64> = ids.into_iter().filter(after).collect();
        let page: Vec<u64> = remaining
            .iter()
            .copied()
            .take(request.limit as usize)
            .collect();
        let next = (remaining.len() > page.len()).then(|| *page.last().unwrap());
        let auctions = page
            .iter()
            .map(|&id| martelo_proto::AuctionSummary {
                auction_id: id,
                seq: 1,
                summary: Bytes::from(
                    wire::encode("summary", &summary(id), WireVersion::CURRENT).unwrap(),
                ),
            })
            .collect();
        Ok(Response::new(ListAuctionsResponse {
            result: Some(list_auctions_response::Result::Page(AuctionPage {
                group_id: request.group_id,
                auctions,
                next_after_auction_id: next,
                applied_index: 10,
                now_us: 50,
                codec_version: WireVersion::CURRENT.codec_version(),
            })),
        }))
    }

    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send + 'static>>;

    async fn subscribe(
        &self,
        request: tonic::Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        // A stream must not carry a `grpc-timeout`: the server would end it when it passes.
        let timeout = request.metadata().contains_key("grpc-timeout");
        let from = request.into_inner().from_log_index;
        self.record(format!("subscribe {from} timeout={timeout}"));
        let event = Event::BidderReinstated {
            user: UserId(4),
            at: Timestamp(5),
        };
        let messages = vec![
            SubscribeResponse {
                kind: Some(subscribe_response::Kind::Entry(CommittedEntry {
                    log_index: from,
                    log_term: 7,
                    timestamp_us: 5,
                    codec_version: WireVersion::CURRENT.codec_version(),
                    traceparent: String::new(),
                    events: vec![EventEnvelope {
                        auction_id: 0,
                        seq: 0,
                        event: Bytes::from(
                            wire::encode("event", &event, WireVersion::CURRENT).unwrap(),
                        ),
                    }],
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
}
