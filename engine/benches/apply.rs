//! Apply throughput of the engine (criterion).
//!
//! `cargo bench -p martelo-engine --bench apply`. Figures and the machine they were taken on
//! are in the README.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

mod workload;

const BIDDERS: u64 = 10_000;
const BIDS: u64 = 100_000;

/// Applies `BIDS` bids from `BIDDERS` bidders spread over `auctions` open auctions, each
/// iteration on a fresh copy of the state.
fn bench_bids(c: &mut Criterion, name: &str, auctions: u64, samples: usize) {
    let commands = workload::bids(BIDS, auctions, BIDDERS);
    let (state, first_index) = workload::state_with_auctions(auctions);
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(BIDS));
    group.sample_size(samples);
    group.bench_function(name, |b| {
        b.iter_batched_ref(
            || state.clone(),
            |state| workload::apply_all(state, first_index, &commands),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn hot_auction(c: &mut Criterion) {
    bench_bids(c, "hot_auction_10k_bidders", 1, 20);
}

fn many_auctions(c: &mut Criterion) {
    bench_bids(c, "spread_over_100k_open_auctions", 100_000, 10);
}

criterion_group!(benches, hot_auction, many_auctions);
criterion_main!(benches);
