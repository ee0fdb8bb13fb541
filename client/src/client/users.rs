//! The meta group's reads: [`Client::read_user`] (one account with its password hash, for
//! the gateway's login) and [`Client::list_users`] (a page of accounts), what they return
//! ([`UserKey`], [`UserRead`]) and the decoding of the nodes' answers.
//!
//! Both go to group 0 through the same read path as auction reads (`Client::read_call`):
//! leader hints followed, transient failures retried until the deadline. Proposals to the
//! meta group are [`Client::propose_meta`], next to the auction proposals.

use martelo_engine::codec::wire::{self, WIRE_VERSION, WIRE_VERSION_OLDEST};
use martelo_engine::meta::{Credentials, UserPage, UserQuery};
use martelo_engine::{GroupId, UserId};
use martelo_proto::{
    LIST_USERS_LIMIT_MAX, ListUsersRequest, ReadUserRequest, USER_KEY_BYTES_MAX,
    USER_PAGE_BYTES_MAX, USER_RECORD_BYTES_MAX, read_user_request,
};

use super::{Client, ReadConsistency};
use crate::decide;
use crate::error::ClientError;
use crate::telemetry;
use crate::topology::Target;

/// Which account [`Client::read_user`] reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserKey {
    /// By user id.
    Id(UserId),
    /// By username, as typed: the node folds it like a username (case-insensitive).
    Username(String),
}

/// One account read from the meta group, or its absence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRead {
    /// The account's summary and password hash; `None` when no account has the key.
    pub credentials: Option<Credentials>,
    /// The replica's applied index when it was read.
    pub applied_index: u64,
}

impl Client {
    /// Reads one account of the meta group, with its password hash (the gateway verifies a
    /// login with it; never log it). `Linearizable` (the default) reflects every meta
    /// command acknowledged before the read began, so a user who just registered is found.
    pub async fn read_user(
        &self,
        key: UserKey,
        consistency: ReadConsistency,
    ) -> Result<UserRead, ClientError> {
        let key = match key {
            UserKey::Id(user) => read_user_request::Key::UserId(user.0),
            UserKey::Username(name) if name.len() > USER_KEY_BYTES_MAX => {
                return Err(ClientError::InvalidInput(format!(
                    "a username is at most {USER_KEY_BYTES_MAX} bytes, got {}",
                    name.len()
                )));
            }
            UserKey::Username(name) => read_user_request::Key::Username(name),
        };
        let message = ReadUserRequest {
            key: Some(key),
            consistency: consistency.to_proto().into(),
            traceparent: String::new(),
        };
        let served = self
            .read_call(
                "read_user",
                GroupId::META,
                consistency,
                message,
                |mut client, request| async move { client.read_user(request).await },
                decide::classify_read_user,
            )
            .await;
        let result = served.and_then(|served| decode_user(&served.target, served.value));
        telemetry::outcome(
            "read_user",
            match &result {
                Ok(_) => "ok",
                Err(error) => error.code().as_str(),
            },
        );
        result
    }

    /// One page of the meta group's accounts in username order: those whose username starts
    /// with `query.prefix`, after `query.after`, at most `query.limit` (1 to the engine's
    /// `USER_PAGE_MAX`, 200). Summaries only: no password or token hashes. Follows leader
    /// hints and retries transient failures like [`Client::read_user`].
    pub async fn list_users(
        &self,
        query: &UserQuery,
        consistency: ReadConsistency,
    ) -> Result<UserPage, ClientError> {
        if !(1..=LIST_USERS_LIMIT_MAX).contains(&query.limit) {
            return Err(ClientError::InvalidInput(format!(
                "a page lists 1 to {LIST_USERS_LIMIT_MAX} users, not {}",
                query.limit
            )));
        }
        if query.prefix.len() > USER_KEY_BYTES_MAX {
            return Err(ClientError::InvalidInput(format!(
                "a username prefix is at most {USER_KEY_BYTES_MAX} bytes, got {}",
                query.prefix.len()
            )));
        }
        let message = ListUsersRequest {
            prefix: query.prefix.clone(),
            after: query.after.as_ref().map(|after| after.as_str().to_owned()),
            // At most LIST_USERS_LIMIT_MAX, checked above.
            limit: u32::try_from(query.limit).unwrap_or(u32::MAX),
            consistency: consistency.to_proto().into(),
            traceparent: String::new(),
        };
        let served = self
            .read_call(
                "list_users",
                GroupId::META,
                consistency,
                message,
                |mut client, request| async move { client.list_users(request).await },
                decide::classify_list_users,
            )
            .await;
        let result = served.and_then(|served| decode_users(&served.target, served.value));
        telemetry::outcome(
            "list_users",
            match &result {
                Ok(_) => "ok",
                Err(error) => error.code().as_str(),
            },
        );
        result
    }
}

