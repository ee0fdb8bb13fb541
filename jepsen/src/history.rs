//! The history format (`history.jsonl`): what the clients did and saw, one event per line.
//!
//! Every client operation is written as two records: an `invoke` when the client sends it and
//! a completion when the client learns its fate:
//!
//! - `ok`: it took effect, and `value` holds what the system answered (a rejected bid is
//!   `ok` with `"accepted": false`: the engine applied it and said no);
//! - `fail`: it definitely did not take effect (for example refused before it was proposed);
//! - `info`: the outcome is unknown (timeout, "not leader", a crashed client: invariant I9).
//!
//! An invoke that never gets a completion is treated as `info`. A process never has two
//! operations outstanding; after an `info` the harness moves the client to a fresh process id,
//! as Jepsen does, because the old operation may still be in flight.
//!
//! ```text
//! {"index":0,"process":1,"type":"invoke","f":"bid","auction":7,"request":"r-42",
//!  "value":{"bid":{"amount":150,"bidder":1}},"time_ns":1200}
//! {"index":1,"process":1,"type":"ok","f":"bid","auction":7,"request":"r-42",
//!  "value":{"bid_reply":{"accepted":true}},"time_ns":1900}
//! ```
//! (each record is one line in the file; it is wrapped here to fit.)
//!
//! `index` is the record's position in the file, starting at 0, so line = index + 1.
//! `time_ns` is a monotonic clock in nanoseconds; the invoke time must be taken before the
//! request is sent and the completion time after the answer arrives, because the checker
//! orders operations by these times (equal times count as concurrent).
//!
//! Values by function and type:
//!
//! | f                | invoke                 | ok                                      |
//! |------------------|------------------------|-----------------------------------------|
//! | `create_auction` | `{"terms":{..}}`       | none, or `"already_exists"`             |
//! | `bid`            | `{"bid":{..}}`         | `{"bid_reply":{"accepted":bool}}`       |
//! | `read`           | none                   | `{"state":{..}}` or `"not_found"`       |
//! | `close`          | none                   | `{"closed":{"outcome":..}}`, `"not_found"` |
//!
//! `fail` and `info` carry no value; an optional `error` string says why. A `close` is an
//! *observation*: the harness does not close auctions (the group leader proposes `Close`), so
//! it records an invoke at the auction's nominal end time and the `ok` when it sees the
//! outcome. The close took effect somewhere in between, which is exactly what an operation's
//! interval means to the linearizability checker.
//!
//! Raw [`Record`]s are parsed with limits by [`HistoryReader`] and turned into typed, paired
//! [`Operation`]s by [`pair`]. Nothing here panics on bad input: every problem is a
//! [`HistoryError`] or [`PairError`] that names the line.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

/// An auction id, as the cluster assigns it.
pub type AuctionId = u64;
/// A bidder's user id.
pub type BidderId = u64;
/// Money in minor units.
pub type Amount = u64;

/// The longest request id accepted; matches the engine's `RequestId` limit.
pub const REQUEST_ID_BYTES_MAX: usize = 64;
/// The longest `error` note kept on a `fail` or `info` record.
pub const ERROR_NOTE_BYTES_MAX: usize = 512;

/// Limits applied while reading a history file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// A record is a few hundred bytes; anything much longer is corrupt or hostile.
    pub line_bytes_max: usize,
    /// Bounds memory: the checkers hold the whole history.
    pub records_max: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            line_bytes_max: 4096,
            records_max: 20_000_000,
        }
    }
}

/// Whether a record starts an operation or completes it, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// What the operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    CreateAuction,
    Bid,
    Read,
    Close,
}

/// The parameters of an auction, carried by `create_auction`; the model takes its rules from
/// here rather than from constants, so the workload can vary them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    pub starting_price: Amount,
    pub increment: Amount,
}

/// The bid a client sent. Amounts are unique within an auction, so a bid is identified by
/// its amount as well as by its request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidRequest {
    pub amount: Amount,
    pub bidder: BidderId,
}

/// The leading bid of an auction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopBid {
    pub amount: Amount,
    pub bidder: BidderId,
}

/// How a closed auction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseOutcome {
    Sold(TopBid),
    Unsold,
}

