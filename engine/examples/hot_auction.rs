//! Applies the hot-auction benchmark's 100,000 bids once, for profilers that count
//! instructions rather than time (stable on a shared machine):
//!
//! ```sh
//! cargo build --profile bench -p martelo-engine --example hot_auction
//! valgrind --tool=callgrind target/release/examples/hot_auction
//! ```

#[path = "../benches/workload.rs"]
mod workload;

fn main() {
    let commands = workload::bids(100_000, 1, 10_000);
    let (mut state, first_index) = workload::state_with_auctions(1);
    let accepted = workload::apply_all(&mut state, first_index, &commands);
    println!("{accepted} of {} bids accepted", commands.len());
}
