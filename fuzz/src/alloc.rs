//! Counts the bytes live on the heap, so a target can assert that decoding an input
//! allocated no more than the input's size justifies (issue 15: "a 16-byte command allocated
//! about 200 MB, and a 23-byte snapshot stream 4 GiB").
//!
//! libFuzzer's `-rss_limit_mb` would catch the worst cases too, but only as an out-of-memory
//! exit without saying which decode asked; the peak measured here fails on the input
//! itself, with the size it claimed. The count is process-wide: the targets run one input at
//! a time on one thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes live and their peak.
#[derive(Debug)]
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received (GlobalAlloc's contract is the caller's).
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as `alloc`.
        unsafe { System.dealloc(pointer, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `alloc`.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Fixed part of [`bound`]: serde reserves up to 1 MiB for a list before reading its
/// elements (its own cap), once per level of nesting that the input reaches; a few levels
/// of that are expected from any input (engine/tests/decode_bounds.rs uses 8 MiB for the
/// same reason).
pub const FIXED_BYTES: usize = 16 << 20;

/// Heap bytes per input byte that a decode may hold at its peak on top of [`FIXED_BYTES`]:
/// the codec lets an input claim 16 bytes per byte (`codec::CLAIM_PER_INPUT_BYTE`), rounded
/// up to 4 times that by its ladder of limits, and a decoded value's in-memory form (enums
/// at their widest variant, vectors grown by doubling) may be a few times its claims.
pub const BYTES_PER_INPUT_BYTE: usize = 256;

/// The most a decode of an `input_bytes`-byte input may hold on the heap at once.
pub fn bound(input_bytes: usize) -> usize {
    FIXED_BYTES.saturating_add(input_bytes.saturating_mul(BYTES_PER_INPUT_BYTE))
}

/// Runs `decode` and returns what it returned, with the peak of heap bytes it added to what
/// was live before it.
pub fn measured<T>(decode: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let value = decode();
    let peak = PEAK.load(Ordering::Relaxed);
    (value, peak.saturating_sub(before))
}

/// Runs `decode` of an `input_bytes`-byte input named `what`, and fails if its heap peak
/// exceeded [`bound`].
pub fn bounded<T>(what: &str, input_bytes: usize, decode: impl FnOnce() -> T) -> T {
    let (value, peak) = measured(decode);
    assert!(
        peak <= bound(input_bytes),
        "{what}: decoding a {input_bytes}-byte input held {peak} heap bytes at its peak (the \
         bound is {})",
        bound(input_bytes)
    );
    value
}
