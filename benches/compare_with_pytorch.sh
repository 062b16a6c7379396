#!/usr/bin/env bash
# Times PyTorch and flowzoo on the same workloads, on this machine, in one
# session: PyTorch's scripts from ../shared/peers (RESULTS.md) and flowzoo's
# benches, alternating, ROUNDS times (default 2), so that both sides see the
# same load. Prints each side's JSON line per round; docs/benchmarks/engine.md
# ("Against PyTorch on this machine") reads the ratios from them.
#
# Needs a Python with torch (about 5 GB from PyPI):
#   python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
# Usage: [THREADS=1|2] benches/compare_with_pytorch.sh [python] [rounds]
# THREADS (default 2) is the thread count of both sides: RAYON_NUM_THREADS
# for flowzoo's benches; `--threads` (torch.set_num_threads) and
# OMP_NUM_THREADS / MKL_NUM_THREADS for PyTorch's scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-/tmp/torchenv/bin/python}
ROUNDS=${2:-2}
PEERS=${PEERS:-../shared/peers}
THREADS=${THREADS:-2}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
cargo bench --no-run --bench autodiff --bench train_step --bench autoregressive >/dev/null 2>&1
for round in $(seq 1 "$ROUNDS"); do
    echo "# round $round, $THREADS thread(s), $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg)"
    "$PY" "$PEERS/bench_torch.py" --threads "$THREADS" | grep '^JSON' | sed 's/^JSON /torch bench_torch.py: /'
    "$PY" "$PEERS/mlp_step_torch.py" --threads "$THREADS" | tail -1 | sed 's/^/torch mlp_step_torch.py: /'
    for bench in autodiff train_step autoregressive; do
        cargo bench --bench "$bench" 2>/dev/null | grep '^{' | sed "s/^/flowzoo $bench: /"
    done
done
