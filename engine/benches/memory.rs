//! Heap bytes per open auction and per retained bid, counted by an instrumented allocator.
//!
//! `cargo bench -p martelo-engine --bench memory`. Prints one line per figure.

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

mod workload;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live_bytes(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
        + change.bytes_reallocated as i64
}

fn main() {
    const AUCTIONS: u64 = 100_000;
    const BIDS: u64 = 200_000;
    // Commands are built before measuring, so only the state's own growth is counted.
    let bids = workload::bids(BIDS, 1, 10_000);

    let region = Region::new(GLOBAL);
    let (state, _) = workload::state_with_auctions(AUCTIONS);
    let per_auction = live_bytes(&region) / AUCTIONS as i64;
    drop(state);

    let (mut state, first_index) = workload::state_with_auctions(1);
    let region = Region::new(GLOBAL);
    let accepted = workload::apply_all(&mut state, first_index, &bids);
    let per_bid = live_bytes(&region) / BIDS as i64;

    println!("bytes per open auction (title and description included): {per_auction}");
    println!("bytes per retained bid (bid history + idempotency record): {per_bid}");
    println!("({accepted} of {BIDS} bids accepted; rejected requests keep a record too)");
}
