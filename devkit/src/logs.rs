//! The end of a node's log, quoted by errors about a node that did not come up and by
//! [`crate::LocalCluster::log_tail`] for a test's failure message.
//!
//! Reading is bounded: only the last 16 KiB of a log are read, however long the node ran.
//! Where the logs are written (and how) is in [`crate::process`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How many lines of a node's log an error quotes.
pub(crate) const LOG_TAIL_LINES_MAX: usize = 40;
/// How much of a node's log is read to find those lines.
pub(crate) const LOG_TAIL_BYTES_MAX: u64 = 16 * 1024;

/// The last `lines_max` lines of a log (at most its last 16 KiB), or a note saying why it
/// could not be read. Never fails: it only decorates another error.
pub fn read_log_tail(path: &Path, lines_max: usize) -> String {
    match read_end(path, LOG_TAIL_BYTES_MAX) {
        Ok((text, truncated)) => {
            let tail = tail_lines(&text, lines_max, truncated);
            if tail.is_empty() {
                "(the log is empty)".to_owned()
            } else {
                tail.to_owned()
            }
        }
        Err(error) => format!("(could not read {}: {error})", path.display()),
    }
}

/// The last `bytes_max` bytes of a file as text, and whether earlier bytes were skipped.
fn read_end(path: &Path, bytes_max: u64) -> io::Result<(String, bool)> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    let start = length.saturating_sub(bytes_max);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(bytes_max).read_to_end(&mut bytes)?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), start > 0))
}

/// The last `lines_max` lines of `text`, without the trailing newline. When `starts_mid_line`
/// (the text was cut from a longer file), the first, partial line is dropped, unless it is
/// all there is (one line longer than the cut): a fragment says more than nothing.
fn tail_lines(text: &str, lines_max: usize, starts_mid_line: bool) -> &str {
    let text = text.trim_end_matches(['\n', '\r']);
    let text = if starts_mid_line {
        text.split_once('\n').map_or(text, |(_, rest)| rest)
    } else {
        text
    };
    if lines_max == 0 {
        return "";
    }
    match text.rmatch_indices('\n').nth(lines_max - 1) {
        Some((index, _)) => &text[index + 1..],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn tail_lines_keeps_the_last_lines_without_the_final_newline() {
        assert_eq!(tail_lines("a\nb\nc\n", 2, false), "b\nc");
        assert_eq!(tail_lines("a\nb\nc", 5, false), "a\nb\nc");
        assert_eq!(tail_lines("a\nb\nc\n", 1, false), "c");
        assert_eq!(tail_lines("a\nb\nc\n", 0, false), "");
        assert_eq!(tail_lines("", 3, false), "");
    }

    #[test]
    fn tail_lines_drops_the_partial_first_line_of_a_cut_log() {
        assert_eq!(tail_lines("rtial\nwhole\nlast\n", 10, true), "whole\nlast");
        assert_eq!(tail_lines("only-a-fragment", 10, true), "only-a-fragment");
    }

    #[test]
    fn read_log_tail_reads_only_the_end_of_a_long_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("node-1.log");
        let mut file = File::create(&path).expect("log");
        for line in 0..5000 {
            writeln!(file, "{{\"line\":{line},\"message\":\"some node output\"}}").expect("write");
        }
        writeln!(file, "error: address already in use").expect("write");
        drop(file);
        let tail = read_log_tail(&path, 3);
        assert_eq!(
            tail,
            "{\"line\":4998,\"message\":\"some node output\"}\n\
             {\"line\":4999,\"message\":\"some node output\"}\n\
             error: address already in use"
        );
        let (text, truncated) = read_end(&path, LOG_TAIL_BYTES_MAX).expect("read");
        assert!(truncated);
        assert_eq!(text.len() as u64, LOG_TAIL_BYTES_MAX);
    }

    #[test]
    fn read_log_tail_explains_a_missing_or_empty_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = read_log_tail(&dir.path().join("absent.log"), 5);
        assert!(missing.starts_with("(could not read"), "{missing}");
        let empty = dir.path().join("empty.log");
        File::create(&empty).expect("log");
        assert_eq!(read_log_tail(&empty, 5), "(the log is empty)");
    }
}
