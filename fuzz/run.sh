#!/usr/bin/env bash
# Builds every fuzz target and runs each for the given seconds (default 20), one after the
# other, starting from its committed corpus (fuzz/corpus/<target>/). Fails on any crash,
# timeout (an input slower than 10 s), out-of-memory or failed assertion; prints what each
# target ran. libFuzzer through cargo-fuzz, on stable Rust (--sanitizer none: the
# sanitizers need nightly; the targets assert their own bounds instead).
#
#   bash fuzz/run.sh            # 20 s a target: the CI smoke run
#   bash fuzz/run.sh 3600       # an hour a target: the long run (docs/TESTING.md, "Fuzzing")
#
# Environment:
#   FUZZ_TARGET_DIR   where cargo builds (default fuzz/target; never the workspace's)
#   FUZZ_TARGETS      a space-separated subset of targets (default: all of them)
#   FUZZ_CORPUS_OUT   where new corpus inputs go (default: a temporary directory, removed
#                     at the end; the committed corpora are only read)
#
# A crashing input is kept in fuzz/artifacts/<target>/; reproduce it with
#   cd fuzz && cargo fuzz run --sanitizer none <target> artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash fuzz/run.sh [seconds-per-target]" >&2
    exit 2
fi
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never
target_dir="${FUZZ_TARGET_DIR:-$PWD/target}"
# The workspace's target dir (CI exports one) would mix instrumented and normal builds.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

started=$(date +%s)
targets=(${FUZZ_TARGETS:-$(cargo fuzz list)})
echo "building ${#targets[@]} fuzz targets in $target_dir"
cargo fuzz build --sanitizer none --target-dir "$target_dir"
built=$(date +%s)
if ! git diff --quiet -- Cargo.lock 2>/dev/null; then
    echo "warning: fuzz/Cargo.lock changed in this build (a workspace crate's dependencies" \
        "changed): commit the new fuzz/Cargo.lock" >&2
fi

out="${FUZZ_CORPUS_OUT:-}"
if [[ -z "$out" ]]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "$out/$target" "artifacts/$target"
    log="$out/$target.log"
    echo "=== $target: ${seconds}s"
    # New inputs go to the first corpus directory (scratch); the committed one seeds it.
    status=0
    cargo fuzz run --sanitizer none --target-dir "$target_dir" "$target" \
        "$out/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    summary+=("$(printf '%-20s %10s execs  cov %6s  %s' "$target" "${execs:-?}" "${cov:-?}" \
        "$([[ $status == 0 ]] && echo ok || echo "FAILED ($status)")")")
    if [[ $status != 0 ]]; then
        failed+=("$target")
        echo "--- $target failed (exit $status); the end of its log:"
        tail -n 60 "$log"
    fi
done

echo
echo "fuzzing: ${seconds}s a target, build $((built - started))s, total $(($(date +%s) - started))s"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
