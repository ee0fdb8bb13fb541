//! [`ClientOptions`] (the limits and timeouts of a [`super::Client`]) and
//! [`ReadConsistency`] (how fresh a read must be), with their names as the CLI spells them.
//!
//! What does not live here: the retry rule that consumes the limits ([`crate::retry`]).

use std::time::Duration;

use crate::retry::RetryPolicy;

/// Limits and timeouts of a [`Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bounds one whole operation (a proposal with all its retries, a read, `connect`).
    pub deadline: Duration,
    /// Most attempts one operation makes, the first included.
    pub attempts_max: u32,
    /// The first back-off between attempts; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Bounds one TCP connect; a node that is down costs at most this per attempt.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        let retry = RetryPolicy::default();
        ClientOptions {
            deadline: retry.deadline,
            attempts_max: retry.attempts_max,
            backoff_initial: retry.backoff_initial,
            backoff_max: retry.backoff_max,
            connect_timeout: Duration::from_secs(1),
        }
    }
}

impl ClientOptions {
    /// The retry rule's limits.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            deadline: self.deadline,
            attempts_max: self.attempts_max,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
        }
    }
}

/// How fresh a read must be. See `ReadConsistency` in `client.proto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadConsistency {
    /// Reflects every command acknowledged before the read began (I8). Leader only.
    #[default]
    Linearizable,
    /// Leader lease, no quorum round trip; linearizable while clocks stay within the bound.
    Lease,
    /// Whatever the answering replica has applied, possibly stale. For operators only
    /// (`auction show` asks the first --addr node that answers).
    Local,
}

impl ReadConsistency {
    /// Every level, strongest first.
    pub const ALL: [ReadConsistency; 3] = [
        ReadConsistency::Linearizable,
        ReadConsistency::Lease,
        ReadConsistency::Local,
    ];

    /// The level's name, as the CLI and the JSON output spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadConsistency::Linearizable => "linearizable",
            ReadConsistency::Lease => "lease",
            ReadConsistency::Local => "local",
        }
    }

    pub fn to_proto(self) -> martelo_proto::ReadConsistency {
        match self {
            ReadConsistency::Linearizable => martelo_proto::ReadConsistency::Linearizable,
            ReadConsistency::Lease => martelo_proto::ReadConsistency::Lease,
            ReadConsistency::Local => martelo_proto::ReadConsistency::Local,
        }
    }
}

impl std::fmt::Display for ReadConsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ReadConsistency {
    type Err = String;

    fn from_str(text: &str) -> Result<ReadConsistency, String> {
        ReadConsistency::ALL
            .into_iter()
            .find(|level| level.as_str() == text)
            .ok_or_else(|| format!("unknown consistency {text:?}: linearizable, lease or local"))
    }
}
