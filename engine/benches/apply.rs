//! Apply throughput of the engine (criterion).
//!
//! `cargo bench -p martelo-engine --bench apply`. Figures and the machine they were taken on
//! are in the README.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

mod workload;

const HOT_BIDS: u64 = 100_000;
const HOT_BIDDERS: u64 = 10_000;
const OPEN_AUCTIONS: u64 = 100_000;
const SPREAD_BIDS: u64 = 100_000;

fn hot_auction(c: &mut Criterion) {
    let commands = workload::bids(HOT_BIDS, 1, HOT_BIDDERS);
    let (state, first_index) = workload::state_with_auctions(1);
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(HOT_BIDS));
    group.sample_size(20);
    group.bench_function("hot_auction_10k_bidders", |b| {
        b.iter_batched_ref(
            || state.clone(),
            |state| workload::apply_all(state, first_index, &commands),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn many_auctions(c: &mut Criterion) {
    let commands = workload::bids(SPREAD_BIDS, OPEN_AUCTIONS, HOT_BIDDERS);
    let (state, first_index) = workload::state_with_auctions(OPEN_AUCTIONS);
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(SPREAD_BIDS));
    group.sample_size(10);
    group.bench_function("spread_over_100k_open_auctions", |b| {
        b.iter_batched_ref(
            || state.clone(),
            |state| workload::apply_all(state, first_index, &commands),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, hot_auction, many_auctions);
criterion_main!(benches);
