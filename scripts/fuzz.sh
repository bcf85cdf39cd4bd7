#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each; fails on the first crash.
#
#   bash scripts/fuzz.sh [SECONDS]        (default 60 per target)
#
# cargo-fuzz needs nightly compiler flags; on the stable toolchain RUSTC_BOOTSTRAP=1 enables
# them (set here). Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) if it is missing.
# Corpora live in fuzz/corpus/<target> (kept between runs, not committed); crashes are written
# to fuzz/artifacts/<target> and reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[fuzz.sh] installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=$(cargo fuzz list)
t0=$SECONDS
echo "[fuzz.sh] building $(echo "$targets" | wc -w) targets"
cargo fuzz build --release 2>&1 | tail -n 3
echo "[fuzz.sh] build took $((SECONDS - t0))s"
mkdir -p logs
for target in $targets; do
    mkdir -p "corpus/$target"
    echo "[fuzz.sh] $target for ${SECONDS_PER_TARGET}s"
    # -rss_limit_mb bounds memory; -max_len bounds inputs (import lines, batches).
    status=0
    cargo fuzz run --release "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
        >"logs/$target.log" 2>&1 || status=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+ +DONE' "logs/$target.log" || true
    if [ "$status" -ne 0 ]; then
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "logs/$target.log" >&2 || true
        echo "[fuzz.sh] $target FAILED (exit $status; fuzz/logs/$target.log, input in fuzz/artifacts/$target)" >&2
        exit 1
    fi
done
echo "[fuzz.sh] all targets ran ${SECONDS_PER_TARGET}s without a crash ($((SECONDS - t0))s in all)"
