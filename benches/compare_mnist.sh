#!/usr/bin/env bash
# Issue 13, item 4: flowzoo's MNIST Glow and its PyTorch twin
# (benches/mnist_glow_torch.py: same layers, parameter count, data protocol
# and loop) trained for the same wall-clock minutes, then scored on the
# 10,000 test images in bits/dim. docs/benchmarks/images.md ("MNIST Glow against
# PyTorch at equal wall-clock time") reads its figures from the two summary lines.
#
# MODE=together (default): both at once, each on its own core (taskset) with
#   THREADS=1 thread, so both see the same machine for the same minutes.
# MODE=sequential: flowzoo, then PyTorch, each with THREADS threads (2 on
#   this machine) on an otherwise idle machine.
#
# Needs a Python with torch (python3 -m venv /tmp/torchenv &&
# /tmp/torchenv/bin/pip install torch numpy).
# Usage: benches/compare_mnist.sh [python] [minutes] [data-dir]
#   env: MODE, THREADS, LAYERS (steps per level, 4), HIDDEN (32), OUT (runs/compare-mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-/tmp/torchenv/bin/python}
MINUTES=${2:-30}
DATA=${3:-../shared/data/mnist}
MODE=${MODE:-together}
LAYERS=${LAYERS:-4}
HIDDEN=${HIDDEN:-32}
OUT=${OUT:-runs/compare-mnist}
mkdir -p "$OUT"
cargo build --release --quiet
ours() {
    RAYON_NUM_THREADS=$1 $2 target/release/flowzoo train --data mnist --data-dir "$DATA" \
        --flow glow --layers "$LAYERS" --hidden "$HIDDEN" --batch 64 --eval-every 500 \
        --steps 10000000 --minutes "$MINUTES" --quiet --out "$OUT/flowzoo" --log-json "$OUT/flowzoo.jsonl" \
        > "$OUT/flowzoo.txt" 2>&1
}
theirs() {
    $2 "$PY" benches/mnist_glow_torch.py --data-dir "$DATA" --steps-per-level "$LAYERS" \
        --hidden "$HIDDEN" --batch 64 --eval-every 500 --minutes "$MINUTES" \
        --threads "$1" > "$OUT/torch.jsonl" 2>&1
}
echo "# $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg), mode $MODE, $MINUTES min"
if [ "$MODE" = together ]; then
    THREADS=${THREADS:-1}
    ours "$THREADS" "taskset -c 0" &
    theirs "$THREADS" "taskset -c 1" &
    wait
else
    THREADS=${THREADS:-2}
    ours "$THREADS" ""
    theirs "$THREADS" ""
fi
echo "# $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "flowzoo: $(tail -2 "$OUT/flowzoo.txt" | head -1)"
grep -o '"steps": [0-9]*\|"test_bits_per_dim": [0-9.]*\|"ms_per_step": [0-9.]*\|"train_seconds": [0-9.]*' \
    "$OUT/flowzoo/metrics.json" | tr '\n' ' '
echo
echo "torch: $(tail -1 "$OUT/torch.jsonl")"
