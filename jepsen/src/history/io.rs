//! Reading and writing `history.jsonl` with limits: [`HistoryReader`] checks every line
//! (length, JSON shape, `index` = line - 1) and [`HistoryWriter`] refuses a record the reader
//! would refuse, so a run never writes a file it cannot check.

use std::io::{BufRead, Read, Write};

use super::record::Record;

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
