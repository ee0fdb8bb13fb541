//! The node's wall clock: the system clock, shifted by a test-only offset, and the offset
//! file through which a fault suite moves that offset while the node runs.
//!
//! This is the one place the node reads the system clock for cluster time: command
//! timestamps, close timers, lease-read judgements and the skew guard's samples all go
//! through [`WallClock::now`]. The offset is zero outside tests; `--clock-offset-ms` fixes it
//! at start and `--clock-offset-file` moves it while the node runs. Scheduling the file's
//! reads (every [`OFFSET_FILE_EVERY`] until the node stops) is the node's (`node/skew.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use martelo_engine::Timestamp;

/// The node's wall clock, shifted by the test-only offset (fixed by `--clock-offset-ms`, or
/// changed while the node runs through `--clock-offset-file`). The only clock the node reads
/// for command timestamps; the engine never reads one.
#[derive(Clone, Debug)]
pub struct WallClock {
    offset_us: Arc<AtomicI64>,
}

impl WallClock {
    pub fn new(offset_ms: i64) -> WallClock {
        WallClock {
            offset_us: Arc::new(AtomicI64::new(offset_ms.saturating_mul(1000))),
        }
    }

    /// Shifts the clock to `offset_ms` from now on (testing only).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_us
            .store(offset_ms.saturating_mul(1000), Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_us.load(Ordering::Relaxed) / 1000
    }

    pub fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros() as i64);
        let offset_us = self.offset_us.load(Ordering::Relaxed);
        Timestamp(since_epoch.saturating_add(offset_us).max(0) as u64)
    }
}

/// How often `--clock-offset-file` is read.
pub const OFFSET_FILE_EVERY: Duration = Duration::from_millis(50);
/// Largest offset file read; it holds one integer.
const OFFSET_FILE_BYTES_MAX: u64 = 64;
/// Largest offset accepted, from the file as from `--clock-offset-ms`: a day.
pub const OFFSET_MS_MAX: u64 = 86_400_000;

/// Testing only: the file named by `--clock-offset-file`, which holds the clock offset as an
/// integer number of milliseconds, so a fault suite can skew and strobe the clock of a
/// running node.
#[derive(Debug)]
pub struct OffsetFile {
    path: PathBuf,
    /// Whether the file's last problem was logged already (it is logged once, until the file
    /// holds a valid offset again).
    complained: bool,
}

impl OffsetFile {
    pub fn new(path: PathBuf) -> OffsetFile {
        OffsetFile {
            path,
            complained: false,
        }
    }

    /// Reads the file once and sets `clock`'s offset to the value in it. A missing file or
    /// one that does not hold a valid offset leaves the offset unchanged (and says so once).
    pub async fn apply_to(&mut self, clock: &WallClock) {
        match read_offset_file(&self.path).await {
            Ok(None) => {}
            Ok(Some(offset_ms)) => {
                self.complained = false;
                if clock.offset_ms() != offset_ms {
                    tracing::warn!(offset_ms, "TEST: clock offset changed by the offset file");
                    clock.set_offset_ms(offset_ms);
                }
            }
            Err(reason) if !self.complained => {
                self.complained = true;
                let path = self.path.display();
                tracing::warn!(%path, reason, "ignoring the clock offset file");
            }
            Err(_) => {}
        }
    }
}

async fn read_offset_file(path: &Path) -> Result<Option<i64>, String> {
    use tokio::io::AsyncReadExt as _;
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let mut text = String::new();
    file.take(OFFSET_FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .await
        .map_err(|error| error.to_string())?;
    let text = text.trim();
    if text.is_empty() {
        // Caught between truncate and write.
        return Ok(None);
    }
    let offset: i64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not an integer number of milliseconds"))?;
    if offset.unsigned_abs() > OFFSET_MS_MAX {
        return Err(format!("{offset} ms is more than a day"));
    }
    Ok(Some(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_offset_shifts_readings() {
        let plain = WallClock::new(0).now();
        let ahead = WallClock::new(60_000).now();
        assert!(ahead.0 >= plain.0 + 59_000_000, "{ahead:?} vs {plain:?}");
    }

    #[tokio::test]
    async fn the_offset_file_is_read_checked_and_optional() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("offset");
        assert_eq!(read_offset_file(&path).await, Ok(None));
        std::fs::write(&path, "-1500\n").expect("writes");
        assert_eq!(read_offset_file(&path).await, Ok(Some(-1500)));
        std::fs::write(&path, "").expect("writes");
        assert_eq!(read_offset_file(&path).await, Ok(None));
        std::fs::write(&path, "soon").expect("writes");
        assert!(read_offset_file(&path).await.is_err());
        std::fs::write(&path, "90000000").expect("writes");
        assert!(read_offset_file(&path).await.is_err());
    }

    #[tokio::test]
    async fn the_offset_file_moves_the_clock_and_a_bad_one_leaves_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("offset");
        let clock = WallClock::new(250);
        let mut file = OffsetFile::new(path.clone());
        file.apply_to(&clock).await;
        assert_eq!(clock.offset_ms(), 250, "a missing file leaves the offset");
        std::fs::write(&path, "-1500").expect("writes");
        file.apply_to(&clock).await;
        assert_eq!(clock.offset_ms(), -1500);
        std::fs::write(&path, "soon").expect("writes");
        file.apply_to(&clock).await;
        assert_eq!(
            clock.offset_ms(),
            -1500,
            "an invalid file leaves the offset"
        );
    }
}
