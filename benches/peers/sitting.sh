#!/usr/bin/env bash
# One sitting: kiln's step benches and the Burn peer alternately, twice,
# on the same adapter, then PyTorch's where it is installed (PYTHON names
# the interpreter, e.g. a venv's: `pip install -r
# benches/peers/pytorch/requirements.txt`). Prints every program's lines;
# BENCHMARKS.md takes its figures from one such run.
# Usage: [PYTHON=python3] benches/peers/sitting.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-2}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo build --release --benches -q
(cd benches/peers/burn && cargo build --release -q)
for round in $(seq "$rounds"); do
    echo "== round $round: kiln"
    for b in train_step lstm_step cnn_step resnet_step; do
        cargo bench -q --bench "$b" 2>/dev/null | grep -E 'adapter|device|cold|warm|dispatches|steps per|memory|:$'
    done
    echo "== round $round: Burn 0.22.1"
    benches/peers/burn/target/release/kiln-peer-burn
done
py="${PYTHON:-python3}"
if "$py" -c 'import torch, torchvision' 2>/dev/null; then
    echo "== PyTorch"
    "$py" benches/peers/pytorch/steps.py --device cpu
fi
