#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 600),
# JOBS targets at a time (default 2), starting from fuzz/seeds and keeping
# what they find in fuzz/corpus; logs and final stats go to fuzz/logs.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Usage: scripts/fuzz.sh [SECONDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
jobs="${2:-2}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo +nightly fuzz build -s none
mkdir -p logs
cargo +nightly fuzz list | xargs -P "$jobs" -I{} sh -c "
    mkdir -p corpus/{}
    cargo +nightly fuzz run -s none {} corpus/{} seeds/{} -- \
        -max_total_time=$seconds -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        > logs/{}.log 2>&1
    echo \"{}: exit \$?, \$(grep -o 'stat::number_of_executed_units: *[0-9]*' logs/{}.log | grep -o '[0-9]*$') executions\"
"
