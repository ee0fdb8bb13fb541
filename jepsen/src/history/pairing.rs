//! Turning records into operations: [`pair`] matches every invoke with its completion and
//! checks that the two agree, and [`count`] tallies the outcomes per function.

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::{
    AuctionId, AuctionView, BidRequest, CloseOutcome, ERROR_NOTE_BYTES_MAX, EventType, Function,
    REQUEST_ID_BYTES_MAX, Record, Terms, Value,
};

/// A history that parses but does not make sense as invoke/completion pairs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("line {line}: {event:?} from process {process}, which has no operation pending")]
    CompletionWithoutInvoke {
        line: u64,
        process: u64,
        event: EventType,
    },
    #[error("line {line}: process {process} invokes while its line {pending_line} is pending")]
    ProcessAlreadyPending {
        line: u64,
        process: u64,
        pending_line: u64,
    },
    #[error("line {line}: completion's {field} differs from its invoke on line {invoke_line}")]
    CompletionMismatch {
        line: u64,
        invoke_line: u64,
        field: &'static str,
    },
    #[error("line {line}: {event:?} {f:?} cannot carry value {value:?}")]
    BadValue {
        line: u64,
        event: EventType,
        f: Function,
        value: Option<Value>,
    },
    #[error("line {line}: completed at {completed_ns} ns, before its invoke at {invoked_ns} ns")]
    CompletedBeforeInvoke {
        line: u64,
        invoked_ns: u64,
        completed_ns: u64,
    },
    #[error("line {line}: request id is empty or longer than {REQUEST_ID_BYTES_MAX} bytes")]
    BadRequestId { line: u64 },
    #[error("line {line}: error note longer than {ERROR_NOTE_BYTES_MAX} bytes")]
    ErrorNoteTooLong { line: u64 },
}

/// What an operation asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    CreateAuction(Terms),
    Bid(BidRequest),
    Read,
    Close,
}

/// What an operation returned, when it returned `ok`. The model produces the same type, so
/// checking an operation is an equality test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Created,
    AlreadyExists,
    Bid { accepted: bool },
    State(AuctionView),
    Closed { outcome: CloseOutcome },
    NotFound,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    Ok(Output),
    /// Definitely did not take effect.
    Fail,
    /// May or may not have taken effect; includes invokes that never completed.
    Info,
}

/// An invoke paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Operation {
    pub process: u64,
    pub auction: AuctionId,
    pub request: String,
    pub call: Call,
    pub completion: Completion,
    /// Record index of the invoke (its line is this plus one).
    pub invoke_index: u64,
    pub completion_index: Option<u64>,
    pub invoke_ns: u64,
    /// `None` for `info`: the operation may take effect at any later time.
    pub complete_ns: Option<u64>,
}

impl Operation {
    pub fn is_ok(&self) -> bool {
        matches!(self.completion, Completion::Ok(_))
    }

    /// The bid, when this operation is a bid.
    pub fn bid(&self) -> Option<BidRequest> {
        match self.call {
            Call::Bid(bid) => Some(bid),
            _ => None,
        }
    }

    /// `Some(accepted)` for a bid that completed `ok`.
    pub fn bid_accepted(&self) -> Option<bool> {
        match self.completion {
            Completion::Ok(Output::Bid { accepted }) => Some(accepted),
            _ => None,
        }
    }
}

impl Call {
    pub fn function(&self) -> Function {
        match self {
            Call::CreateAuction(_) => Function::CreateAuction,
            Call::Bid(_) => Function::Bid,
            Call::Read => Function::Read,
            Call::Close => Function::Close,
        }
    }
}

/// How many operations ended each way; the run summary reports these per function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

/// Counts operations by function and completion.
pub fn count(operations: &[Operation]) -> BTreeMap<Function, Counts> {
    let mut counts: BTreeMap<Function, Counts> = BTreeMap::new();
    for operation in operations {
        let entry = counts.entry(operation.call.function()).or_default();
        match operation.completion {
            Completion::Ok(_) => entry.ok += 1,
            Completion::Fail => entry.fail += 1,
            Completion::Info => entry.info += 1,
        }
    }
    counts
}

