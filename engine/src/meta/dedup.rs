//! Idempotency records of meta commands (invariant I2 for group 0).
//!
//! The rule is the auction engine's (`state.rs`, docs/ENGINE.md "Idempotency"): a request is
//! keyed by `(actor, 128-bit XXH3 of the request id)`; a retry with the same payload gets
//! the stored first reply (`replayed: true`, no events, no change); the same key with another
//! payload gets `request_id_reused`; rejections are recorded too; `request_id_reused` and
//! `request_limit_reached` are not. Records are kept `REQUEST_RETENTION` (24 h of cluster
//! time), like the engine's group-level records, and at most `requests_max` at once.
//!
//! The engine's record types are private to `state.rs` and keyed by an auction actor; these
//! mirror them for a [`MetaActor`] key. The payload fingerprint is the same 128-bit digest of
//! the action's canonical encoding ([`crate::digest`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::limits;
use crate::meta::command::{MetaAction, MetaActor};
use crate::meta::outcome::MetaRejectCode;
use crate::outcome::{Outcome, RejectCode, Reply};
use crate::state::InvariantViolation;
use crate::types::{RequestId, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct RequestKey {
    actor: MetaActor,
    request_hash: u128,
}

impl RequestKey {
    pub(super) fn of(actor: MetaActor, request_id: &RequestId) -> RequestKey {
        let request_hash = xxhash_rust::xxh3::xxh3_128(request_id.as_str().as_bytes());
        RequestKey {
            actor,
            request_hash,
        }
    }
}

/// A digest of what a request asked for, to tell a retry from a reuse of its request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Fingerprint([u8; 16]);

impl Fingerprint {
    pub(super) fn of(action: &MetaAction) -> Fingerprint {
        let digest = crate::digest::of(action);
        let mut short = [0u8; 16];
        short.copy_from_slice(&digest[..16]);
        Fingerprint(short)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RequestRecord {
    fingerprint: Fingerprint,
    reply: Reply,
    expires_at: Timestamp,
}

/// The records and their expiry index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Requests {
    records: BTreeMap<RequestKey, RequestRecord>,
    expiry: BTreeSet<(Timestamp, RequestKey)>,
}

impl Requests {
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// The answer to a request whose key was seen before, or `None` for a new request.
    pub(super) fn answer_repeat(&self, key: &RequestKey, print: Fingerprint) -> Option<Outcome> {
        let record = self.records.get(key)?;
        if record.fingerprint == print {
            return Some(Outcome {
                reply: record.reply.clone(),
                events: Vec::new(),
                replayed: true,
            });
        }
        Some(unrecorded(MetaRejectCode::RequestIdReused))
    }

    pub(super) fn record(
        &mut self,
        now: Timestamp,
        key: RequestKey,
        print: Fingerprint,
        reply: Reply,
    ) {
        let expires_at = now.plus(limits::REQUEST_RETENTION);
        let record = RequestRecord {
            fingerprint: print,
            reply,
            expires_at,
        };
        let previous = self.records.insert(key, record);
        assert!(previous.is_none(), "a request key is recorded once");
        self.expiry.insert((expires_at, key));
    }

    /// Drops the records whose retention has run out at `now`.
    pub(super) fn expire(&mut self, now: Timestamp) {
        while let Some(&(at, key)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            self.records.remove(&key);
        }
    }

    pub(super) fn validate(&self) -> Result<(), InvariantViolation> {
        let indexed: BTreeSet<(Timestamp, RequestKey)> = self
            .records
            .iter()
            .map(|(key, record)| (record.expires_at, *key))
            .collect();
        if indexed != self.expiry {
            return Err(InvariantViolation(
                "meta request expiry index does not match the records".into(),
            ));
        }
        Ok(())
    }
}

/// A rejection that is not recorded: nothing was applied, so a retry is judged afresh.
pub(super) fn unrecorded(code: MetaRejectCode) -> Outcome {
    Outcome {
        reply: Reply::Rejected(RejectCode::Meta(code)),
        events: Vec::new(),
        replayed: false,
    }
}
