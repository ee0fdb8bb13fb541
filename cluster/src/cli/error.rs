//! Why an admin command failed ([`CliError`]), and the exit code the `martelo` binary ends
//! with:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (also when there was nothing to do: membership commands are idempotent) |
//! | 1 | the operation failed (the message says why and what to do) |
//! | 2 | usage error: a bad flag or value; nothing was sent (clap's own code too) |
//! | 3 | no martelo node could be reached at the given addresses |
//! | 4 | the cluster is not initialized |
//! | 5 | the operation finished only in part (some groups failed, or a transfer did not take) |
//! | 6 | `status`: some group has no healthy leader and takes no writes |
//! | 7 | `status`: every group takes writes, but some have lost redundancy (degraded) |
//!
//! [`EXIT_CODES`] is this table as data; a test here holds docs/OPERATIONS.md to it.
//!
//! What does not live here: the messages of the client's errors (`martelo_client::error`),
//! and the decision whether a membership report counts as done, failed or done in part
//! ([`super::membership`]).

use martelo_client::error::{ClientError, ClientErrorCode};

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Part of the work was done; the message says what is left and how to finish.
    #[error("{0}")]
    Incomplete(String),
    /// Nothing was done; the message says why.
    #[error("{0}")]
    Failed(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// `status` found a group without a healthy leader; the output above says which.
    #[error("the cluster is unavailable: {0}")]
    Unhealthy(String),
    /// `status` found every group writable, but some with less redundancy than configured.
    #[error("the cluster is degraded: {0}")]
    Degraded(String),
}

/// The CLI's exit codes and what each means (see the module docs).
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "done"),
    (1, "failed"),
    (2, "usage error"),
    (3, "no node reachable"),
    (4, "cluster not initialized"),
    (5, "done only in part"),
    (6, "unavailable"),
    (7, "degraded"),
];

impl CliError {
    /// The process exit code (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Client(error) => match error.code() {
                ClientErrorCode::Unreachable
                | ClientErrorCode::NotMartelo
                | ClientErrorCode::ConnectionClosed => 3,
                ClientErrorCode::Server(martelo_proto::ErrorCode::ClusterNotInitialized) => 4,
                ClientErrorCode::InvalidInput => 2,
                _ => 1,
            },
            CliError::Incomplete(_) => 5,
            CliError::Failed(_) | CliError::Output(_) => 1,
            CliError::Unhealthy(_) => 6,
            CliError::Degraded(_) => 7,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::tests::TestCli;

    #[test]
    fn exit_codes_tell_unreachable_and_uninitialized_apart() {
        let unreachable = CliError::Client(ClientError::Unreachable {
            address: "a:1".into(),
            reason: "refused".into(),
        });
        assert_eq!(unreachable.exit_code(), 3);
        let fresh = CliError::Client(ClientError::ClusterNotInitialized {
            address: "a:1".into(),
        });
        assert_eq!(fresh.exit_code(), 4);
        assert_eq!(CliError::Incomplete("x".into()).exit_code(), 5);
        assert_eq!(CliError::Unhealthy("x".into()).exit_code(), 6);
        assert_eq!(CliError::Degraded("x".into()).exit_code(), 7);
        assert_eq!(CliError::Failed("x".into()).exit_code(), 1);
        let usage = CliError::Client(ClientError::InvalidInput("x".into()));
        assert_eq!(usage.exit_code(), 2);
        let wrong = CliError::Client(ClientError::NotMartelo {
            address: "a:1".into(),
            detail: "x".into(),
        });
        assert_eq!(wrong.exit_code(), 3);
    }

    /// docs/OPERATIONS.md's exit-code table, as `(code, meaning)` rows.
    fn documented_exit_codes() -> Vec<(i32, String)> {
        let doc = include_str!("../../../docs/OPERATIONS.md");
        let start = doc
            .find("<!-- exit-codes -->")
            .expect("OPERATIONS.md marks its exit-code table");
        doc[start..]
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse().ok()?;
                Some((code, cells.get(2)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_documented_exit_codes_are_the_codes_of_the_binary() {
        let documented = documented_exit_codes();
        let codes: Vec<i32> = documented.iter().map(|(code, _)| *code).collect();
        let ours: Vec<i32> = EXIT_CODES.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, ours, "OPERATIONS.md's table lists other codes");
        for ((_, meaning), (code, name)) in documented.iter().zip(EXIT_CODES) {
            assert!(
                meaning.to_lowercase().contains(name),
                "OPERATIONS.md says {code} means {meaning:?}, the code says {name:?}"
            );
        }
        // Every error the CLI can end with maps to a documented code.
        let errors = [
            CliError::Client(ClientError::InvalidInput("x".into())),
            CliError::Client(ClientError::Unreachable {
                address: "a".into(),
                reason: "x".into(),
            }),
            CliError::Client(ClientError::ClusterNotInitialized {
                address: "a".into(),
            }),
            CliError::Incomplete("x".into()),
            CliError::Failed("x".into()),
            CliError::Unhealthy("x".into()),
            CliError::Degraded("x".into()),
            CliError::Output(std::io::Error::other("x")),
        ];
        for error in errors {
            assert!(ours.contains(&error.exit_code()), "{error:?}");
        }
        // clap's usage code is the documented 2.
        let usage = TestCli::try_parse_from(["martelo", "node", "remove", "--id", "0"])
            .expect_err("id 0 is refused");
        assert_eq!(usage.exit_code(), 2);
    }
}