fn call_of(record: &Record) -> Option<Call> {
    match (record.f, record.value) {
        (Function::CreateAuction, Some(Value::Terms(terms))) => Some(Call::CreateAuction(terms)),
        (Function::Bid, Some(Value::Bid(bid))) => Some(Call::Bid(bid)),
        (Function::Read, None) => Some(Call::Read),
        (Function::Close, None) => Some(Call::Close),
        _ => None,
    }
}

fn output_of(f: Function, value: Option<Value>) -> Option<Output> {
    match (f, value) {
        (Function::CreateAuction, None) => Some(Output::Created),
        (Function::CreateAuction, Some(Value::AlreadyExists)) => Some(Output::AlreadyExists),
        (Function::Bid, Some(Value::BidReply { accepted })) => Some(Output::Bid { accepted }),
        (Function::Read, Some(Value::State(view))) => Some(Output::State(view)),
        (Function::Close, Some(Value::Closed { outcome })) => Some(Output::Closed { outcome }),
        (Function::Read | Function::Close, Some(Value::NotFound)) => Some(Output::NotFound),
        _ => None,
    }
}

/// Pairs every invoke with its completion, in invoke order. Invokes left without a
/// completion at the end of the history become `info`.
pub fn pair(records: &[Record]) -> Result<Vec<Operation>, PairError> {
    let mut operations: Vec<Operation> = Vec::with_capacity(records.len() / 2 + 1);
    // process -> position in `operations` of its pending invoke.
    let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
    for record in records {
        let line = record.index + 1;
        if record.request.is_empty() || record.request.len() > REQUEST_ID_BYTES_MAX {
            return Err(PairError::BadRequestId { line });
        }
        if record
            .error
            .as_ref()
            .is_some_and(|note| note.len() > ERROR_NOTE_BYTES_MAX)
        {
            return Err(PairError::ErrorNoteTooLong { line });
        }
        let bad_value = || PairError::BadValue {
            line,
            event: record.event,
            f: record.f,
            value: record.value,
        };
        if record.event == EventType::Invoke {
            if let Some(&position) = pending.get(&record.process) {
                return Err(PairError::ProcessAlreadyPending {
                    line,
                    process: record.process,
                    pending_line: operations[position].invoke_index + 1,
                });
            }
            let call = call_of(record).ok_or_else(bad_value)?;
            pending.insert(record.process, operations.len());
            operations.push(Operation {
                process: record.process,
                auction: record.auction,
                request: record.request.clone(),
                call,
                completion: Completion::Info,
                invoke_index: record.index,
                completion_index: None,
                invoke_ns: record.time_ns,
                complete_ns: None,
            });
            continue;
        }
        let Some(position) = pending.remove(&record.process) else {
            return Err(PairError::CompletionWithoutInvoke {
                line,
                process: record.process,
                event: record.event,
            });
        };
        let operation = &mut operations[position];
        let invoke_line = operation.invoke_index + 1;
        let mismatch = |field| PairError::CompletionMismatch {
            line,
            invoke_line,
            field,
        };
        let invoked_f = operation.call.function();
        if record.f != invoked_f {
            return Err(mismatch("f"));
        }
        if record.auction != operation.auction {
            return Err(mismatch("auction"));
        }
        if record.request != operation.request {
            return Err(mismatch("request"));
        }
        if record.time_ns < operation.invoke_ns {
            return Err(PairError::CompletedBeforeInvoke {
                line,
                invoked_ns: operation.invoke_ns,
                completed_ns: record.time_ns,
            });
        }
        operation.completion_index = Some(record.index);
        operation.completion = match record.event {
            EventType::Ok => {
                operation.complete_ns = Some(record.time_ns);
                Completion::Ok(output_of(record.f, record.value).ok_or_else(bad_value)?)
            }
            EventType::Fail | EventType::Info if record.value.is_some() => {
                return Err(bad_value());
            }
            EventType::Fail => {
                operation.complete_ns = Some(record.time_ns);
                Completion::Fail
            }
            // An info operation's effect may land at any time after its invoke, so it has
            // no completion time as far as ordering goes.
            EventType::Info | EventType::Invoke => Completion::Info,
        };
    }
    Ok(operations)
}
