//! The checker's performance requirement: a 100,000-operation history in under a minute.
//!
//! Ignored by default because it is meant to be run in release mode:
//!
//! ```text
//! cargo test -p martelo-jepsen --release --test large_history -- --ignored --nocapture
//! ```

use std::time::{Duration, Instant};

use martelo_jepsen::checker::check_all;
use martelo_jepsen::checker::linearizable::{self, SearchLimits};
use martelo_jepsen::generate::{GeneratorConfig, generate};
use martelo_jepsen::history::{HistoryWriter, ReadLimits, pair, read_history};

const BUDGET: Duration = Duration::from_secs(60);

fn time_checkers(config: GeneratorConfig) {
    let generated = generate(&config);
    // Go through the file format too, since a real run starts from history.jsonl.
    let mut writer = HistoryWriter::new(Vec::new(), ReadLimits::default());
    for record in generated.records {
        writer
            .append(record)
            .expect("generated records fit the limits");
    }
    let bytes = writer.into_inner();
    let start = Instant::now();
    let records = read_history(&bytes[..], ReadLimits::default()).expect("reads back");
    let operations = pair(&records).expect("pairs");
    let parsed = start.elapsed();
    let report = check_all(&operations, &generated.final_state, SearchLimits::default());
    let total = start.elapsed();
    // The linearizability search dominates; time it alone too.
    let alone = Instant::now();
    let verdict = linearizable::check(&operations, SearchLimits::default());
    let linearizable_time = alone.elapsed();
    assert!(verdict.is_valid());
    println!(
        "{} operations ({} records, {} auctions, {} clients): parse+pair {:.2?}, \
         all checkers {:.2?} (linearizable alone {:.2?}), total {:.2?}",
        operations.len(),
        records.len(),
        config.auctions,
        config.clients,
        parsed,
        total - parsed,
        linearizable_time,
        total,
    );
    for verdict in &report.verdicts {
        println!(
            "  {:<12} {:?} (checked {})",
            verdict.checker, verdict.validity, verdict.checked
        );
    }
    assert!(report.is_valid(), "{report:#?}");
    assert!(total < BUDGET, "took {total:?}, budget {BUDGET:?}");
}

#[test]
#[ignore = "timing test: run in release mode, see the module doc"]
fn hundred_thousand_operations_over_100_auctions_check_under_a_minute() {
    time_checkers(GeneratorConfig::hundred_thousand_operations());
}

#[test]
#[ignore = "timing test: run in release mode, see the module doc"]
fn hundred_thousand_operations_over_10_hot_auctions_check_under_a_minute() {
    // Ten times more operations per auction, and so more concurrency within each one.
    time_checkers(GeneratorConfig {
        seed: 8,
        auctions: 10,
        clients: 10,
        operations: 100_000,
        close_per_mille: 0,
        ..GeneratorConfig::default()
    });
}

#[test]
#[ignore = "timing test: run in release mode, see the module doc"]
fn one_contended_auction_with_many_unknown_outcomes_checks_under_a_minute() {
    // Every client on one auction, and one operation in ten ending as info: the case that
    // makes the search branch most.
    time_checkers(GeneratorConfig {
        seed: 9,
        auctions: 1,
        clients: 10,
        operations: 20_000,
        close_per_mille: 0,
        info_percent: 10,
        ..GeneratorConfig::default()
    });
}
