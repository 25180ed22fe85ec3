#!/usr/bin/env bash
# Every GPU check and benchmark in one run, for a machine with an NVIDIA
# GPU, the Vulkan loader (.gl/*.deb, unpacked below if present) and the
# binaries scripts/gpu-bundle.sh packed here; no Rust toolchain needed.
# It runs the test binaries on the hardware adapter, kiln's step and conv
# benches, matmul 4096³ beside cuBLAS SGEMM through PyTorch (TF32 off) and
# the PyTorch CUDA counterparts of the four steps, and prints one table.
# Usage (repository root): scripts/gpu-check.sh [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/gpu-check}}"
mkdir -p "$out"
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export KILN_DEVICE=gpu XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
bin=/tmp/kiln-bin
mkdir -p "$bin" && tar -C "$bin" --strip-components=1 -xJf gpu-bundle/bin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

rows=()
row() { rows+=("$(printf '| %s | %s |' "$1" "$2")"); }
# Whatever scripts/gpu-bundle.sh packed: its lists are the only ones.
for path in "$bin"/tests/*; do
    t="$(basename "$path")"
    if timeout 300 "$path" > "$out/test-$t.log" 2>&1; then
        row "test $t" "$(grep -o '[0-9]* passed' "$out/test-$t.log" | tail -1)"
    else
        row "test $t" "FAILED (see test-$t.log)"
    fi
done
for path in "$bin"/benches/*; do
    b="$(basename "$path")"
    [ "$b" = matmul ] && continue
    timeout 300 "$path" > "$out/bench-$b.log" 2>&1
    row "bench $b" "$(grep -E 'warm|cold|dispatches|queued|memory|conv / matmul' "$out/bench-$b.log" | head -6 | tr '\n' ';' | tr -s ' ')"
done
KILN_MATMUL_SIZES=4096 timeout 300 "$bin/benches/matmul" --bench 'matmul_gpu/' > "$out/bench-matmul.log" 2>&1
row "kiln matmul 4096³" "$(grep -A3 'matmul_gpu' "$out/bench-matmul.log" | grep -o 'thrpt:.*' | head -1)"
if python3 -c 'import torch, torchvision' 2>/dev/null; then
    timeout 400 python3 benches/peers/pytorch/steps.py --device cuda --matmul 4096 > "$out/pytorch.log" 2>&1
    row "cuBLAS SGEMM 4096³ (PyTorch, TF32 off)" "$(grep -o 'SGEMM.*' "$out/pytorch.log")"
    while IFS= read -r line; do row "PyTorch CUDA" "$line"; done < <(grep ' warm ' "$out/pytorch.log")
else
    row "PyTorch" "not installed here"
fi
{
    echo "| check | result |"
    echo "|---|---|"
    printf '%s\n' "${rows[@]}"
} | tee "$out/table.md"