/// What a read returns: the price is the highest accepted amount (null before the first
/// accepted bid), `leader` its bidder, and `outcome` is set exactly when `closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuctionView {
    pub price: Option<Amount>,
    pub leader: Option<BidderId>,
    pub closed: bool,
    pub outcome: Option<CloseOutcome>,
}

/// The `value` field. Externally tagged so each shape is explicit in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Terms(Terms),
    Bid(BidRequest),
    BidReply { accepted: bool },
    State(AuctionView),
    Closed { outcome: CloseOutcome },
    NotFound,
    AlreadyExists,
}

/// One line of `history.jsonl`, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub index: u64,
    pub process: u64,
    #[serde(rename = "type")]
    pub event: EventType,
    pub f: Function,
    pub auction: AuctionId,
    pub request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub time_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A problem reading the file itself. `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: longer than {max} bytes")]
    LineTooLong { line: u64, max: usize },
    #[error("line {line}: empty line")]
    EmptyLine { line: u64 },
    #[error("line {line}: not a history record: {source}")]
    Json {
        line: u64,
        source: serde_json::Error,
    },
    #[error("line {line}: index is {found}, expected {expected} (index = line - 1)")]
    IndexOutOfOrder {
        line: u64,
        found: u64,
        expected: u64,
    },
    #[error("history has more than {max} records")]
    TooManyRecords { max: usize },
    #[error("record {index}: serialized line is {bytes} bytes, the limit is {max}")]
    RecordTooLong {
        index: u64,
        bytes: usize,
        max: usize,
    },
    #[error("reading or writing the history: {0}")]
    Io(#[from] std::io::Error),
}

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

/// Reads records one line at a time, with limits, checking that `index` counts lines.
#[derive(Debug)]
pub struct HistoryReader<R> {
    input: R,
    limits: ReadLimits,
    line: u64,
    buffer: Vec<u8>,
    done: bool,
}

impl<R: BufRead> HistoryReader<R> {
    pub fn new(input: R, limits: ReadLimits) -> Self {
        HistoryReader {
            input,
            limits,
            line: 0,
            buffer: Vec::new(),
            done: false,
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, HistoryError> {
        self.buffer.clear();
        // `take` bounds the allocation: a line without a newline never grows past the limit.
        let bound = self.limits.line_bytes_max as u64 + 1;
        let read = (&mut self.input)
            .take(bound)
            .read_until(b'\n', &mut self.buffer)?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
        } else if self.buffer.len() > self.limits.line_bytes_max {
            return Err(HistoryError::LineTooLong {
                line,
                max: self.limits.line_bytes_max,
            });
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        if self.buffer.is_empty() {
            return Err(HistoryError::EmptyLine { line });
        }
        if line > self.limits.records_max as u64 {
            return Err(HistoryError::TooManyRecords {
                max: self.limits.records_max,
            });
        }
        let record: Record = serde_json::from_slice(&self.buffer)
            .map_err(|source| HistoryError::Json { line, source })?;
        if record.index != line - 1 {
            return Err(HistoryError::IndexOutOfOrder {
                line,
                found: record.index,
                expected: line - 1,
            });
        }
        Ok(Some(record))
    }
}

impl<R: BufRead> Iterator for HistoryReader<R> {
    type Item = Result<Record, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_record().transpose();
        // Stop after the first error: later lines are numbered relative to a broken one.
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Reads a whole history, stopping at the first error.
pub fn read_history<R: BufRead>(input: R, limits: ReadLimits) -> Result<Vec<Record>, HistoryError> {
    HistoryReader::new(input, limits).collect()
}

/// Writes records one per line, assigning `index` so the file is always well numbered.
#[derive(Debug)]
pub struct HistoryWriter<W> {
    output: W,
    next_index: u64,
    line_bytes_max: usize,
    line: Vec<u8>,
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(output: W, limits: ReadLimits) -> Self {
        HistoryWriter {
            output,
            next_index: 0,
            line_bytes_max: limits.line_bytes_max,
            line: vec![],
        }
    }

    /// Writes `record` with the next index and returns that index. A record the reader would
    /// refuse is refused here instead, so a run never produces a file it cannot check.
    pub fn append(&mut self, mut record: Record) -> Result<u64, HistoryError> {
        record.index = self.next_index;
        self.line.clear();
        serde_json::to_writer(&mut self.line, &record).map_err(|source| HistoryError::Json {
            line: record.index + 1,
            source,
        })?;
        if self.line.len() > self.line_bytes_max {
            return Err(HistoryError::RecordTooLong {
                index: record.index,
                bytes: self.line.len(),
                max: self.line_bytes_max,
            });
        }
        self.line.push(b'\n');
        self.output.write_all(&self.line)?;
        self.next_index += 1;
        Ok(record.index)
    }

    pub fn flush(&mut self) -> Result<(), HistoryError> {
        Ok(self.output.flush()?)
    }

    pub fn into_inner(self) -> W {
        self.output
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bid_invoke(index: u64, process: u64, amount: u64) -> Record {
        Record {
            index,
            process,
            event: EventType::Invoke,
            f: Function::Bid,
            auction: 1,
            request: format!("r{index}"),
            value: Some(Value::Bid(BidRequest {
                amount,
                bidder: process,
            })),
            time_ns: index * 10,
            error: None,
        }
    }

    fn completion(invoke: &Record, index: u64, event: EventType, value: Option<Value>) -> Record {
        Record {
            index,
            event,
            value,
            time_ns: index * 10,
            ..invoke.clone()
        }
    }

    fn write(records: &[Record]) -> Vec<u8> {
        let mut writer = HistoryWriter::new(Vec::new(), ReadLimits::default());
        for record in records {
            writer.append(record.clone()).expect("writes");
        }
        writer.into_inner()
    }

    #[test]
    fn written_history_reads_back_identically() {
        let invoke = bid_invoke(0, 3, 100);
        let ok = completion(
            &invoke,
            1,
            EventType::Ok,
            Some(Value::BidReply { accepted: true }),
        );
        let bytes = write(&[invoke.clone(), ok.clone()]);
        let read = read_history(&bytes[..], ReadLimits::default()).expect("reads");
        assert_eq!(read, vec![invoke, ok]);
    }

    #[test]
    fn format_matches_the_documented_example() {
        let line = concat!(
            r#"{"index":0,"process":1,"type":"invoke","f":"bid","auction":7,"request":"r-42","#,
            r#""value":{"bid":{"amount":150,"bidder":1}},"time_ns":1200}"#,
        );
        let records = read_history(line.as_bytes(), ReadLimits::default()).expect("reads");
        assert_eq!(
            records[0].value,
            Some(Value::Bid(BidRequest {
                amount: 150,
                bidder: 1
            }))
        );
        let read = r#"{"state":{"price":null,"leader":null,"closed":true,"outcome":"unsold"}}"#;
        let value: Value = serde_json::from_str(read).expect("parses");
        assert!(matches!(
            value,
            Value::State(AuctionView { closed: true, .. })
        ));
    }

    #[test]
    fn malformed_line_is_reported_with_its_line_number() {
        let mut bytes = write(&[bid_invoke(0, 1, 100)]);
        bytes.extend_from_slice(b"{\"index\":1,\"process\":\n");
        let error = read_history(&bytes[..], ReadLimits::default()).expect_err("malformed");
        assert!(
            matches!(error, HistoryError::Json { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn unknown_field_and_wrong_types_are_rejected() {
        for line in [
            concat!(
                r#"{"index":0,"process":1,"type":"invoke","f":"bid","auction":7,"#,
                r#""request":"r","time_ns":1,"extra":1}"#
            ),
            concat!(
                r#"{"index":0,"process":-1,"type":"invoke","f":"bid","auction":7,"#,
                r#""request":"r","time_ns":1}"#
            ),
            concat!(
                r#"{"index":0,"process":1,"type":"maybe","f":"bid","auction":7,"#,
                r#""request":"r","time_ns":1}"#
            ),
            "\u{0}\u{1}garbage",
        ] {
            let error = read_history(line.as_bytes(), ReadLimits::default()).expect_err(line);
            assert!(
                matches!(error, HistoryError::Json { line: 1, .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn overlong_line_is_rejected_without_reading_it_all() {
        let limits = ReadLimits {
            line_bytes_max: 64,
            records_max: 10,
        };
        let long = vec![b'x'; 10_000];
        let error = read_history(&long[..], limits).expect_err("too long");
        assert!(
            matches!(error, HistoryError::LineTooLong { line: 1, max: 64 }),
            "{error}"
        );
    }

    #[test]
    fn index_must_count_lines_and_records_are_bounded() {
        let mut second = bid_invoke(0, 2, 200);
        second.index = 5;
        let mut bytes = write(&[bid_invoke(0, 1, 100)]);
        bytes.extend(serde_json::to_vec(&second).expect("serializes"));
        let error = read_history(&bytes[..], ReadLimits::default()).expect_err("index");
        assert!(matches!(
            error,
            HistoryError::IndexOutOfOrder {
                line: 2,
                found: 5,
                ..
            }
        ));

        let bytes = write(&[bid_invoke(0, 1, 100), bid_invoke(1, 2, 200)]);
        let limits = ReadLimits {
            records_max: 1,
            ..ReadLimits::default()
        };
        let error = read_history(&bytes[..], limits).expect_err("too many");
        assert!(matches!(error, HistoryError::TooManyRecords { max: 1 }));
    }

    #[test]
    fn empty_line_is_an_error_but_a_final_newline_is_not() {
        let mut bytes = write(&[bid_invoke(0, 1, 100)]);
        assert_eq!(
            read_history(&bytes[..], ReadLimits::default())
                .expect("ok")
                .len(),
            1
        );
        bytes.push(b'\n');
        let error = read_history(&bytes[..], ReadLimits::default()).expect_err("empty");
        assert!(matches!(error, HistoryError::EmptyLine { line: 2 }));
    }

    #[test]
    fn writer_refuses_a_record_the_reader_would_refuse() {
        let limits = ReadLimits {
            line_bytes_max: 50,
            records_max: 10,
        };
        let mut writer = HistoryWriter::new(Vec::new(), limits);
        let error = writer.append(bid_invoke(0, 1, 100)).expect_err("too long");
        assert!(matches!(
            error,
            HistoryError::RecordTooLong { index: 0, .. }
        ));
    }

    #[test]
    fn invoke_without_completion_is_info() {
        let operations = pair(&[bid_invoke(0, 1, 100)]).expect("pairs");
        assert_eq!(operations[0].completion, Completion::Info);
        assert_eq!(operations[0].complete_ns, None);
    }

    #[test]
    fn counts_group_operations_by_function_and_completion() {
        let first = bid_invoke(0, 1, 100);
        let records = [
            first.clone(),
            completion(
                &first,
                1,
                EventType::Ok,
                Some(Value::BidReply { accepted: true }),
            ),
            bid_invoke(2, 2, 200),
        ];
        let counts = count(&pair(&records).expect("pairs"));
        assert_eq!(
            counts[&Function::Bid],
            Counts {
                ok: 1,
                fail: 0,
                info: 1
            }
        );
    }

    #[test]
    fn pairing_errors_name_the_line() {
        let invoke = bid_invoke(0, 1, 100);
        let reply = Some(Value::BidReply { accepted: true });
        let orphan = completion(&bid_invoke(0, 9, 1), 0, EventType::Ok, reply);
        assert!(matches!(
            pair(&[orphan]),
            Err(PairError::CompletionWithoutInvoke {
                line: 1,
                process: 9,
                ..
            })
        ));
        let twice = bid_invoke(1, 1, 200);
        assert!(matches!(
            pair(&[invoke.clone(), twice]),
            Err(PairError::ProcessAlreadyPending {
                line: 2,
                pending_line: 1,
                ..
            })
        ));
        let mut wrong_auction = completion(&invoke, 1, EventType::Ok, reply);
        wrong_auction.auction = 2;
        assert!(matches!(
            pair(&[invoke.clone(), wrong_auction]),
            Err(PairError::CompletionMismatch {
                line: 2,
                field: "auction",
                ..
            })
        ));
        let wrong_value = completion(&invoke, 1, EventType::Ok, Some(Value::NotFound));
        assert!(matches!(
            pair(&[invoke.clone(), wrong_value]),
            Err(PairError::BadValue { line: 2, .. })
        ));
        let mut early = completion(&invoke, 1, EventType::Fail, None);
        early.time_ns = 0;
        let mut late_invoke = invoke.clone();
        late_invoke.time_ns = 5;
        assert!(matches!(
            pair(&[late_invoke, early]),
            Err(PairError::CompletedBeforeInvoke { line: 2, .. })
        ));
        let mut long_id = invoke;
        long_id.request = "x".repeat(REQUEST_ID_BYTES_MAX + 1);
        assert!(matches!(
            pair(&[long_id]),
            Err(PairError::BadRequestId { line: 1 })
        ));
    }
}
