//! `ReadUser` and `ListUsers`: the meta group's accounts, read by its replicas with the same
//! consistency wait as auction reads ([`super::ensure_consistency`]).
//!
//! `ReadUser` answers the account's `meta::Credentials` (summary and password hash, for the
//! gateway's login); neither read ever carries refresh-token hashes.

use martelo_engine::GroupId;
use martelo_engine::codec::wire::{self, WireVersion};
use martelo_proto::{ApiError, ErrorCode, ListUsersRequest, ReadUserRequest, UserList, UserRecord};

use super::checks::{UserLookup, check_list_users, check_read_user, trace_id};
use super::{codec_version, ensure_consistency, find_group};
use crate::node::registry::Registry;

/// Serves one `ReadUser`.
pub(super) async fn read_user(
    registry: &Registry,
    request: &ReadUserRequest,
) -> Result<UserRecord, ApiError> {
    let lookup = check_read_user(request)?;
    trace_id(&request.traceparent)?;
    let group = find_group(registry, GroupId::META.0)?;
    ensure_consistency(registry, &group, request.consistency()).await?;
    let (credentials, applied_index) = group
        .reader
        .read(|state, applied| {
            let meta = state.meta();
            let credentials = match &lookup {
                UserLookup::Id(user) => meta.credentials_by_id(*user),
                UserLookup::Username(name) => meta.credentials_by_username(name),
            };
            (credentials, applied.map_or(0, |id| id.index()))
        })
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    let record = match &credentials {
        Some(credentials) => wire::encode("user record", credentials, WireVersion::CURRENT)
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?,
        None => Vec::new(),
    };
    Ok(UserRecord {
        applied_index,
        codec_version: codec_version(),
        found: credentials.is_some(),
        record: record.into(),
    })
}

/// Serves one `ListUsers`.
pub(super) async fn list_users(
    registry: &Registry,
    request: &ListUsersRequest,
) -> Result<UserList, ApiError> {
    let query = check_list_users(request)?;
    trace_id(&request.traceparent)?;
    let group = find_group(registry, GroupId::META.0)?;
    ensure_consistency(registry, &group, request.consistency()).await?;
    let (page, applied_index) = group
        .reader
        .read(|state, applied| {
            let page = state.meta().list_users(&query);
            (page, applied.map_or(0, |id| id.index()))
        })
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    let encoded = wire::encode("user page", &page, WireVersion::CURRENT)
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    Ok(UserList {
        applied_index,
        codec_version: codec_version(),
        page: encoded.into(),
        next_after: page.next_after.map(String::from),
    })
}
