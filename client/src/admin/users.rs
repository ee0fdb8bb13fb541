//! The operator's meta-group actions: [`Admin::propose_meta`] (what `martelo user create`
//! and the cluster facts of `cluster init` go through) and [`Admin::record_cluster_facts`].
//!
//! The operator acts only through the admin API's `ProposeMeta`: the node wraps the action
//! in a `MetaCommand` whose actor is `MetaActor::Operator` and proposes it to group 0. The
//! attempts follow leader hints like a client proposal and reuse the request id, so a retry
//! after an unknown outcome is answered from the meta group's idempotency record.
//!
//! What does not live here: reading accounts ([`crate::Client::read_user`],
//! [`crate::Client::list_users`]), hashing passwords (the CLI).

use std::sync::Mutex;

use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{GroupId, MetaAction, Reply, RequestId};
use martelo_proto::{
    ADMIN_MESSAGE_BYTES_MAX, AdminMetaRequest, ApiError, ErrorCode, META_COMMAND_BYTES_MAX,
    check_encoded_len,
};

use super::Admin;
use crate::channels::{bounded, request_with_timeout};
use crate::client::Proposed;
use crate::client::attempts::{drive, first_initialized_status, propose_error, proposed};
use crate::decide;
use crate::error::{ClientError, ProposeError};
use crate::topology::Topology;

impl Admin {
    /// Proposes `action` to the meta group as the operator, through a node of `seeds` (the
    /// leader of group 0 is found through hints). Every attempt carries `request_id`: use
    /// the same one to retry after [`ProposeError::Unknown`]. A meta rejection (for example
    /// `username_taken`) is `Ok` with a rejected reply, as for client proposals.
    pub async fn propose_meta(
        &self,
        seeds: &[String],
        action: MetaAction,
        request_id: RequestId,
    ) -> Result<Proposed, ProposeError> {
        let message = meta_message(&action, &request_id)?;
        let (_, status) =
            first_initialized_status(&self.channels, seeds, self.options.status_timeout)
                .await
                .map_err(|error| ProposeError::NotApplied {
                    code: error.server_code(),
                    message: error.to_string(),
                })?;
        let mut topology = Topology::default();
        topology.observe_status(&status);
        let topology = Mutex::new(topology);
        let policy = self.policy(self.options.change_timeout);
        let served = drive(
            &topology,
            policy,
            "admin_propose_meta",
            GroupId::META,
            |target, timeout| {
                let channels = self.channels.clone();
                let message = message.clone();
                async move {
                    let answer = match channels.admin_api(&target.address) {
                        Ok(mut admin) => {
                            bounded(
                                timeout,
                                admin.propose_meta(request_with_timeout(message, timeout)),
                            )
                            .await
                        }
                        Err(error) => Err(error),
                    };
                    decide::classify_propose(&target.address, answer)
                }
            },
        )
        .await;
        proposed(served.map_err(propose_error)?)
    }

    /// Records the cluster's shard count in the meta group (`SetClusterFacts`), as `cluster
    /// init` does once the cluster is healthy. Idempotent: the same count is accepted again.
    /// A different count already recorded is an error (the meta group's reject code).
    pub async fn record_cluster_facts(
        &self,
        seeds: &[String],
        shard_count: u32,
    ) -> Result<(), ClientError> {
        let request_id = RequestId::try_from(format!("cluster-facts-{shard_count}"))
            .map_err(|error| ClientError::InvalidInput(error.to_string()))?;
        let action = MetaAction::SetClusterFacts { shard_count };
        let address = seeds.join(", ");
        let proposed = self
            .propose_meta(seeds, action, request_id)
            .await
            .map_err(|error| {
                let code = error.code();
                ClientError::Api {
                    address: address.clone(),
                    error: ApiError::new(
                        code,
                        format!("recording the shard count in the meta group: {error}"),
                    ),
                }
            })?;
        match proposed.reply {
            Reply::Rejected(code) => Err(ClientError::InvalidInput(format!(
                "the meta group refused to record shard count {shard_count}: {}",
                code.as_str()
            ))),
            Reply::Accepted(_) => Ok(()),
        }
    }
}

/// The `ProposeMeta` message for `action`, checked before anything is sent.
fn meta_message(
    action: &MetaAction,
    request_id: &RequestId,
) -> Result<AdminMetaRequest, ProposeError> {
    let not_applied = |code, message: String| ProposeError::NotApplied { code, message };
    let encoded = wire::encode("meta action", action, WireVersion::CURRENT)
        .map_err(|error| not_applied(ErrorCode::InvalidArgument, error.to_string()))?;
    if encoded.len() > META_COMMAND_BYTES_MAX {
        return Err(not_applied(
            ErrorCode::PayloadTooLarge,
            format!(
                "the encoded action is {} bytes, the limit is {META_COMMAND_BYTES_MAX}",
                encoded.len()
            ),
        ));
    }
    let message = AdminMetaRequest {
        request_id: request_id.as_str().to_owned(),
        encoded_action: encoded.into(),
        traceparent: String::new(),
        codec_version: WireVersion::CURRENT.codec_version(),
    };
    check_encoded_len(&message, ADMIN_MESSAGE_BYTES_MAX)
        .map_err(|error| not_applied(ErrorCode::PayloadTooLarge, error.message))?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meta_action_travels_encoded_with_its_request_id_and_codec_version() {
        let action = MetaAction::SetClusterFacts { shard_count: 4 };
        let request_id = RequestId::try_from("facts-1").unwrap();
        let message = meta_message(&action, &request_id).unwrap();
        assert_eq!(message.request_id, "facts-1");
        assert_eq!(message.codec_version, WireVersion::CURRENT.codec_version());
        let decoded = wire::decode::<MetaAction, META_COMMAND_BYTES_MAX>(
            "meta action",
            &message.encoded_action,
        );
        assert_eq!(decoded.unwrap(), action);
    }
}
