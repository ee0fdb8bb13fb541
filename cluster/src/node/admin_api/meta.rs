//! `ProposeMeta`: the operator's actions on the meta group (`martelo user create`, the
//! cluster facts `cluster init` records).
//!
//! The node wraps the action in a `MetaCommand` whose actor is `MetaActor::Operator`, the
//! one actor the client API refuses, and proposes it to group 0 through the same proposer
//! and answer path as a client proposal (`client_api::propose_command`). Only the meta
//! group's leader proposes; another node answers `not_leader` with the leader's address, as
//! for the node-id retirement that `RemoveNode` records (`membership.rs`).

use std::time::Duration;

use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{Command, GroupId, MetaAction, MetaActor, MetaCommand, RequestId};
use martelo_proto::{AdminMetaRequest, ApiError, Applied, ErrorCode, META_COMMAND_BYTES_MAX};

use super::AdminApiService;
use tracing::Instrument as _;

use crate::node::client_api::propose_command;
use crate::node::metric_names::ADMIN_API_REQUESTS_TOTAL;

impl AdminApiService {
    /// Serves one `ProposeMeta` within `wait`.
    pub(super) async fn propose_meta(
        &self,
        request: AdminMetaRequest,
        wait: Duration,
    ) -> Result<Applied, ApiError> {
        let (version, command) = check_meta_request(&request)?;
        let traceparent = if request.traceparent.is_empty() {
            None
        } else {
            martelo_proto::Traceparent::try_from(request.traceparent.as_str())
                .map_err(|error| invalid(format!("traceparent is malformed: {error}")))?;
            Some(request.traceparent.clone())
        };
        let group = self.leader_group(GroupId::META.0)?;
        let span = tracing::info_span!("propose_meta", request_id = %request.request_id);
        propose_command(&self.registry, &group, command, traceparent, version, wait)
            .instrument(span)
            .await
    }
}

/// Checks a `ProposeMeta` request and wraps its action in the operator's command: the codec
/// version must carry meta types, the action must decode within its limit, and the request
/// id must be valid.
pub fn check_meta_request(request: &AdminMetaRequest) -> Result<(WireVersion, Command), ApiError> {
    let version = WireVersion::from_codec_version(request.codec_version)
        .filter(|version| *version >= WireVersion::META_OLDEST)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedCodec,
                format!(
                    "codec version {} is not one this node reads meta actions in ({} to {})",
                    request.codec_version,
                    WireVersion::META_OLDEST.codec_version(),
                    wire::WIRE_VERSION
                ),
            )
        })?;
    let request_id = RequestId::try_from(request.request_id.as_str())
        .map_err(|error| invalid(format!("request_id is not valid: {error}")))?;
    let action =
        wire::decode::<MetaAction, META_COMMAND_BYTES_MAX>("meta action", &request.encoded_action)
            .map_err(|error| {
                let message = format!("the meta action cannot be decoded: {error}");
                if error.is_too_large() {
                    ApiError::new(ErrorCode::PayloadTooLarge, message).with_group(GroupId::META.0)
                } else {
                    invalid(message)
                }
            })?;
    let command = Command::Meta(MetaCommand {
        actor: MetaActor::Operator,
        request_id,
        action,
    });
    Ok((version, command))
}

/// Counts one `ProposeMeta` by result.
pub(super) fn count(result: &Result<Applied, ApiError>) {
    let label = match result {
        Ok(_) => "applied",
        Err(error) => error.code().as_code_str(),
    };
    metrics::counter!(ADMIN_API_REQUESTS_TOTAL, "rpc" => "propose_meta", "result" => label)
        .increment(1);
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, message).with_group(GroupId::META.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(action: &MetaAction, request_id: &str, version: WireVersion) -> AdminMetaRequest {
        AdminMetaRequest {
            request_id: request_id.to_owned(),
            encoded_action: wire::encode("meta action", action, version)
                .expect("encodes")
                .into(),
            traceparent: String::new(),
            codec_version: version.codec_version(),
        }
    }

    #[test]
    fn an_operator_action_is_wrapped_in_a_meta_command_acting_as_the_operator() {
        let action = MetaAction::SetClusterFacts { shard_count: 8 };
        let (version, command) =
            check_meta_request(&request(&action, "facts-8", WireVersion::CURRENT)).expect("ok");
        assert_eq!(version, WireVersion::CURRENT);
        let Command::Meta(command) = command else {
            panic!("a meta command");
        };
        assert_eq!(command.actor, MetaActor::Operator);
        assert_eq!(command.request_id.as_str(), "facts-8");
        assert_eq!(command.action, action);
        assert!(Command::Meta(command).belongs_to(GroupId::META));
    }

    #[test]
    fn a_bad_operator_request_gets_a_stable_code() {
        let action = MetaAction::SetClusterFacts { shard_count: 8 };
        let code = |request: AdminMetaRequest| check_meta_request(&request).unwrap_err().code();
        let mut old = request(&action, "r", WireVersion::OLDEST);
        assert_eq!(code(old.clone()), ErrorCode::UnsupportedCodec);
        old.codec_version = 99;
        assert_eq!(code(old), ErrorCode::UnsupportedCodec);
        assert_eq!(
            code(request(&action, "", WireVersion::CURRENT)),
            ErrorCode::InvalidArgument
        );
        let mut garbage = request(&action, "r", WireVersion::CURRENT);
        garbage.encoded_action = vec![2, 0xff, 0xff].into();
        assert_eq!(code(garbage), ErrorCode::InvalidArgument);
    }
}