fn check_version(target: &Target, what: &'static str, version: u32) -> Result<(), ClientError> {
    if wire::can_read(version) {
        return Ok(());
    }
    Err(ClientError::Decode {
        address: target.address.clone(),
        what,
        reason: format!(
            "codec version {version} (this client reads {WIRE_VERSION_OLDEST} to {WIRE_VERSION})"
        ),
    })
}

pub(crate) fn decode_user(
    target: &Target,
    record: martelo_proto::UserRecord,
) -> Result<UserRead, ClientError> {
    check_version(target, "user record", record.codec_version)?;
    let credentials = if record.found {
        let decoded =
            wire::decode::<Credentials, USER_RECORD_BYTES_MAX>("user record", &record.record)
                .map_err(|error| ClientError::Decode {
                    address: target.address.clone(),
                    what: "user record",
                    reason: error.to_string(),
                })?;
        Some(decoded)
    } else {
        None
    };
    Ok(UserRead {
        credentials,
        applied_index: record.applied_index,
    })
}

pub(crate) fn decode_users(
    target: &Target,
    list: martelo_proto::UserList,
) -> Result<UserPage, ClientError> {
    check_version(target, "user page", list.codec_version)?;
    wire::decode::<UserPage, USER_PAGE_BYTES_MAX>("user page", &list.page).map_err(|error| {
        ClientError::Decode {
            address: target.address.clone(),
            what: "user page",
            reason: error.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use martelo_engine::codec::wire::WireVersion;
    use martelo_engine::meta::{AccountStatus, DisplayName, PasswordHash, UserSummary, Username};
    use martelo_engine::{Role, Timestamp};
    use martelo_types::NodeId;
    use prost::bytes::Bytes;

    use super::*;

    fn target() -> Target {
        Target {
            node_id: NodeId(1),
            address: "127.0.0.1:7001".to_owned(),
        }
    }

    fn credentials() -> Credentials {
        Credentials {
            summary: UserSummary {
                id: UserId(3),
                username: Username::fold("ana").unwrap(),
                display_name: DisplayName::try_from("Ana").unwrap(),
                roles: [Role::Bidder].into_iter().collect(),
                status: AccountStatus::Active,
                created_at: Timestamp(5),
            },
            password_hash: PasswordHash::try_from("$argon2id$v=19$abc").unwrap(),
        }
    }

    #[test]
    fn a_found_record_decodes_into_credentials_and_a_missing_one_into_none() {
        let encoded = wire::encode("user record", &credentials(), WireVersion::CURRENT).unwrap();
        let found = martelo_proto::UserRecord {
            applied_index: 9,
            codec_version: WireVersion::CURRENT.codec_version(),
            found: true,
            record: Bytes::from(encoded),
        };
        let read = decode_user(&target(), found).unwrap();
        assert_eq!(read.credentials, Some(credentials()));
        assert_eq!(read.applied_index, 9);
        let missing = martelo_proto::UserRecord {
            applied_index: 10,
            codec_version: WireVersion::CURRENT.codec_version(),
            found: false,
            record: Bytes::new(),
        };
        assert_eq!(decode_user(&target(), missing).unwrap().credentials, None);
        let future = martelo_proto::UserRecord {
            codec_version: 99,
            ..martelo_proto::UserRecord::default()
        };
        let error = decode_user(&target(), future).unwrap_err();
        assert_eq!(error.code().as_str(), "decode");
    }

    #[test]
    fn a_user_page_decodes_with_its_cursor() {
        let page = UserPage {
            users: vec![credentials().summary],
            next_after: Some(Username::fold("ana").unwrap()),
        };
        let encoded = wire::encode("user page", &page, WireVersion::CURRENT).unwrap();
        let list = martelo_proto::UserList {
            applied_index: 4,
            codec_version: WireVersion::CURRENT.codec_version(),
            page: Bytes::from(encoded),
            next_after: Some("ana".to_owned()),
        };
        assert_eq!(decode_users(&target(), list).unwrap(), page);
    }
}
