//! Times the checkers on a generated 100,000-operation history (100 auctions, 10 clients).
//!
//! `cargo bench -p martelo-jepsen --bench linearizable`

use criterion::{Criterion, criterion_group, criterion_main};
use martelo_jepsen::checker::linearizable::{self, SearchLimits};
use martelo_jepsen::generate::{GeneratorConfig, generate};
use martelo_jepsen::history::pair;

fn large_history(criterion: &mut Criterion) {
    let generated = generate(&GeneratorConfig::hundred_thousand_operations());
    let operations = pair(&generated.records).expect("generated history pairs");
    let mut group = criterion.benchmark_group("linearizable");
    group.sample_size(10);
    group.bench_function("100k_ops_100_auctions_10_clients", |bencher| {
        bencher.iter(|| {
            let verdict = linearizable::check(&operations, SearchLimits::default());
            assert!(verdict.is_valid());
        });
    });
    group.finish();
}

criterion_group!(benches, large_history);
criterion_main!(benches);
