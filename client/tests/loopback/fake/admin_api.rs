//! The fake node's admin service: its scripted status, and membership changes that succeed
//! where it leads and answer `not_leader` (or `quorum_at_risk`) elsewhere.

use martelo_proto::admin_api_server::AdminApi;
use martelo_proto::{
    AddLearnerRequest, AdminMetaRequest, AdminTransferLeaderRequest, AdminTransferLeaderResponse,
    ApiError, ErrorCode, GroupPlacement, InitClusterRequest, InitClusterResponse,
    MembershipResponse, OpenGroupRequest, OpenGroupResponse, PromoteVoterRequest, ProposeResponse,
    RemoveNodeRequest, ShowAuctionRequest, ShowAuctionResponse, StatusRequest, StatusResponse,
    TriggerSnapshotRequest, TriggerSnapshotResponse, membership_response, open_group_response,
};
use tonic::{Response, Status};

use super::FakeNode;

#[tonic::async_trait]
impl AdminApi for FakeNode {
    async fn status(
        &self,
        _request: tonic::Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.state().status.clone()))
    }

    async fn init_cluster(
        &self,
        _request: tonic::Request<InitClusterRequest>,
    ) -> Result<Response<InitClusterResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn add_learner(
        &self,
        request: tonic::Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let request = request.into_inner();
        let id = self.state().id;
        self.record(format!("add_learner {} at {id}", request.group_id));
        Ok(Response::new(self.membership(request.group_id, vec![1, 2])))
    }

    async fn promote_voter(
        &self,
        request: tonic::Request<PromoteVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let request = request.into_inner();
        let id = self.state().id;
        self.record(format!("promote_voter {} at {id}", request.group_id));
        Ok(Response::new(
            self.membership(request.group_id, vec![1, 2, request.node_id]),
        ))
    }

    async fn remove_node(
        &self,
        request: tonic::Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let request = request.into_inner();
        self.record(format!(
            "remove_node {} force={}",
            request.group_id, request.force
        ));
        let guard = self.state().guard_quorum;
        if guard && !request.force {
            let error = ApiError::new(
                ErrorCode::QuorumAtRisk,
                format!(
                    "removing node {} leaves 1 healthy voter of 2",
                    request.node_id
                ),
            );
            return Ok(Response::new(MembershipResponse {
                result: Some(membership_response::Result::Error(error)),
            }));
        }
        Ok(Response::new(self.membership(request.group_id, vec![1])))
    }

    async fn transfer_leader(
        &self,
        _request: tonic::Request<AdminTransferLeaderRequest>,
    ) -> Result<Response<AdminTransferLeaderResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn trigger_snapshot(
        &self,
        _request: tonic::Request<TriggerSnapshotRequest>,
    ) -> Result<Response<TriggerSnapshotResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn show_auction(
        &self,
        _request: tonic::Request<ShowAuctionRequest>,
    ) -> Result<Response<ShowAuctionResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn open_group(
        &self,
        request: tonic::Request<OpenGroupRequest>,
    ) -> Result<Response<OpenGroupResponse>, Status> {
        let request = request.into_inner();
        let id = self.state().id;
        self.record(format!(
            "open_group {} shards={} voters={} at {id}",
            request.group_id,
            request.shard_count,
            request.voters.len()
        ));
        Ok(Response::new(OpenGroupResponse {
            result: Some(open_group_response::Result::Opened(GroupPlacement {
                group_id: request.group_id,
                voters: Vec::new(),
            })),
        }))
    }

    async fn propose_meta(
        &self,
        _request: tonic::Request<AdminMetaRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}
