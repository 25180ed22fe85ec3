#!/usr/bin/env bash
# Builds here (x86-64, release) the test and bench binaries that
# scripts/gpu-check.sh runs on a machine with an NVIDIA GPU and no Rust
# toolchain, and packs them, xz-compressed, into gpu-bundle/ (git-ignored):
# carry that folder (and .gl/ with the Vulkan loader debs, see
# scripts/gpu-check.sh) to the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
tests="kernels training_kernels conformance mlp_parity cnn_parity lstm_parity resnet_parity queued_steps"
benches="train_step cnn_step lstm_step resnet_step conv matmul"
rm -rf gpu-bundle && mkdir -p gpu-bundle/bin/tests gpu-bundle/bin/benches
list() {
    cargo "$@" --workspace --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])'
}
pick() {
    kind="$1"
    shift
    while read -r name exe; do
        for want in "$@"; do
            if [ "$name" = "$want" ]; then cp "$exe" "gpu-bundle/bin/$kind/$name"; fi
        done
    done
}
list test --release | pick tests $tests
list bench | pick benches $benches  # benches build with the release profile
tar -C gpu-bundle -cJf gpu-bundle/bin.tar.xz bin && rm -rf gpu-bundle/bin
ls -la gpu-bundle
